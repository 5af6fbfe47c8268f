"""``efsctl upload``: hash a model file, upload it under ``models/``, optionally wait for EFS.

The file's SHA-256 is computed in one streamed pass and sent as ``x-amz-meta-sha256``; the
producer verifies it while copying to EFS. Waiting polls ``GET /models/{name}`` until the
consumer sees the same checksum, which is the end-to-end proof that the model arrived, and
measures the S3 -> EFS latency (to within one poll interval). When the producer refuses the
upload (checksum, name conflict, size, access), the API answers 409 ``UploadRejected`` with
the refused object's ETag: the wait ends at the next poll if that ETag is this upload's.
"""

from __future__ import annotations

import hashlib
import time
import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from efsctl.drive.api import ApiClient, ApiError
from efsctl.drive.names import check_not_reserved, model_key, validate_model_name
from efsctl.drive.target import DriveTarget
from efsctl.errors import ConfigError, EfsctlError, WaitTimeout
from efsctl.units import human_bytes, transfer_summary
from efsctl.waits import Clock, Outcome, Poll, wait_until

HASH_CHUNK = 1024 * 1024
DEFAULT_TIMEOUT = 300.0
WAIT_POLL = Poll(floor=0.1, ceiling=2.0, fraction=0.1)

# What to do about each kind of refusal (the producer's ``reason``).
REFUSAL_HINTS = {
    "checksum_mismatch": "The file's SHA-256 did not match the one declared at upload; upload it again.",
    "name_conflict": "A model and a folder of models cannot share a name: pick another --name.",
    "unsafe_path": "A folder on EFS on the way to that name is a link out of models/: pick another --name.",
    "invalid_name": "Pick a name that follows the rules (see `efsctl upload --help`).",
    "too_large": "The model is larger than the producer accepts (MAX_MODEL_BYTES, or EFS's 47.9 TiB).",
    "no_space": "Free space on the file system, then upload again.",
    "access_denied": "The producer could not read the object from S3: check its role's s3:GetObject on "
                     "models/* and the bucket's key policy (`efsctl up` restores the stack's), then upload again.",
}


class ProducerRejected(EfsctlError):
    """The producer refused the uploaded object (see ``reason``)."""

    def __init__(self, message: str, hint: str | None = None, reason: str | None = None) -> None:
        super().__init__(message, hint)
        self.reason = reason


@dataclass
class WaitResult:
    on_efs: bool
    latency_s: float | None = None
    rejected: bool = False
    timed_out: bool = False
    error: str | None = None
    reason: str | None = None
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = {"on_efs": self.on_efs, "latency_s": None if self.latency_s is None else round(self.latency_s, 3)}
        if self.rejected:
            doc["rejected"] = True
            doc["reason"] = self.reason
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
    etag: str | None = None
    parts_sent: int = 1         # multipart: parts sent by this run
    parts_resumed: int = 0      # ... and parts an interrupted run had already sent
    wait: WaitResult | None = None
    stored_at: float | None = field(default=None, repr=False)  # when S3 stored it (epoch s), not in JSON

    @property
    def ok(self) -> bool:
        return self.wait is None or self.wait.on_efs

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("stored_at")
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
        return check_not_reserved(validate_model_name(chosen))
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
                 declared_sha256: str | None = None, settings: Any = None,
                 resume_dir: Path | None = None) -> UploadResult:
    """Hash ``path`` and upload it to ``s3://<bucket>/models/<name>`` (no waiting).

    A large file goes up as a multipart upload that ``resume_dir`` keeps a record of: run again
    after an interruption, it sends only the parts S3 does not have (and trusts the earlier
    hash while the file's size and mtime are unchanged). ``declared_sha256`` overrides the
    checksum sent as metadata; it exists so tests can make the producer reject an upload. The
    result carries the object's ETag, by which the producer's refusal of this very upload is
    told from an older one's.
    """
    from efsctl.aws.transfer import ResumeStore, TransferSettings, upload_file

    key = model_key(name)
    size = path.stat().st_size
    resume = ResumeStore(resume_dir) if resume_dir is not None else None
    start = time.monotonic()
    sha256 = resume.sha256_of(target.bucket, key, path) if resume else None
    if sha256 is not None:
        console.line("ok", "sha256", f"{sha256} (from the interrupted upload; the file is unchanged)")
    else:
        with console.transfer(size, "sha256") as advance:
            sha256, size = file_sha256(path, advance)
        console.line("ok", "sha256", f"{sha256} ({transfer_summary(size, time.monotonic() - start)})")
    start = time.monotonic()
    with console.transfer(size, "upload") as advance:
        sent = upload_file(aws, path, target.bucket, key, sha256=sha256, declared_sha256=declared_sha256,
                           progress=advance, settings=settings or TransferSettings(), resume=resume)
    uploaded_s = time.monotonic() - start
    resumed = (f"; resumed: {sent.reused} of {sent.reused + sent.parts} parts ({human_bytes(sent.reused_bytes)}) "
               "were already in S3" if sent.resumed else "")
    console.line("ok", "uploaded", f"s3://{target.bucket}/{key}  "
                 f"{transfer_summary(size - sent.reused_bytes, uploaded_s)}{resumed}")
    return UploadResult(name=name, key=key, bucket=target.bucket, size=size, sha256=sha256,
                        uploaded_s=uploaded_s, etag=sent.etag, parts_sent=sent.parts, parts_resumed=sent.reused,
                        stored_at=sent.stored_at)


def wait_on_efs(api: ApiClient, name: str, sha256: str, *, declared_sha256: str | None = None,
                etag: str | None = None, stored_at: float | None = None, timeout: float = DEFAULT_TIMEOUT,
                clock: Clock | None = None, progress: Any = None, poll: Poll = WAIT_POLL) -> WaitResult:
    """Poll ``GET /models/{name}`` until it reports ``sha256``, or a refusal of this upload.

    Returns a :class:`WaitResult`; a producer refusal of this upload or the timeout are
    reported in it rather than raised, so the caller can still print the upload's facts.
    ``poll`` sets how often it asks (and so how finely the latency is measured).
    """
    clock = clock or Clock()
    declared = declared_sha256 or sha256
    start = clock.now()

    def check() -> Outcome[dict]:
        try:
            body = api.get_model(name).body
        except ApiError as exc:
            error = exc.body.get("error") if isinstance(exc.body, dict) else None
            if exc.status == 409 and exc.code == "UploadRejected" and isinstance(error, dict):
                if refusal_is_ours(error, etag, declared, stored_at):
                    raise refused(name, error, kept=False) from None
                return Outcome(False, detail="an earlier upload of this name was refused")
            if exc.status == 404:
                return Outcome(False, detail="not on EFS yet")
            raise
        body = body if isinstance(body, dict) else {}
        if body.get("sha256") == sha256 and "corrupt" not in body:
            return Outcome(True, body)
        rejected = body.get("rejected")  # an older version stays in place; was the refused one ours?
        if isinstance(rejected, dict) and refusal_is_ours(rejected, etag, declared, stored_at):
            raise refused(name, rejected, kept=True)
        return Outcome(False, detail="an older version is on EFS")

    def report(what: str, elapsed: float, detail: str) -> None:
        if progress and elapsed >= 1.0:  # a quick copy needs no progress line
            progress(what, elapsed, detail)

    try:
        wait_until(check, what=f"{name!r} to reach EFS", timeout=timeout, clock=clock, poll=poll, progress=report,
                   hint="The upload is in S3; `efsctl models` shows when it reaches EFS, and "
                        "`efsctl tail-logs --function producer` shows the producer's work.")
    except ProducerRejected as exc:
        return WaitResult(on_efs=False, rejected=True, error=exc.message, reason=exc.reason, hint=exc.hint)
    except WaitTimeout as exc:
        return WaitResult(on_efs=False, timed_out=True, error=exc.message)
    except EfsctlError as exc:  # the API failed while we waited: the upload itself stands
        return WaitResult(on_efs=False, error=exc.message)
    return WaitResult(on_efs=True, latency_s=clock.now() - start)


def refusal_is_ours(refusal: dict, etag: str | None, declared_sha256: str, stored_at: float | None = None) -> bool:
    """Whether a refusal the API reports is of this upload, not of an earlier one.

    The ETag names the object version the producer refused; without one (the upload's HEAD
    failed) a checksum refusal is ours when it expected the SHA-256 this upload declared. The
    same bytes uploaded again have the same ETag, so a refusal older than the object (S3's
    LastModified, whole seconds) is an earlier upload's: its cause may be gone (space freed)."""
    refused_at = _epoch(refusal.get("refused_at"))
    if stored_at is not None and refused_at is not None and refused_at < int(stored_at):
        return False
    theirs = refusal.get("etag")
    if etag and isinstance(theirs, str) and theirs:
        return theirs.strip('"') == etag
    expected = refusal.get("expected_sha256")
    return isinstance(expected, str) and expected.lower() == declared_sha256


def _epoch(value: Any) -> float | None:
    """Epoch seconds of an API timestamp (``2025-01-31T12:00:00.123Z``), or None."""
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def refused(name: str, refusal: dict, kept: bool) -> ProducerRejected:
    reason = str(refusal.get("reason") or "")
    detail = str(refusal.get("detail") or refusal.get("message") or reason or "no reason given").rstrip(".")
    tail = "; the previous version stays on EFS" if kept else ""
    return ProducerRejected(f"The producer refused {name!r}: {detail}{tail}.",
                            REFUSAL_HINTS.get(reason, "`efsctl tail-logs --function producer` shows why."),
                            reason=reason or None)
