"""Role sessions: which requests were signed with an assumed role's credentials.

STS hands out session credentials (access key ``ASIA...``, secret, session token). The
enforcement patch registers every session moto's STS issues and, for each request moto serves,
notes here which session signed it (``serving``), so every check made while serving it (moto's
bucket-policy check included) knows whose request it is (:func:`current_session`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import unquote

from efsctl.local import moto_models
from efsctl.local.fidelity.iam_policy import Principal

_local = threading.local()


@dataclass(frozen=True)
class Session:
    access_key_id: str
    token: str
    role_arn: str
    name: str
    account: str
    expiration: float

    @property
    def arn(self) -> str:
        return f"arn:aws:sts::{self.account}:assumed-role/{self.role_arn.rsplit('/', 1)[-1]}/{self.name}"

    @property
    def principal(self) -> Principal:
        return Principal(self.arn, self.account, self.role_arn)


class Sessions:
    def __init__(self) -> None:
        self._by_key: dict[str, Session] = {}
        self._lock = threading.Lock()

    def add(self, session: Session) -> None:
        with self._lock:
            self._by_key[session.access_key_id] = session

    def get(self, access_key_id: str | None) -> Session | None:
        if not access_key_id:
            return None
        found = self._by_key.get(access_key_id)
        if found is None and access_key_id.startswith("ASIA"):
            found = self._from_moto(access_key_id)
        return found

    def _from_moto(self, access_key_id: str) -> Session | None:
        """A session STS issued before these patches saw it (a restored cloud): found in moto."""
        assumed = moto_models.assumed_role(access_key_id)
        if assumed is None:
            return None
        session = session_of(assumed)
        self.add(session)
        return session


def session_of(assumed: Any) -> Session:
    return Session(assumed.access_key_id, assumed.session_token, assumed.role_arn, assumed.session_name,
                   assumed.account_id, moto_models.expiry(assumed))


def signed_with(headers: Mapping[str, Any], query: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(access key id, session token) of a SigV4 request, header- or query-signed."""
    auth = str(headers.get("Authorization") or "")
    if "Credential=" in auth:
        key = auth.split("Credential=", 1)[1].split("/", 1)[0]
        return key, headers.get("X-Amz-Security-Token")
    credential = (query.get("X-Amz-Credential") or [None])[0]
    if credential:
        token = (query.get("X-Amz-Security-Token") or [None])[0]
        return unquote(str(credential)).split("/", 1)[0], token
    return None, None


def current_session() -> Session | None:
    """The role session that signed the request this thread is serving, if any."""
    return getattr(_local, "session", None)


def serving(session: Session | None, token: str | None) -> None:
    """Note the session (and the token it presented) of the request this thread now serves."""
    _local.session, _local.token = session, token


def token_problem(session: Session, token: Any = None) -> str | None:
    """``invalid`` (not the session's token), ``expired``, or None; ``token`` defaults to the
    one the current request presented."""
    presented = getattr(_local, "token", None) if token is None else token
    if presented != session.token:
        return "invalid"
    return "expired" if time.time() >= session.expiration else None
