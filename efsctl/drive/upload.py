"""``efsctl upload``: hash a model file, upload it under ``models/``, optionally wait for EFS.

The file's SHA-256 is computed in one streamed pass and sent as ``x-amz-meta-sha256``; the
producer verifies it while copying to EFS. Waiting polls ``GET /models/{name}`` until the
consumer sees the same checksum, which is the end-to-end proof that the model arrived, and
measures the S3 -> EFS latency (to within one poll interval).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from efsctl.drive.api import ApiClient, ApiError
from efsctl.drive.fmt import human_bytes
from efsctl.drive.names import model_key, validate_model_name
from efsctl.drive.target import DriveTarget
from efsctl.errors import ConfigError, EfsctlError, WaitTimeout
from efsctl.waits import Clock, Outcome, Poll, wait_until

HASH_CHUNK = 1024 * 1024
DEFAULT_TIMEOUT = 300.0
WAIT_POLL = Poll(floor=0.1, ceiling=2.0, fraction=0.1)
_HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
# "x-amz-meta-sha256 was <hex> but the object's sha256 is <hex>", or "expected <hex>, got <hex>"
_EXPECTED = re.compile(r"(?:expected|x-amz-meta-sha256)(?:\s+sha256)?(?:\s+was)?\W+([0-9a-f]{64})", re.IGNORECASE)


class ProducerRejected(EfsctlError):
    """The producer refused the uploaded object (its SHA-256 did not match the declared one)."""


@dataclass
class WaitResult:
    on_efs: bool
    latency_s: float | None = None
    rejected: bool = False
    timed_out: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = {"on_efs": self.on_efs, "latency_s": None if self.latency_s is None else round(self.latency_s, 3)}
        if self.rejected:
            doc["rejected"] = True
        if self.timed_out:
            doc["timed_out"] = True
        if self.error:
            doc["error"] = self.error
        return doc


@dataclass
class UploadResult:
    name: str
    key: str
    bucket: str
    size: int
    sha256: str
    uploaded_s: float
    wait: WaitResult | None = None

    @property
    def ok(self) -> bool:
        return self.wait is None or self.wait.on_efs

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["uploaded_s"] = round(self.uploaded_s, 3)
        doc["wait"] = self.wait.to_dict() if self.wait else None
        return doc


def check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"There is no file {str(path)!r}.", "Give the path of a model file to upload.")
    if not path.is_file():
        raise ConfigError(f"{str(path)!r} is not a regular file.", "Give the path of a model file to upload.")
    return path


def default_name(path: Path, name: str | None) -> str:
    """The model name: ``--name`` if given, else the file's base name; validated either way."""
    chosen = name if name is not None else path.name
    try:
        return validate_model_name(chosen)
    except ConfigError as exc:
        if name is None:
            exc.hint = f"Pick a valid name with --name. {exc.hint}"
        raise


def file_sha256(path: str | Path, advance: Callable[[int], None] | None = None) -> tuple[str, int]:
    """``(hex digest, size)`` of the file, read once in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(HASH_CHUNK)
        view = memoryview(buf)
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            digest.update(view[:n])
            size += n
            if advance:
                advance(n)
    return digest.hexdigest(), size


def upload_model(aws: Any, target: DriveTarget, path: Path, name: str, *, console: Any,
                 declared_sha256: str | None = None, settings: Any = None) -> UploadResult:
    """Hash ``path`` and upload it to ``s3://<bucket>/models/<name>`` (no waiting).

    ``declared_sha256`` overrides the checksum sent as metadata; it exists so tests can make
    the producer reject an upload.
    """
    from efsctl.aws.transfer import TransferSettings, upload_file

    key = model_key(name)
    size = path.stat().st_size
    start = time.monotonic()
    with console.transfer(size, "sha256") as advance:
        sha256, size = file_sha256(path, advance)
    console.line("ok", "sha256", f"{sha256} ({human_bytes(size)})", time.monotonic() - start)
    start = time.monotonic()
    with console.transfer(size, "upload") as advance:
        upload_file(aws, path, target.bucket, key, sha256=declared_sha256 or sha256, progress=advance,
                    settings=settings or TransferSettings())
    uploaded_s = time.monotonic() - start
    console.line("ok", "uploaded", f"s3://{target.bucket}/{key}", uploaded_s)
    return UploadResult(name=name, key=key, bucket=target.bucket, size=size, sha256=sha256,
                        uploaded_s=uploaded_s)


def wait_on_efs(api: ApiClient, name: str, sha256: str, *, declared_sha256: str | None = None,
                timeout: float = DEFAULT_TIMEOUT, clock: Clock | None = None,
                progress: Any = None) -> WaitResult:
    """Poll ``GET /models/{name}`` until it reports ``sha256``.

    Returns a :class:`WaitResult`; a producer rejection of this upload or the timeout are
    reported in it rather than raised, so the caller can still print the upload's facts.
    """
    clock = clock or Clock()
    declared = declared_sha256 or sha256
    start = clock.now()

    def check() -> Outcome[dict]:
        try:
            body = api.get_model(name).body
        except ApiError as exc:
            if exc.status == 404 and exc.code == "ChecksumMismatch":
                if rejection_is_ours(exc, declared):
                    raise ProducerRejected(
                        f"The producer rejected {name!r}: {exc.api_message}.",
                        "The file's SHA-256 did not match the one declared at upload; upload it again.",
                    ) from None
                return Outcome(False, detail="an earlier upload of this name was rejected")
            if exc.status == 404:
                return Outcome(False, detail="not on EFS yet")
            raise
        body = body if isinstance(body, dict) else {}
        if body.get("sha256") == sha256:
            return Outcome(True, body)
        rejected = body.get("rejected")  # an older version stays in place; was the rejected one ours?
        if isinstance(rejected, dict) and rejected.get("expected_sha256") == declared:
            raise ProducerRejected(
                f"The producer rejected {name!r}: x-amz-meta-sha256 was {declared} but the object's sha256 is "
                f"{rejected.get('actual_sha256')}; the previous version stays on EFS.",
                "The file's SHA-256 did not match the one declared at upload; upload it again.")
        return Outcome(False, detail="an older version is on EFS")

    def report(what: str, elapsed: float, detail: str) -> None:
        if progress and elapsed >= 1.0:  # a quick copy needs no progress line
            progress(what, elapsed, detail)

    try:
        wait_until(check, what="on EFS", timeout=timeout, clock=clock, poll=WAIT_POLL, progress=report,
                   hint="The upload is in S3; `efsctl models` shows when it reaches EFS, and "
                        "`efsctl tail-logs --function producer` shows the producer's work.")
    except ProducerRejected as exc:
        return WaitResult(on_efs=False, rejected=True, error=exc.message)
    except WaitTimeout as exc:
        return WaitResult(on_efs=False, timed_out=True, error=exc.message)
    except EfsctlError as exc:  # the API failed while we waited: the upload itself stands
        return WaitResult(on_efs=False, error=exc.message)
    return WaitResult(on_efs=True, latency_s=clock.now() - start)


def rejection_is_ours(exc: ApiError, declared_sha256: str) -> bool:
    """Whether a ChecksumMismatch answer is about this upload (not an earlier rejected one).

    The producer's message names the expected (declared) and actual checksums; this upload
    is the rejected one when the expected checksum is the one it declared.
    """
    err = exc.body.get("error", {}) if isinstance(exc.body, dict) else {}
    for field in ("expected_sha256", "expected"):
        if isinstance(err, dict) and isinstance(err.get(field), str):
            return err[field].lower() == declared_sha256
    text = exc.api_message or ""
    match = _EXPECTED.search(text)
    if match:
        return match.group(1).lower() == declared_sha256
    found = set(_HEX64.findall(text.lower()))
    return not found or declared_sha256 in found
