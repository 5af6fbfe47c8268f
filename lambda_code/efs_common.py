"""Shared pieces of the efsctl Lambda handlers: configuration, typed errors, model names,
S3 sequencers and the JSON line logger.

Standard library only. The deployment zip holds these modules at its root, so they import
each other as top-level modules (``import efs_common``), never through ``lambda_code``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional, TextIO

MAX_NAME_BYTES = 1024
MAX_SEGMENT_BYTES = 255  # NAME_MAX of Linux file systems, EFS included


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    """The handlers' configuration, read from the function's environment."""

    mount: str = "/mnt/efs"
    bucket: Optional[str] = None
    models_prefix: str = "models/"
    outputs_prefix: str = "outputs/"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Config":
        return cls(
            mount=environ.get("EFS_MOUNT_PATH") or "/mnt/efs",
            bucket=environ.get("BUCKET") or None,
            models_prefix=environ.get("MODELS_PREFIX") or "models/",
            outputs_prefix=environ.get("OUTPUTS_PREFIX") or "outputs/",
        )


# --------------------------------------------------------------------------- typed errors


class HandlerError(Exception):
    """An expected failure with a stable machine-readable code (mapped to HTTP by the consumer).

    ``details`` are extra JSON-safe fields for the error object of the response."""

    code = "InternalError"

    def __init__(self, message: str = "", /, **details: Any):
        super().__init__(message)
        self.details = details


class BadRequest(HandlerError):
    code = "BadRequest"


class InvalidModelName(BadRequest, ValueError):
    code = "InvalidModelName"


class PayloadTooLarge(HandlerError):
    code = "PayloadTooLarge"


class ModelNotFound(HandlerError):
    code = "NotFound"


class RouteNotFound(HandlerError):
    code = "RouteNotFound"


class UploadRejected(HandlerError):
    """No model is on EFS under the name and the producer refused its latest upload
    (checksum mismatch, name conflict, size limit, access denied...)."""

    code = "UploadRejected"


class IntegrityError(HandlerError):
    """The model's bytes on EFS no longer hash to what the producer recorded at install."""

    code = "IntegrityError"


class NameConflict(HandlerError):
    """The name collides with the tree under models/ (a file where a directory must go, or the reverse)."""

    code = "NameConflict"


class UnsafePath(HandlerError):
    """The name resolves (through a symlink) outside models/."""

    code = "UnsafePath"


class ModelChanging(HandlerError):
    """The model file changed in place while it was being read (nothing we write does that)."""

    code = "ModelChanging"


class ModelUnreadable(HandlerError):
    """The model file exists but this function may not read it (its mode or owner was changed)."""

    code = "ModelUnreadable"


# --------------------------------------------------------------------------- model names


def validate_model_name(name: object) -> str:
    """Return ``name`` unchanged if it is a valid model name, else raise ``InvalidModelName``.

    A model name is the S3 key below ``MODELS_PREFIX`` and the path below ``<mount>/models/``.
    The rules (efsctl's CLI applies exactly the same ones):

    1. a non-empty ``str`` whose UTF-8 encoding (no lone surrogates) is at most 1024 bytes;
    2. no NUL, no backslash and no other ASCII control character (U+0000-U+001F, U+007F);
    3. relative: it does not start with ``/``;
    4. split on ``/``, every segment is non-empty (no leading, trailing or doubled slash),
       does not start with ``.`` (so no ``.`` or ``..`` segment and nothing hidden), and is at
       most 255 bytes of UTF-8.

    Where the name resolves (symlinks included) is checked separately, on the file system.
    """
    if not isinstance(name, str):
        raise InvalidModelName("model name must be a string")
    if not name:
        raise InvalidModelName("model name is empty")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidModelName("model name is not valid UTF-8") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise InvalidModelName(f"model name is {len(encoded)} bytes; the limit is {MAX_NAME_BYTES}")
    for ch in name:
        if ch == "\\":
            raise InvalidModelName("model name contains a backslash")
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise InvalidModelName(f"model name contains control character U+{ord(ch):04X}")
    if name.startswith("/"):
        raise InvalidModelName("model name must be relative (no leading '/')")
    for segment in name.split("/"):
        if not segment:
            raise InvalidModelName("model name has an empty path segment")
        if segment.startswith("."):
            raise InvalidModelName(f"model name segment {segment[:40]!r} starts with '.'")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidModelName(f"a model name segment exceeds {MAX_SEGMENT_BYTES} bytes")
    return name


# --------------------------------------------------------------------------- S3 sequencers


def normalize_sequencer(value: object) -> Optional[str]:
    """An S3 event ``sequencer`` as uppercase hex, or None when absent or not hex."""
    if not isinstance(value, str) or not value:
        return None
    upper = value.upper()
    if any(c not in "0123456789ABCDEF" for c in upper):
        return None
    return upper


def compare_sequencers(a: str, b: str) -> int:
    """-1, 0 or 1 as S3 orders two events for one key.

    AWS: compare the hex strings after right-padding the shorter with zeros.
    """
    a, b = a.upper(), b.upper()
    width = max(len(a), len(b))
    a, b = a.ljust(width, "0"), b.ljust(width, "0")
    return (a > b) - (a < b)


# --------------------------------------------------------------------------- JSON logs


def utc_iso(epoch_s: float) -> str:
    """ISO-8601 UTC with milliseconds, e.g. ``2025-01-31T12:00:00.123Z``."""
    whole = int(epoch_s)
    millis = int(round((epoch_s - whole) * 1000))
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}


class JsonLogger:
    """One JSON object per line: ts, level, fn, request_id, msg, then business keys."""

    def __init__(self, fn: str, stream: Optional[TextIO] = None, level: Optional[str] = None):
        self.fn = fn
        self.request_id: Optional[str] = None
        self._stream = stream
        self._min = _LEVELS.get((level or os.environ.get("LOG_LEVEL") or "INFO").upper(), 20)

    def bind(self, request_id: Optional[str], fn: Optional[str] = None) -> None:
        self.request_id = request_id
        if fn:
            self.fn = fn

    def log(self, level: str, msg: str, **fields: Any) -> None:
        if _LEVELS[level] < self._min:
            return
        record = {"ts": utc_iso(time.time()), "level": level, "fn": self.fn,
                  "request_id": self.request_id, "msg": msg}
        for key, value in fields.items():
            if key not in record:
                record[key] = value
        # ASCII-only: a lone surrogate from a hostile request must not break stdout.
        line = json.dumps(record, default=str)
        stream = self._stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()

    def debug(self, msg: str, **fields: Any) -> None:
        self.log("DEBUG", msg, **fields)

    def info(self, msg: str, **fields: Any) -> None:
        self.log("INFO", msg, **fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self.log("WARNING", msg, **fields)

    def error(self, msg: str, **fields: Any) -> None:
        self.log("ERROR", msg, **fields)


def context_request_id(context: object) -> str:
    """The Lambda request id, or a fresh one when invoked without a context."""
    rid = getattr(context, "aws_request_id", None)
    if isinstance(rid, str) and rid:
        return rid
    return os.urandom(16).hex()


def context_function_name(context: object, default: str) -> str:
    name = getattr(context, "function_name", None)
    return name if isinstance(name, str) and name else default


def s3_client(cache: dict, *, max_attempts: int, connect_timeout: float, read_timeout: float):
    """The S3 client kept in ``cache`` for this warm container, created (lazily: boto3 is not
    imported until the first call) with standard retries and these timeouts."""
    client = cache.get("s3")
    if client is None:
        import boto3
        from botocore.config import Config

        client = boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": max_attempts},
                                                  connect_timeout=connect_timeout, read_timeout=read_timeout))
        cache["s3"] = client
    return client
