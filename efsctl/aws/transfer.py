"""S3 uploads for ``efsctl upload``: one PUT for small files, a resumable multipart upload for
large ones, parts sent in parallel.

The uploader's SHA-256 travels as ``x-amz-meta-sha256`` so the producer can verify what it
copies to EFS. A multipart upload keeps a small record (upload id, part size, the file's size
and mtime, its SHA-256) beside the state; an interrupted run leaves the upload open in S3, and
the next run of the same upload asks S3 which parts it has (ListParts), checks each against the
file (CRC32, or the part's MD5 ETag), and sends only the others.

Written by hand because s3transfer, which boto3's ``upload_file`` drives, cannot resume: it
aborts the multipart upload on any error and keeps nothing of it. Parts are read straight from
the file with s3transfer's ``ReadFileChunk`` (never held whole in memory); botocore signs and
retries each call.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import json
import os
import threading
import zlib
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

MiB = 1024 * 1024
MAX_PARTS = 10_000     # S3's limit on the parts of one upload
MIN_PART = 5 * MiB     # and on the size of every part but the last


@dataclass(frozen=True)
class TransferSettings:
    """Multipart above ``threshold``, ``chunk``-sized parts, ``concurrency`` in flight."""

    threshold: int = 64 * MiB
    chunk: int = 16 * MiB
    concurrency: int = 8

    def part_size(self, size: int) -> int:
        """``chunk``, grown as needed to stay within S3's 10,000 parts."""
        part = max(self.chunk, MIN_PART)
        while -(-size // part) > MAX_PARTS:
            part *= 2
        return part


@dataclass
class ResumeRecord:
    """What resuming needs, kept in ``<resume_dir>/<upload key>.json`` (no secrets)."""

    bucket: str
    key: str
    upload_id: str
    path: str
    size: int
    mtime_ns: int
    sha256: str
    part_size: int

    def same_file(self, path: Path, stat: os.stat_result) -> bool:
        """The file this record is of, unchanged since (same size and mtime)."""
        return self.path == str(path.resolve()) and self.size == stat.st_size and self.mtime_ns == stat.st_mtime_ns

    def matches(self, path: Path, stat: os.stat_result, part_size: int) -> bool:
        return self.same_file(path, stat) and self.part_size == part_size


@dataclass
class Uploaded:
    """What an upload did: ``parts`` sent now, ``reused`` already in S3 from an earlier run."""

    parts: int = 0
    reused: int = 0
    reused_bytes: int = 0
    resumed: bool = False
    etag: str | None = None          # the object's, from the call that stored it
    stored_at: float | None = None   # when S3 stored it: that answer's Date (epoch seconds)

    def stored(self, response: dict[str, Any]) -> "Uploaded":
        """Take the ETag and the time from PutObject's or CompleteMultipartUpload's answer (a HEAD
        afterwards could already see another upload of the same key)."""
        self.etag = (response.get("ETag") or "").strip('"') or None
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        when = headers.get("date") or headers.get("last-modified")
        if when:
            with contextlib.suppress(TypeError, ValueError):
                self.stored_at = email.utils.parsedate_to_datetime(when).timestamp()
        return self


class ResumeStore:
    """The records of open multipart uploads, one JSON file each (written atomically, 0600)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, bucket: str, key: str) -> Path:
        return self.directory / (hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:32] + ".json")

    def load(self, bucket: str, key: str) -> ResumeRecord | None:
        try:
            data = json.loads(self._path(bucket, key).read_text())
            record = ResumeRecord(**data)
        except (OSError, ValueError, TypeError):
            return None
        return record if (record.bucket, record.key) == (bucket, key) else None

    def save(self, record: ResumeRecord) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(record.bucket, record.key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(record), fh)
        os.replace(tmp, path)

    def drop(self, bucket: str, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(bucket, key).unlink()

    def sha256_of(self, bucket: str, key: str, path: Path) -> str | None:
        """The file's SHA-256 as an earlier, interrupted run of this upload computed it, if the
        file is unchanged since (same size and mtime): hashing a large file again costs a pass."""
        record = self.load(bucket, key)
        return record.sha256 if record is not None and record.same_file(path, path.stat()) else None


def upload_file(aws: Any, path: str | Path, bucket: str, key: str, *, sha256: str,
                progress: Callable[[int], None] | None = None, settings: TransferSettings = TransferSettings(),
                resume: ResumeStore | None = None, declared_sha256: str | None = None) -> Uploaded:
    """Upload ``path`` to ``s3://bucket/key`` with ``declared_sha256`` (default ``sha256``, the
    file's own) as its ``x-amz-meta-sha256``. ``progress(nbytes)`` is called as bytes go out
    (from the transfer threads); parts already in S3 from an interrupted run count at once."""
    path = Path(path)
    size = path.stat().st_size
    meta = declared_sha256 or sha256
    try:
        if size < settings.threshold:
            with open(path, "rb") as body:
                response = aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body, Metadata={"sha256": meta},
                                                       ContentType="application/octet-stream")
            if progress:
                progress(size)
            return Uploaded(parts=1).stored(response)
        return _multipart(aws, path, bucket, key, sha256=sha256, meta=meta, progress=progress, settings=settings,
                          resume=resume)
    except Exception as exc:
        raise _upload_error(exc, bucket, key, aws) from None


def _multipart(aws: Any, path: Path, bucket: str, key: str, *, sha256: str, meta: str,
               progress: Callable[[int], None] | None, settings: TransferSettings,
               resume: ResumeStore | None) -> Uploaded:
    s3 = aws.client("s3")
    stat = path.stat()
    part_size = settings.part_size(stat.st_size)
    count = max(1, -(-stat.st_size // part_size))
    outcome = Uploaded()
    record = resume.load(bucket, key) if resume else None
    have: dict[int, dict[str, str]] = {}
    if record is not None and record.matches(path, stat, part_size) and record.sha256 == sha256:
        have = _parts_in_s3(s3, record, path, part_size, stat.st_size)
        if have is None:   # S3 no longer knows the upload (completed, aborted or expired)
            have = {}
            record = None
        else:
            outcome.resumed = True
    elif record is not None:   # the file changed (or another part size): its parts are of no use
        with contextlib.suppress(Exception):
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=record.upload_id)
        record = None
    if record is None:
        created = s3.create_multipart_upload(Bucket=bucket, Key=key, Metadata={"sha256": meta},
                                             ContentType="application/octet-stream", ChecksumAlgorithm="CRC32")
        record = ResumeRecord(bucket, key, created["UploadId"], str(path.resolve()), stat.st_size,
                              stat.st_mtime_ns, sha256, part_size)
        if resume:
            resume.save(record)
    outcome.reused = len(have)
    outcome.reused_bytes = sum(_part_length(n, part_size, stat.st_size) for n in have)
    if progress and outcome.reused_bytes:
        progress(outcome.reused_bytes)
    missing = [n for n in range(1, count + 1) if n not in have]
    sent = _send_parts(s3, record, path, missing, part_size, stat.st_size, settings.concurrency, progress)
    outcome.parts = len(sent)
    parts = sorted({**have, **sent}.items())
    completed = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=record.upload_id, MultipartUpload={"Parts": [
        {"PartNumber": n, "ETag": p["ETag"], **({"ChecksumCRC32": p["ChecksumCRC32"]} if p.get("ChecksumCRC32") else {})}
        for n, p in parts]})
    if resume:
        resume.drop(bucket, key)
    return outcome.stored(completed)


def _part_length(number: int, part_size: int, size: int) -> int:
    return min(part_size, size - (number - 1) * part_size)


def _read_part(path: Path, number: int, part_size: int, size: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek((number - 1) * part_size)
        return fh.read(_part_length(number, part_size, size))


def _parts_in_s3(s3: Any, record: ResumeRecord, path: Path, part_size: int, size: int
                 ) -> dict[int, dict[str, str]] | None:
    """The parts S3 holds that match the file, by part number; None if the upload is gone."""
    found: dict[int, dict[str, str]] = {}
    try:
        pages = s3.get_paginator("list_parts").paginate(Bucket=record.bucket, Key=record.key,
                                                         UploadId=record.upload_id)
        listed = [part for page in pages for part in page.get("Parts", [])]
    except Exception as exc:
        from efsctl.aws.errors import error_code

        if error_code(exc) in ("NoSuchUpload", "404"):
            return None
        raise
    for part in listed:
        number = int(part["PartNumber"])
        if part.get("Size") != _part_length(number, part_size, size):
            continue
        data = _read_part(path, number, part_size, size)
        if part.get("ChecksumCRC32"):
            ok = part["ChecksumCRC32"] == _crc32(data)
        else:   # SSE-S3 (the stack's bucket): a part's ETag is the MD5 of its bytes
            ok = part.get("ETag", "").strip('"') == hashlib.md5(data).hexdigest()  # noqa: S324 - S3's own ETag
        if ok:
            found[number] = {"ETag": part["ETag"], "ChecksumCRC32": part.get("ChecksumCRC32", "")}
    return found


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _send_parts(s3: Any, record: ResumeRecord, path: Path, numbers: list[int], part_size: int, size: int,
                concurrency: int, progress: Callable[[int], None] | None) -> dict[int, dict[str, str]]:
    """Upload ``numbers`` in parallel; on the first failure (or Ctrl-C) stop starting new ones
    and let the error through: what was sent stays in S3 for the next run."""
    from s3transfer.utils import ReadFileChunk, signal_not_transferring, signal_transferring

    # As s3transfer does: a part's bytes count as sent only while the request is being sent,
    # not while botocore reads the body to checksum it.
    s3.meta.events.register_first("request-created.s3", signal_not_transferring,
                                  unique_id="s3upload-not-transferring")
    s3.meta.events.register_last("request-created.s3", signal_transferring, unique_id="s3upload-transferring")
    sent: dict[int, dict[str, str]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def one(number: int) -> None:
        if stop.is_set():
            return
        start = (number - 1) * part_size
        callbacks = [lambda bytes_transferred: progress(bytes_transferred)] if progress else []
        try:
            with ReadFileChunk.from_filename(str(path), start, _part_length(number, part_size, size),
                                             callbacks=callbacks, enable_callbacks=False) as body:
                response = s3.upload_part(Bucket=record.bucket, Key=record.key, UploadId=record.upload_id,
                                          PartNumber=number, Body=body, ChecksumAlgorithm="CRC32")
        except BaseException:
            stop.set()   # no new part starts once one has failed
            raise
        with lock:
            sent[number] = {"ETag": response["ETag"], "ChecksumCRC32": response.get("ChecksumCRC32", "")}

    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="efsctl-upload")
    futures = [pool.submit(one, n) for n in numbers]
    try:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)   # all of them, unless one failed
        failed = next((f.exception() for f in done if f.exception() is not None), None)
        if failed is not None:
            raise failed
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return sent


def _upload_error(exc: Exception, bucket: str, key: str, aws: Any) -> Exception:
    from efsctl.aws.errors import error_code, translate
    from efsctl.errors import AwsError, EfsctlError

    if isinstance(exc, EfsctlError):
        return exc
    code = error_code(exc)
    if code == "NoSuchBucket":
        return AwsError(f"The stack's bucket {bucket} does not exist.",
                        "Run `efsctl up` (or `efsctl up --local`) to create it, then upload again.",
                        code="NoSuchBucket", operation="PutObject")
    if code in ("AccessDenied", "403") and aws.plain_http:
        # The stack's bucket refuses requests without TLS; plain moto applies that Deny to every
        # request over its http:// endpoint (AWS-RULES 35), whatever the caller may do.
        return AwsError(f"S3 at {aws.endpoint_url} refused the upload to s3://{bucket}/{key} (access denied).",
                        "The stack's bucket policy denies requests that do not use TLS, and this endpoint is "
                        "plain HTTP: use an https:// endpoint, or efsctl's own local cloud (`efsctl up --local`), "
                        "which treats its loopback endpoint as TLS.", code=code, operation="PutObject")
    return translate(exc, service="s3") or AwsError(f"Upload to s3://{bucket}/{key} failed: {exc}.")
