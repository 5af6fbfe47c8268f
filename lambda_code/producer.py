"""Producer Lambda: S3 ``ObjectCreated`` events under MODELS_PREFIX -> complete models on EFS.

``handler`` is an adapter: it parses each record into an ObjectEvent and calls ``ingest``,
the core, which takes the S3 client and the EFS layout as arguments. Expected outcomes
(duplicate, stale, superseded, missing, rejected, ...) are logged and returned; only
unexpected failures are raised, after every record has been tried, so that Lambda's async
retry re-runs the event (records already installed then come back as duplicates).
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union
from urllib.parse import unquote_plus

import efs_common as common
import efs_records as rec
import efs_store as store
import efs_scratch as scratch
import efs_stream as stream
from efs_common import NameConflict, UnsafePath

INSTALLED = "installed"
DUPLICATE = "duplicate"      # this ETag is already the installed model (or already refused)
STALE = "stale"              # an event with a later sequencer was already applied
SUPERSEDED = "superseded"    # the object changed since the event (412 on IfMatch, or HEAD)
MISSING = "missing"          # the object is gone (404)
REJECTED = "rejected"        # bytes did not match x-amz-meta-sha256
IGNORED = "ignored"          # not for us: other prefix, folder marker, not ObjectCreated
INVALID_NAME = "invalid_name"
CONFLICT = "conflict"        # file/directory clash under models/
UNSAFE = "unsafe_path"       # an existing parent resolves outside models/
TOO_LARGE = "too_large"      # over MAX_MODEL_BYTES
NO_SPACE = "no_space"        # the file system is full
ACCESS_DENIED = "access_denied"  # S3 answered 403 to GetObject
FAILED = "failed"            # unexpected; the event is retried

# EFS's largest file (47.9 TiB); MAX_MODEL_BYTES in the environment lowers it.
EFS_MAX_FILE_BYTES = 52_673_613_135_872
SWEEP_INTERVAL_S = 60.0

log = common.JsonLogger("producer")
_clients: dict = {}
_prepared: dict = {}  # mount root -> monotonic time of its last temp sweep


def _s3():
    """One S3 client per warm container (created on first use; honours AWS_ENDPOINT_URL)."""
    return common.s3_client(_clients, max_attempts=5, connect_timeout=10, read_timeout=60)


def max_model_bytes(environ=os.environ) -> int:
    try:
        value = int(environ.get("MAX_MODEL_BYTES") or EFS_MAX_FILE_BYTES)
    except ValueError:
        return EFS_MAX_FILE_BYTES
    return min(max(value, 0), EFS_MAX_FILE_BYTES)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 record, decoded: ``key`` is the real key, ``name`` the model name under the prefix."""

    bucket: str
    key: str
    name: str
    etag: Optional[str]
    sequencer: Optional[str]
    size: Optional[int]


@dataclass(frozen=True)
class Skipped:
    key: Optional[str]
    outcome: str
    reason: str


def parse_record(record: object, models_prefix: str) -> Union[ObjectEvent, Skipped]:
    """An ObjectEvent for a record that names a model, else why it is skipped."""
    if not isinstance(record, dict):
        return Skipped(None, IGNORED, "record is not an object")
    s3 = record.get("s3")
    event_name = record.get("eventName")
    if not isinstance(s3, dict) or not isinstance(event_name, str):
        return Skipped(None, IGNORED, "not an S3 event record")
    obj = s3.get("object") if isinstance(s3.get("object"), dict) else {}
    bucket = (s3.get("bucket") or {}).get("name") if isinstance(s3.get("bucket"), dict) else None
    raw_key = obj.get("key")
    if not isinstance(raw_key, str) or not isinstance(bucket, str):
        return Skipped(None, IGNORED, "record has no bucket or key")
    key = unquote_plus(raw_key)  # S3 encodes keys like a form: space is '+'
    if not event_name.startswith("ObjectCreated:"):
        return Skipped(key, IGNORED, f"event {event_name} is not ObjectCreated")
    if not key.startswith(models_prefix):
        return Skipped(key, IGNORED, f"key is outside {models_prefix}")
    name = key[len(models_prefix):]
    if not name or key.endswith("/"):
        return Skipped(key, IGNORED, "folder marker")
    try:
        common.validate_model_name(name)
    except common.InvalidModelName as exc:
        return Skipped(key, INVALID_NAME, str(exc))
    etag = obj.get("eTag") or obj.get("etag")
    size = obj.get("size")
    return ObjectEvent(bucket=bucket, key=key, name=name,
                       etag=etag.strip('"') if isinstance(etag, str) and etag.strip('"') else None,
                       sequencer=common.normalize_sequencer(obj.get("sequencer")),
                       size=size if isinstance(size, int) and not isinstance(size, bool) else None)


# --------------------------------------------------------------------------- ordering


def _error_code(exc: BaseException) -> Optional[str]:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        return str(error.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
    return None


_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
# Without s3:ListBucket (the producer's least privilege) S3 answers 403, not 404, for a key
# that does not exist, so a 403 may be a deleted object as well as a real denial.
_DENIED_CODES = {"AccessDenied", "403"}
_SUPERSEDED_CODES = {"PreconditionFailed", "412"}


def _model_intact(layout: store.Layout, record: rec.ModelRecord) -> bool:
    """Whether the installed file is still what the record says (an upload of the same
    version then copies nothing); a file the consumer found corrupt is not, even if its size
    and mtime were kept, so that uploading it again repairs it."""
    try:
        st = os.stat(layout.model_path(record.name), follow_symlinks=False)
    except OSError:
        return False
    if not rec.record_matches(record, st):
        return False
    corruption = rec.read_corruption(layout, record.name)
    return corruption is None or not corruption.matches(st)


def _verdict(layout: store.Layout, ev: ObjectEvent, etag: Optional[str],
             record: Optional[rec.ModelRecord], refusal: Optional[rec.Refusal]) -> Optional[str]:
    """Why an object with ``etag`` from event ``ev`` must not be installed, from the records."""
    if record is not None and etag and record.etag == etag and _model_intact(layout, record):
        return DUPLICATE
    if (refusal is not None and etag and refusal.etag == etag and ev.sequencer and refusal.sequencer
            and common.compare_sequencers(ev.sequencer, refusal.sequencer) == 0):
        return DUPLICATE  # a replay of the refused event (same bytes may come back with a fixed sha256)
    for seen in (record, refusal):
        if seen is not None and ev.sequencer and seen.sequencer \
                and common.compare_sequencers(ev.sequencer, seen.sequencer) < 0:
            return STALE
    return None


def _newer(a: Optional[str], b: Optional[str]) -> bool:
    return bool(a and b and common.compare_sequencers(a, b) > 0)


def _needs_head_check(ev: ObjectEvent, record, refusal) -> bool:
    """Sequencers order events only when every party has one (moto's events have none):
    otherwise ask S3 whether our version is still the current one."""
    return any(seen is not None and not (ev.sequencer and seen.sequencer) for seen in (record, refusal))


def _still_current(s3, ev: ObjectEvent, etag: Optional[str]) -> Optional[str]:
    try:
        head = s3.head_object(Bucket=ev.bucket, Key=ev.key)
    except Exception as exc:
        if _error_code(exc) in _MISSING_CODES | _DENIED_CODES:
            return MISSING
        raise
    return None if (head.get("ETag") or "").strip('"') == etag else SUPERSEDED


# --------------------------------------------------------------------------- core


def ingest(s3, layout: store.Layout, ev: ObjectEvent, logger: common.JsonLogger = log) -> str:
    """Copy the object version named by ``ev`` to ``models/<name>`` if it is the latest one.

    Stream S3 -> temp file on EFS with SHA-256 in the same pass, fsync, verify against
    x-amz-meta-sha256, then, under the name's lock, re-check ordering and ``os.replace``.
    Returns one of the outcome constants (each logged); raises only on unexpected failures.
    A refusal (checksum, name, size, access) is also recorded for the API to report.
    """
    started = time.monotonic()
    fields = {"key": ev.key, "etag": ev.etag, "sequencer": ev.sequencer}
    layout.ensure()
    outcome = _before_fetch(layout, ev, fields)
    if outcome is None:
        outcome = _fetch_and_place(s3, layout, ev, fields)
    fields["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    level, msg = _OUTCOME_LOGS[outcome]
    logger.log(level, msg, outcome=outcome, **fields)
    return outcome


_OUTCOME_LOGS = {
    INSTALLED: ("INFO", "model installed"),
    DUPLICATE: ("INFO", "skipped: this version is already in place (or already refused)"),
    STALE: ("INFO", "skipped: a later event for this key was already applied"),
    SUPERSEDED: ("INFO", "skipped: the object changed since this event"),
    MISSING: ("WARNING", "skipped: object no longer exists"),
    REJECTED: ("ERROR", "checksum mismatch: upload rejected"),
    CONFLICT: ("ERROR", "model name cannot be installed: file/directory conflict under models/"),
    UNSAFE: ("ERROR", "model name cannot be installed: it resolves outside models/"),
    TOO_LARGE: ("ERROR", "upload refused: the object exceeds the model size limit"),
    NO_SPACE: ("ERROR", "upload refused: the file system is full"),
    ACCESS_DENIED: ("ERROR", "upload refused: S3 denied GetObject (object deleted, or no permission)"),
}

# outcome -> (refusal reason, API message) for the outcomes that refuse an upload
_REFUSALS = {
    CONFLICT: (rec.NAME_CONFLICT, "the name clashes with what is on EFS: {detail}"),
    UNSAFE: (rec.UNSAFE_PATH, "the name leads outside models/ on EFS: {detail}"),
    INVALID_NAME: (rec.INVALID_NAME, "the name is not a valid model name: {detail}"),
    TOO_LARGE: (rec.TOO_LARGE, "the object is {detail}"),
    NO_SPACE: (rec.NO_SPACE, "the file system is full ({detail}); free space, then upload again"),
    ACCESS_DENIED: (rec.ACCESS_DENIED, "S3 answered {detail} to the producer's GetObject: the object was "
                                       "deleted, or the producer's role, the bucket policy or a KMS key "
                                       "policy denies reading it"),
}


def _before_fetch(layout: store.Layout, ev: ObjectEvent, fields: dict) -> Optional[str]:
    """An outcome decided without touching S3: name clashes, duplicates, stale events."""
    try:
        store.check_install_target(layout, ev.name)
    except (NameConflict, UnsafePath) as exc:
        outcome = CONFLICT if isinstance(exc, NameConflict) else UNSAFE
        return refuse(layout, ev, ev.etag, outcome, str(exc), fields)
    record, refusal = rec.read_record(layout, ev.name), rec.read_refusal(layout, ev.name)
    verdict = _verdict(layout, ev, ev.etag, record, refusal)
    if verdict == DUPLICATE and record is not None and _newer(ev.sequencer, record.sequencer):
        _advance_sequencer(layout, ev)
    return verdict


def _fetch_and_place(s3, layout: store.Layout, ev: ObjectEvent, fields: dict) -> str:
    request = {"Bucket": ev.bucket, "Key": ev.key}
    if ev.etag:
        request["IfMatch"] = f'"{ev.etag}"'  # exactly the version this event announced
    try:
        response = s3.get_object(**request)
    except Exception as exc:
        code = _error_code(exc)
        if code in _SUPERSEDED_CODES:
            return SUPERSEDED
        if code in _MISSING_CODES:
            fields.update(error=code, detail=str(exc)[:500])
            return MISSING
        if code in _DENIED_CODES:
            # S3's own sentence says who may not do what on which key: keep it (log and record).
            fields.update(error=code, detail=str(exc)[:500])
            return refuse(layout, ev, ev.etag, ACCESS_DENIED, f"{code} ({str(exc)[:400]})", fields)
        raise
    body = response["Body"]
    etag = (response.get("ETag") or "").strip('"') or ev.etag
    length = response.get("ContentLength")
    limit = max_model_bytes()
    if isinstance(length, int) and length > limit:
        body.close()
        fields["bytes"] = length
        return refuse(layout, ev, etag, TOO_LARGE, f"{length} bytes; the limit is {limit} bytes", fields)
    try:
        return _copy_and_place(s3, layout, ev, etag, response, fields)
    finally:
        body.close()


def _copy_and_place(s3, layout: store.Layout, ev: ObjectEvent, etag: Optional[str], response: dict,
                    fields: dict) -> str:
    try:
        fd, tmp, sha256, nbytes = _copy_to_temp(layout, response["Body"], response.get("ContentLength"))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return refuse(layout, ev, etag, NO_SPACE, os.strerror(exc.errno).lower(), fields)
        raise
    outcome = None
    try:
        fields.update(etag=etag, bytes=nbytes, sha256=sha256)
        s3_sha256 = _s3_full_object_sha256(response)
        if s3_sha256 is not None and s3_sha256 != sha256:
            raise IOError(f"the bytes received hash to {sha256} but S3 holds {s3_sha256}: corrupted in transit")
        declared = (response.get("Metadata") or {}).get("sha256")
        if declared is not None and declared.strip().lower() != sha256:
            fields["expected_sha256"] = declared
            return _reject_checksum(s3, layout, ev, etag, declared, sha256, nbytes)
        outcome = _install(s3, layout, ev, etag, fd, tmp, sha256, nbytes, declared)
        return outcome
    finally:
        if outcome != INSTALLED:
            store.discard_temp(fd, tmp)  # refused, stale or failed: no temp is left behind


def _copy_to_temp(layout: store.Layout, body, size: Optional[int]) -> Tuple[int, str, str, int]:
    """Stream the body into a new temp file on EFS (fsynced): (fd, path, sha256, bytes).
    The fd stays open, so the temp stays locked (owned) until it is installed or discarded."""
    fd, tmp, direct = stream.open_for_copy(lambda flags: layout.create_temp("model", flags), size, layout.tmp)
    try:
        sha256, nbytes = stream.copy_to_fd(stream.body_readinto(body), fd, direct, expected_size=size)
    except BaseException:
        store.discard_temp(fd, tmp)
        raise
    return fd, tmp, sha256, nbytes


def _ordering_under_lock(s3, layout, ev, etag):
    record, refusal = rec.read_record(layout, ev.name), rec.read_refusal(layout, ev.name)
    verdict = _verdict(layout, ev, etag, record, refusal)
    if verdict is None and _needs_head_check(ev, record, refusal):
        verdict = _still_current(s3, ev, etag)
    return verdict


def _s3_full_object_sha256(response: dict) -> Optional[str]:
    """S3's own SHA-256 of the object (hex) when it was uploaded with one, else None.

    The copy reads the socket directly, so botocore's response-checksum wrapper is bypassed;
    this keeps the end-to-end check for uploads that asked S3 for a SHA-256. Composite
    (multipart, per-part) checksums are not a digest of the object and are ignored."""
    value = response.get("ChecksumSHA256")
    if not isinstance(value, str) or "-" in value or response.get("ChecksumType") == "COMPOSITE":
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest.hex() if len(digest) == 32 else None


def _install(s3, layout, ev: ObjectEvent, etag, fd: int, tmp: str, sha256: str, nbytes: int,
             declared: Optional[str]) -> str:
    with store.name_lock(layout, ev.name):
        verdict = _ordering_under_lock(s3, layout, ev, etag)
        if verdict is not None:
            return verdict
        try:
            dest = store.make_install_target(layout, ev.name)
            store.commit_temp(fd, tmp, dest)
        except (NameConflict, UnsafePath) as exc:
            return _refuse_locked(layout, ev, etag, CONFLICT if isinstance(exc, NameConflict) else UNSAFE, str(exc))
        except IsADirectoryError:
            return _refuse_locked(layout, ev, etag, CONFLICT, f"models/{ev.name} is a folder of other models")
        st = os.stat(dest, follow_symlinks=False)
        store.fsync_dir(os.path.dirname(dest))
        rec.write_record(layout, rec.ModelRecord(
            name=ev.name, key=ev.key, size=nbytes, sha256=sha256, etag=etag, sequencer=ev.sequencer,
            mtime_ns=st.st_mtime_ns, installed_at=common.utc_iso(time.time()), ino=st.st_ino,
            declared_sha256=declared.strip().lower() if declared else None))
        rec.clear_refusal(layout, ev.name)
        rec.clear_corruption(layout, ev.name)
    return INSTALLED


def _reject_checksum(s3, layout, ev: ObjectEvent, etag, expected: str, actual: str, nbytes: int) -> str:
    with store.name_lock(layout, ev.name):
        verdict = _ordering_under_lock(s3, layout, ev, etag)
        if verdict is not None:
            return verdict
        rec.write_refusal(layout, rec.Refusal(
            name=ev.name, key=ev.key, etag=etag, sequencer=ev.sequencer, reason=rec.CHECKSUM_MISMATCH,
            message=f"x-amz-meta-sha256 was {expected} but the object's sha256 is {actual}",
            refused_at=common.utc_iso(time.time()), expected_sha256=expected, actual_sha256=actual, size=nbytes))
    return REJECTED


def refuse(layout: store.Layout, ev, etag: Optional[str], outcome: str, detail: str, fields: dict) -> str:
    """Record that the upload ``ev`` was refused (unless a later event is already recorded)."""
    fields["reason"] = detail
    with store.name_lock(layout, ev.name):
        return _refuse_locked(layout, ev, etag, outcome, detail)


def _refuse_locked(layout: store.Layout, ev, etag: Optional[str], outcome: str, detail: str) -> str:
    verdict = _verdict(layout, ev, etag, rec.read_record(layout, ev.name), rec.read_refusal(layout, ev.name))
    if verdict is not None:
        return verdict
    reason, template = _REFUSALS[outcome]
    rec.write_refusal(layout, rec.Refusal(
        name=ev.name, key=ev.key, etag=etag, sequencer=ev.sequencer, reason=reason,
        message=template.format(detail=detail)[:1000], refused_at=common.utc_iso(time.time())))
    return outcome


def _advance_sequencer(layout, ev: ObjectEvent) -> None:
    """A re-upload of identical bytes: nothing to copy, but later events must compare to it."""
    with store.name_lock(layout, ev.name):
        record = rec.read_record(layout, ev.name)
        if record is None or record.etag != ev.etag or not _newer(ev.sequencer, record.sequencer):
            return
        record.sequencer = ev.sequencer
        rec.write_record(layout, record)
        refusal = rec.read_refusal(layout, ev.name)
        if refusal is not None and not _newer(refusal.sequencer, ev.sequencer):
            rec.clear_refusal(layout, ev.name)


# --------------------------------------------------------------------------- handler


def _prepare(layout: store.Layout, now: Optional[float] = None) -> None:
    """Make the layout (once per container) and remove temps no live copy owns: on a cold
    start, then at most once a minute."""
    now = time.monotonic() if now is None else now
    last = _prepared.get(layout.root)
    if last is None:
        layout.ensure()
    elif now - last < SWEEP_INTERVAL_S:
        return
    _prepared[layout.root] = now
    files, nbytes = store.sweep_temps(layout)
    if files:
        log.warning("removed temporary files left by killed copies", count=files, bytes=nbytes)


def _remove_validation_data(layout: store.Layout, event: dict) -> dict:
    try:
        result = scratch.remove(layout, event)
    except common.HandlerError as exc:
        log.warning("validation data not removed: the request names something else", reason=str(exc)[:300])
        return {"error": {"code": exc.code, "message": str(exc)}}
    log.info("validation data removed", run=result["run"], **result["removed"])
    return result


def _refuse_invalid_name(layout: store.Layout, record: object, parsed: Skipped, models_prefix: str) -> None:
    """An upload under the prefix whose name breaks the rules: record why, for the API."""
    s3 = record.get("s3") if isinstance(record, dict) else None
    obj = s3.get("object") if isinstance(s3, dict) and isinstance(s3.get("object"), dict) else {}
    etag = obj.get("eTag") if isinstance(obj.get("eTag"), str) else None
    name = parsed.key[len(models_prefix):]
    ev = ObjectEvent(bucket="", key=parsed.key, name=name, etag=etag.strip('"') if etag else None,
                     sequencer=common.normalize_sequencer(obj.get("sequencer")), size=None)
    refuse(layout, ev, ev.etag, INVALID_NAME, parsed.reason, {})


def handler(event, context):
    """Lambda entry point for S3 event notifications (and, invoked directly by the stack's
    operator, the removal of what ``efsctl validate`` wrote: see ``efs_scratch``)."""
    log.bind(common.context_request_id(context), common.context_function_name(context, "producer"))
    config = common.Config.from_env()
    layout = store.Layout(config.mount)
    _prepare(layout)
    if scratch.is_removal(event):
        return _remove_validation_data(layout, event)
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        log.info("event has no Records (an s3:TestEvent?); nothing to do")
        return {"results": []}
    results: List[dict] = []
    failures = 0
    for record in records:
        parsed = parse_record(record, config.models_prefix)
        if isinstance(parsed, Skipped):
            level = log.warning if parsed.outcome == INVALID_NAME else log.info
            level(f"record skipped: {parsed.reason}", key=parsed.key, outcome=parsed.outcome)
            if parsed.outcome == INVALID_NAME:
                _refuse_invalid_name(layout, record, parsed, config.models_prefix)
            results.append({"key": parsed.key, "outcome": parsed.outcome})
            continue
        try:
            outcome = ingest(_s3(), layout, parsed)
        except Exception as exc:
            failures += 1
            outcome = FAILED
            log.error("copy failed; the event will be retried", key=parsed.key,
                      error=type(exc).__name__, detail=str(exc)[:500])
        results.append({"key": parsed.key, "outcome": outcome})
    if failures:
        raise RuntimeError(f"{failures} of {len(records)} records failed")
    return {"results": results}
