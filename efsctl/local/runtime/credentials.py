"""Temporary credentials for a function's execution role, obtained as Lambda obtains them.

Lambda assumes the function's role (STS AssumeRole, session name = the function's name) and
hands each execution environment the session's keys as ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``. Here the call goes to the local endpoint, so
the session is one the local cloud knows and holds to the role's policies (see
``fidelity/iam_enforcement``). Sessions are cached per (role, function) while they have life
left, so a cold start costs an AssumeRole only when the cache has none; warm invocations cost
nothing, their environment already holds the keys. An environment is not reused once its
session would expire before the invocation's deadline (the runtime starts a new one).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

DURATION = 3600          # STS's default, and the longest a role allows unless raised
SLACK = 60.0             # never hand out keys that expire within a minute of the deadline


@dataclass(frozen=True)
class SessionCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: float    # epoch seconds

    def lasts(self, seconds: float, now: float) -> bool:
        return self.expiration - now > seconds + SLACK

    def environment(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
                "AWS_SESSION_TOKEN": self.session_token}


AssumeRole = Callable[[str, str, int], SessionCredentials]
"""``assume(role_arn, session_name, duration_seconds)``"""


class StsAssumeRole:
    """AssumeRole on ``endpoint_url`` with the operator's credentials (one client, made once)."""

    def __init__(self, endpoint_url: str, region: str, credentials: dict[str, str]) -> None:
        self._args = (endpoint_url, region, dict(credentials))
        self._client: Any = None
        self._lock = threading.Lock()

    def prepare(self) -> Any:
        """Make the STS client now (botocore loads its model), so no cold start pays for it."""
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                endpoint_url, region, credentials = self._args
                self._client = boto3.client("sts", endpoint_url=endpoint_url, region_name=region,
                                            config=Config(retries={"mode": "standard", "max_attempts": 8}),
                                            **credentials)
            return self._client

    def __call__(self, role_arn: str, session_name: str, duration: int) -> SessionCredentials:
        found = self.prepare().assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64],
                                           DurationSeconds=duration)["Credentials"]
        return SessionCredentials(found["AccessKeyId"], found["SecretAccessKey"], found["SessionToken"],
                                  found["Expiration"].timestamp())


class RoleSessions:
    """Session credentials per (role, function), renewed when too little of their life is left."""

    def __init__(self, assume: AssumeRole, *, duration: int = DURATION, clock: Callable[[], float] = time.time) -> None:
        self._assume = assume
        self._duration = duration
        self._clock = clock
        self._cache: dict[tuple[str, str], SessionCredentials] = {}
        self._lock = threading.Lock()
        self.assumed = 0

    def prepare(self) -> None:
        prepare = getattr(self._assume, "prepare", None)
        if prepare is not None:
            prepare()

    def get(self, role_arn: str, function_name: str, *, lasting: float) -> SessionCredentials:
        """Credentials valid for at least ``lasting`` seconds (plus a minute) from now."""
        key = (role_arn, function_name)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached.lasts(lasting, self._clock()):
            return cached
        fresh = self._assume(role_arn, function_name, self._duration)
        with self._lock:
            self._cache[key] = fresh
            self.assumed += 1
        return fresh
