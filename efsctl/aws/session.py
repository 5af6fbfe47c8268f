"""Sessions and clients: lazy, cached, standard retry mode, efsctl's user agent."""

from __future__ import annotations

import threading
from typing import Any, Callable

import boto3
import botocore.config
from botocore.exceptions import NoRegionError

from efsctl import __version__
from efsctl.errors import ConfigError, CredentialsError

READ_PREFIXES = ("Describe", "List", "Get", "Head", "Lookup", "Search", "Filter", "Check",
                 "Select", "Test", "StartLiveTail")


def is_mutating(operation: str) -> bool:
    """True for calls that can change something (by AWS's naming convention)."""
    return not operation.startswith(READ_PREFIXES)


NO_CREDENTIALS = (
    "No AWS credentials found. Configure them (`aws configure`, AWS_PROFILE or AWS_ACCESS_KEY_ID), "
    "or run everything offline: `efsctl up --local`, or try `efsctl demo`."
)
NO_REGION = "No AWS region is set. Pass --region, set AWS_REGION, or run `aws configure set region <name>`."

CallHook = Callable[[str, str, dict], None]
"""``hook(service, operation, params)``, called before every API call."""


_LOADER: Any = None


def _botocore_session() -> Any:
    """A botocore session sharing one data loader per process, so service models (EC2's is
    large) are parsed once however many contexts are made."""
    global _LOADER
    import botocore.loaders
    import botocore.session

    if _LOADER is None:
        _LOADER = botocore.loaders.create_loader()
    session = botocore.session.Session()
    session.register_component("data_loader", _LOADER)
    return session


# The services efsctl talks to; their botocore models are what a first client costs.
SERVICES = ("ec2", "efs", "iam", "lambda", "logs", "s3", "apigatewayv2", "sts")


def preload(services: tuple[str, ...] = SERVICES) -> None:
    """Parse botocore's data for ``services`` (service models, endpoint rules, the endpoints file)
    into the shared loader now. A caller with time to spare (waiting for a local cloud to start)
    calls it so the clients it makes next skip most of their cost: the JSON."""
    session = _botocore_session()
    loader = session.get_component("data_loader")
    loader.load_data("endpoints")   # what the session's endpoint resolver parses first
    for service in services:
        session.get_service_model(service)
        try:
            loader.load_service_model(service, "endpoint-rule-set-1")
        except Exception:  # noqa: BLE001 - a service without rules has nothing to preload
            pass


class AwsContext:
    """One target account/region/endpoint; hands out cached clients."""

    def __init__(
        self,
        *,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
        credentials: dict[str, str] | None = None,
        max_attempts: int = 8,
    ) -> None:
        self._region = region
        self._profile = profile
        self.endpoint_url = endpoint_url
        self._credentials = credentials
        self._max_attempts = max_attempts
        self._session: boto3.Session | None = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._hooks: list[CallHook] = []
        self._account: str | None = None

    @property
    def session(self) -> boto3.Session:
        with self._lock:
            if self._session is None:
                kwargs: dict[str, Any] = {}
                if self._profile:
                    kwargs["profile_name"] = self._profile
                if self._region:
                    kwargs["region_name"] = self._region
                if self._credentials:
                    kwargs.update(self._credentials)
                try:
                    self._session = boto3.Session(botocore_session=_botocore_session(), **kwargs)
                except Exception as exc:  # ProfileNotFound and friends
                    raise ConfigError(f"Cannot load AWS profile {self._profile!r}: {exc}.") from None
            return self._session

    @property
    def region(self) -> str:
        region = self.session.region_name
        if not region:
            raise ConfigError(NO_REGION)
        return region

    def require_credentials(self) -> None:
        if self.session.get_credentials() is None:
            raise CredentialsError(NO_CREDENTIALS)
        self.region  # noqa: B018 - raises when unset

    def client(self, service: str) -> Any:
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                config = botocore.config.Config(
                    retries={"mode": "standard", "max_attempts": self._max_attempts},
                    user_agent_extra=f"efsctl/{__version__}",
                    connect_timeout=10,
                    read_timeout=70,
                    max_pool_connections=20,
                    # Over plain HTTP (a local cloud or moto on loopback) botocore would SHA-256
                    # every S3 body to sign it: a second pass over every model uploaded. Each
                    # upload carries a CRC32 checksum anyway; over HTTPS (AWS) botocore already
                    # sends the payload unsigned when a checksum is there.
                    s3={"payload_signing_enabled": False} if self.plain_http else None,
                )
                try:
                    client = self.session.client(service, endpoint_url=self.endpoint_url, config=config)
                except NoRegionError:
                    raise ConfigError(NO_REGION) from None
                client.meta.events.register("before-call.*.*", self._before_call)
                self._clients[service] = client
            return client

    @property
    def plain_http(self) -> bool:
        return bool(self.endpoint_url and self.endpoint_url.startswith("http://"))

    def add_call_hook(self, hook: CallHook) -> None:
        """Observe every API call (tests count mutating calls this way)."""
        self._hooks.append(hook)

    def _before_call(self, model, params, **_: Any) -> None:
        for hook in self._hooks:
            hook(model.service_model.service_name, model.name, params)

    def account_id(self) -> str:
        if self._account is None:
            self._account = self.client("sts").get_caller_identity()["Account"]
        return self._account
