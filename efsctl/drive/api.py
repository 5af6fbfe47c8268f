"""A small client for the stack's HTTP API: SigV4-signed, keep-alive, errors made readable.

Requests go through one urllib3 pool (urllib3 ships with botocore), so a load run reuses its
connections instead of paying a TCP (and TLS) handshake per call. Every non-2xx answer becomes
an :class:`ApiError` carrying the HTTP status and the API's own error code and message.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import quote

from efsctl.errors import EfsctlError

SignFn = Callable[[str, str, bytes, Mapping[str, str]], Mapping[str, str]]
"""``sign(method, url, body, headers) -> headers`` (see :class:`efsctl.aws.sigv4.Signer`)."""

USER_AGENT = "efsctl"


class ApiError(EfsctlError):
    """The API answered with an error (or could not be reached: ``status`` 0)."""

    def __init__(self, message: str, hint: str | None = None, *, status: int = 0, code: str = "",
                 api_message: str = "", body: Any = None) -> None:
        super().__init__(message, hint)
        self.status = status
        self.code = code
        self.api_message = api_message
        self.body = body


@dataclass
class ApiResponse:
    status: int
    body: Any
    elapsed_ms: float


def model_path(name: str) -> str:
    """``/models/<name>`` with the name URL-path-encoded, keeping '/' between folders."""
    return "/models/" + quote(name, safe="/")


class ApiClient:
    """GET/POST JSON against ``base_url`` (``https://{api}.execute-api.{region}.amazonaws.com``
    or the local gateway), signing each request with ``sign``."""

    def __init__(self, base_url: str, sign: SignFn | None, *, max_connections: int = 4,
                 timeout: float = 35.0, connect_timeout: float = 5.0, ca_certs: str | None = None) -> None:
        import urllib3

        self.base_url = base_url.rstrip("/")
        self._sign = sign
        # No retries: a failed call is reported (or counted in a load run), never repeated
        # behind the user's back. Read timeout just above API Gateway's 30 s integration limit.
        self._pool = urllib3.PoolManager(
            num_pools=2, maxsize=max(1, max_connections), block=False, retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=timeout),
            **({"ca_certs": ca_certs} if ca_certs else {}),
        )

    def close(self) -> None:
        self._pool.clear()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # -- the three calls the drive layer makes -------------------------------------------
    def predict(self, name: str, verify: bool = False) -> ApiResponse:
        return self.request("POST", "/predict", {"model": name, "verify": bool(verify)})

    def list_models(self) -> ApiResponse:
        return self.request("GET", "/models")

    def get_model(self, name: str) -> ApiResponse:
        return self.request("GET", model_path(name))

    # -- transport ------------------------------------------------------------------------
    def request(self, method: str, path: str, payload: Any = None) -> ApiResponse:
        import urllib3

        url = self.base_url + path
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if self._sign is not None:
            headers = dict(self._sign(method, url, body, headers))
        start = time.perf_counter()
        try:
            response = self._pool.request(method, url, body=body or None, headers=headers,
                                          redirect=False, retries=False, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(
                f"Cannot reach the API at {self.base_url} ({_reason(exc)}).",
                "Check `efsctl status`; for a local stack, `efsctl up --local` starts the local cloud again.",
            ) from None
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        data = _decode(response.data)
        if 200 <= response.status < 300:
            if data is _NOT_JSON:
                raise ApiError(f"The API at {self.base_url} answered {method} {path} with something that "
                               "is not JSON.", status=response.status)
            return ApiResponse(response.status, data, elapsed_ms)
        raise error_for(response.status, None if data is _NOT_JSON else data, method, path,
                        response.data[:200])


_NOT_JSON = object()


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return _NOT_JSON


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.split(": ", 1)[-1][:160]


# 409s: the model is there (or was refused) but not usable as it is; the consumer's message
# names the model and the hashes, this says what to do.
_STATE_ERRORS = {
    "IntegrityError": "`efsctl upload PATH --name NAME` with the original file replaces it.",
    "UploadRejected": "`efsctl tail-logs --function producer` shows the refusal; fix its cause and upload again.",
    "ModelUnreadable": "Upload the file again (`efsctl upload`) so the producer installs a readable copy.",
    "ModelChanging": "Something rewrote the model while it was read; try again.",
}


def error_for(status: int, body: Any, method: str, path: str, raw: bytes = b"") -> ApiError:
    """The :class:`ApiError` for a non-2xx answer: the API's ``{"error": {"code","message"}}``
    when it sent one, API Gateway's ``{"message": ...}`` otherwise."""
    code, message = "", ""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code, message = str(err.get("code") or ""), str(err.get("message") or "")
        elif isinstance(body.get("message"), str):
            message = body["message"]
    if not message:
        message = raw.decode("utf-8", "replace").strip() if raw else f"HTTP {status}"
    message = message.rstrip(".")
    kwargs = dict(status=status, code=code, api_message=message, body=body)
    if status == 403:
        return ApiError(
            f"The API refused the request (403 {message}): it did not accept the request's signature.",
            "Check that your AWS credentials belong to the stack's account and allow execute-api:Invoke "
            "(for a local stack, run `efsctl up --local` again).", **kwargs)
    if status == 409 and code in _STATE_ERRORS:
        return ApiError(f"{message[:1].upper()}{message[1:]}.", _STATE_ERRORS[code], **kwargs)
    if status == 404:
        if code == "NotFound":
            text = message if "not found" in message.lower() else f"Not found: {message}"
            return ApiError(f"{text[:1].upper()}{text[1:]}.", "`efsctl models` lists the models on EFS; `efsctl upload` adds one.",
                            **kwargs)
        return ApiError(f"Not found: {method} {path} ({message}).", **kwargs)
    if status == 413:
        return ApiError(f"The API refused the request as too large (413 {message}).", **kwargs)
    if status == 429:
        return ApiError(f"The API is throttling requests (429 {message}).",
                        "Lower --concurrency or try again shortly.", **kwargs)
    if 400 <= status < 500:
        return ApiError(f"The API rejected the request ({status} {code or 'error'}): {message}.", **kwargs)
    return ApiError(f"The API failed ({status}): {message}.",
                    "`efsctl tail-logs --since 5m` shows what the functions logged.", **kwargs)
