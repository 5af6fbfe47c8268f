"""Verify an AWS Signature Version 4 on a request received by the execute-api gateway.

We recompute the signature with botocore's own ``SigV4Auth`` over exactly what arrived (method,
raw path and query, the headers named in ``SignedHeaders``, the body), with the request's own
timestamp, and compare in constant time. Anything missing, malformed, for another key, service
or region, more than five minutes off, or not matching is refused (the caller answers 403).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

MAX_SKEW = 300.0
_AUTH = re.compile(r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})\s*$")


@dataclass(frozen=True)
class Caller:
    access_key: str
    region: str
    arn: str = ""


@dataclass(frozen=True)
class Signer:
    """Who an access key belongs to: its secret, the session token a temporary key must carry,
    and the identity's ARN."""

    secret_key: str
    arn: str
    session_token: str | None = None


class _Verifier(SigV4Auth):
    def __init__(self, credentials: Credentials, service: str, region: str, signed: list[str]) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        out = HTTPHeaders()
        for name in self._signed:
            values = request.headers.get_all(name) or []
            if not values:
                raise KeyError(name)
            for value in values:
                out[name] = value
        return out


def verify(method: str, raw_target: str, headers: list[tuple[str, str]], body: bytes, *,
           signer_of: "Callable[[str], Signer | None]", region: str, service: str = "execute-api",
           now: datetime | None = None) -> Caller | None:
    """The caller if the request carries a valid signature by a key ``signer_of`` knows, else None."""
    auth = next((v for k, v in headers if k.lower() == "authorization"), None)
    found = _AUTH.match(auth or "")
    if found is None:
        return None
    credential, signed_names, signature = found.groups()
    try:
        key, day, scope_region, scope_service, terminator = credential.split("/")
    except ValueError:
        return None
    if (scope_region, scope_service, terminator) != (region, service, "aws4_request"):
        return None
    signer = signer_of(key)
    if signer is None:
        return None
    lookup = {k.lower(): v for k, v in headers}
    if signer.session_token is not None and not hmac.compare_digest(
            lookup.get("x-amz-security-token", ""), signer.session_token):
        return None   # a temporary key is valid only with its session's token
    stamp = lookup.get("x-amz-date", "")
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    now = now or datetime.now(timezone.utc)
    if stamp[:8] != day or abs((now - when).total_seconds()) > MAX_SKEW:
        return None
    declared = lookup.get("x-amz-content-sha256")
    if declared and declared != "UNSIGNED-PAYLOAD" and declared != hashlib.sha256(body).hexdigest():
        return None
    signed = signed_names.split(";")
    if "host" not in signed:
        return None
    request = AWSRequest(method=method, url=f"http://{lookup.get('host', '')}{raw_target}", data=body)
    for name, value in headers:
        request.headers.add_header(name, value)
    request.context["timestamp"] = stamp
    verifier = _Verifier(Credentials(key, signer.secret_key, signer.session_token), service, region, signed)
    try:
        canonical = verifier.canonical_request(request)
    except KeyError:
        return None
    expected = verifier.signature(verifier.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, signature):
        return None
    return Caller(key, region, signer.arn)
