"""SigV4 signing for calls to an API Gateway ``AWS_IAM`` route (service ``execute-api``).

The drive layer sends the HTTP request itself (keep-alive pool); this module only computes
the headers with botocore's own :class:`SigV4Auth`, so the signature is the one AWS and the
local gateway verify. The body sent must be exactly the body signed.
"""

from __future__ import annotations

from typing import Any, Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from efsctl.errors import CredentialsError

SERVICE = "execute-api"


class Signer:
    """Signs requests for one region with credentials that may refresh (SSO, assumed roles)."""

    def __init__(self, credentials: Any, region: str, service: str = SERVICE) -> None:
        if credentials is None:
            raise CredentialsError(
                "No AWS credentials to sign the API request with.",
                "Configure credentials (`aws configure`, AWS_PROFILE), or use a local stack: `efsctl up --local`.",
            )
        self._credentials = credentials
        self.region = region
        self.service = service

    @classmethod
    def from_context(cls, aws: Any, region: str | None = None) -> "Signer":
        """A signer using the credentials and region of an :class:`efsctl.aws.session.AwsContext`."""
        return cls(aws.session.get_credentials(), region or aws.region)

    def _frozen(self) -> Any:
        getter = getattr(self._credentials, "get_frozen_credentials", None)
        return getter() if getter else self._credentials

    def sign(self, method: str, url: str, body: bytes = b"",
             headers: Mapping[str, str] | None = None) -> dict[str, str]:
        """The headers to send with ``method url body``: the given ones plus X-Amz-Date,
        Authorization and, for temporary credentials, X-Amz-Security-Token."""
        request = AWSRequest(method=method.upper(), url=url, data=body or b"", headers=dict(headers or {}))
        SigV4Auth(self._frozen(), self.service, self.region).add_auth(request)
        return {name: value for name, value in request.headers.items()}


def ca_bundle(aws: Any = None) -> str:
    """The CA bundle botocore would verify HTTPS with: ``AWS_CA_BUNDLE`` / the profile's
    ``ca_bundle`` when set, else certifi's or botocore's own."""
    from botocore.httpsession import get_cert_path

    configured = None
    if aws is not None:
        try:
            configured = aws.session._session.get_config_variable("ca_bundle")
        except Exception:  # noqa: BLE001 - fall back to the default bundle
            configured = None
    return configured or get_cert_path(True)
