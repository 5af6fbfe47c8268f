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
import os
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union
from urllib.parse import unquote_plus

import efs_common as common
import efs_store as store
import efs_stream as stream
from efs_common import NameConflict, UnsafePath

INSTALLED = "installed"
DUPLICATE = "duplicate"      # this ETag is already the installed model (or already rejected)
STALE = "stale"              # an event with a later sequencer was already applied
SUPERSEDED = "superseded"    # the object changed since the event (412 on IfMatch, or HEAD)
MISSING = "missing"          # the object is gone (404)
REJECTED = "rejected"        # bytes did not match x-amz-meta-sha256
IGNORED = "ignored"          # not for us: other prefix, folder marker, not ObjectCreated
INVALID_NAME = "invalid_name"
CONFLICT = "conflict"        # file/directory clash under models/
UNSAFE = "unsafe_path"       # an existing parent resolves outside models/
FAILED = "failed"            # unexpected; the event is retried

log = common.JsonLogger("producer")
_clients: dict = {}
_prepared: set = set()


def _s3():
    """One S3 client per warm container (created on first use; honours AWS_ENDPOINT_URL)."""
    return common.s3_client(_clients, max_attempts=5, connect_timeout=10, read_timeout=60)


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


# Without s3:ListBucket (the producer's least privilege) S3 answers 403, not 404, for a key
# that does not exist, so AccessDenied is reported as missing too, at ERROR level.
_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchBucket", "AccessDenied", "403"}
_SUPERSEDED_CODES = {"PreconditionFailed", "412"}


def _model_intact(layout: store.Layout, record: store.ModelRecord) -> bool:
    try:
        st = os.stat(layout.model_path(record.name), follow_symlinks=False)
    except OSError:
        return False
    return store.record_matches(record, st)


def _verdict(layout: store.Layout, ev: ObjectEvent, etag: Optional[str],
             record: Optional[store.ModelRecord], rejection: Optional[store.Rejection]) -> Optional[str]:
    """Why an object with ``etag`` from event ``ev`` must not be installed, from the records."""
    if record is not None and etag and record.etag == etag and _model_intact(layout, record):
        return DUPLICATE
    if (rejection is not None and etag and rejection.etag == etag and ev.sequencer and rejection.sequencer
            and common.compare_sequencers(ev.sequencer, rejection.sequencer) == 0):
        return DUPLICATE  # a replay of the rejected event (same bytes may come back with a fixed sha256)
    for seen in (record, rejection):
        if seen is not None and ev.sequencer and seen.sequencer \
                and common.compare_sequencers(ev.sequencer, seen.sequencer) < 0:
            return STALE
    return None


def _newer(a: Optional[str], b: Optional[str]) -> bool:
    return bool(a and b and common.compare_sequencers(a, b) > 0)


def _needs_head_check(ev: ObjectEvent, record, rejection) -> bool:
    """Sequencers order events only when every party has one (moto's events have none):
    otherwise ask S3 whether our version is still the current one."""
    return any(seen is not None and not (ev.sequencer and seen.sequencer) for seen in (record, rejection))


def _still_current(s3, ev: ObjectEvent, etag: Optional[str]) -> Optional[str]:
    try:
        head = s3.head_object(Bucket=ev.bucket, Key=ev.key)
    except Exception as exc:
        if _error_code(exc) in _MISSING_CODES:
            return MISSING
        raise
    return None if (head.get("ETag") or "").strip('"') == etag else SUPERSEDED


# --------------------------------------------------------------------------- core


def ingest(s3, layout: store.Layout, ev: ObjectEvent, logger: common.JsonLogger = log) -> str:
    """Copy the object version named by ``ev`` to ``models/<name>`` if it is the latest one.

    Stream S3 -> temp file on EFS with SHA-256 in the same pass, fsync, verify against
    x-amz-meta-sha256, then, under the name's lock, re-check ordering and ``os.replace``.
    Returns one of the outcome constants (each logged); raises only on unexpected failures.
    """
    started = time.monotonic()
    fields = {"key": ev.key, "etag": ev.etag, "sequencer": ev.sequencer}
    layout.ensure()
    outcome = _before_fetch(layout, ev)
    if outcome is None:
        outcome = _fetch_and_place(s3, layout, ev, fields)
    fields["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    level, msg = _OUTCOME_LOGS[outcome]
    if outcome == MISSING and fields.get("error") in ("AccessDenied", "403"):
        level, msg = "ERROR", "skipped: object missing or access denied (no s3:ListBucket?)"
    logger.log(level, msg, outcome=outcome, **fields)
    return outcome


_OUTCOME_LOGS = {
    INSTALLED: ("INFO", "model installed"),
    DUPLICATE: ("INFO", "skipped: this version is already in place (or already rejected)"),
    STALE: ("INFO", "skipped: a later event for this key was already applied"),
    SUPERSEDED: ("INFO", "skipped: the object changed since this event"),
    MISSING: ("WARNING", "skipped: object no longer exists"),
    REJECTED: ("ERROR", "checksum mismatch: upload rejected"),
    CONFLICT: ("ERROR", "model name cannot be installed: file/directory conflict under models/"),
    UNSAFE: ("ERROR", "model name cannot be installed: it resolves outside models/"),
}


def _before_fetch(layout: store.Layout, ev: ObjectEvent) -> Optional[str]:
    """An outcome decided without touching S3: name clashes, duplicates, stale events."""
    try:
        store.check_install_target(layout, ev.name)
    except NameConflict:
        return CONFLICT
    except UnsafePath:
        return UNSAFE
    record, rejection = store.read_record(layout, ev.name), store.read_rejection(layout, ev.name)
    verdict = _verdict(layout, ev, ev.etag, record, rejection)
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
            fields.update(error=code, detail=str(exc)[:500])   # S3's reason: who may not do what, on which key
            return MISSING
        raise
    body = response["Body"]
    etag = (response.get("ETag") or "").strip('"') or ev.etag
    tmp = None
    try:
        tmp, sha256, nbytes = _copy_to_temp(layout, body, response.get("ContentLength"))
        fields.update(etag=etag, bytes=nbytes, sha256=sha256)
        s3_sha256 = _s3_full_object_sha256(response)
        if s3_sha256 is not None and s3_sha256 != sha256:
            raise IOError(f"the bytes received hash to {sha256} but S3 holds {s3_sha256}: corrupted in transit")
        expected = (response.get("Metadata") or {}).get("sha256")
        if expected is not None and expected.strip().lower() != sha256:
            fields["expected_sha256"] = expected
            return _reject(s3, layout, ev, etag, expected, sha256, nbytes)
        outcome = _install(s3, layout, ev, etag, tmp, sha256, nbytes)
        if outcome == INSTALLED:
            tmp = None
        return outcome
    finally:
        body.close()
        if tmp is not None:
            store.unlink_quietly(tmp)  # rejected, stale or failed: no temp is left behind


def _copy_to_temp(layout: store.Layout, body, size: Optional[int]) -> Tuple[str, str, int]:
    """Stream the body into a new temp file on EFS (fsynced): (path, sha256, bytes)."""
    fd, tmp, direct = stream.open_for_copy(lambda flags: layout.create_temp("model", flags), size, layout.tmp)
    try:
        sha256, nbytes = stream.copy_to_fd(stream.body_readinto(body), fd, direct, expected_size=size)
    except BaseException:
        os.close(fd)
        store.unlink_quietly(tmp)
        raise
    os.close(fd)
    return tmp, sha256, nbytes


def _ordering_under_lock(s3, layout, ev, etag):
    record, rejection = store.read_record(layout, ev.name), store.read_rejection(layout, ev.name)
    verdict = _verdict(layout, ev, etag, record, rejection)
    if verdict is None and _needs_head_check(ev, record, rejection):
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


def _install(s3, layout, ev: ObjectEvent, etag, tmp: str, sha256: str, nbytes: int) -> str:
    with store.name_lock(layout, ev.name):
        verdict = _ordering_under_lock(s3, layout, ev, etag)
        if verdict is not None:
            return verdict
        try:
            dest = store.make_install_target(layout, ev.name)
            os.replace(tmp, dest)
        except (NameConflict, UnsafePath) as exc:
            return CONFLICT if isinstance(exc, NameConflict) else UNSAFE
        except IsADirectoryError:
            return CONFLICT
        st = os.stat(dest, follow_symlinks=False)
        store.fsync_dir(os.path.dirname(dest))
        store.write_record(layout, store.ModelRecord(
            name=ev.name, key=ev.key, size=nbytes, sha256=sha256, etag=etag, sequencer=ev.sequencer,
            mtime_ns=st.st_mtime_ns, installed_at=common.utc_iso(time.time())))
        store.clear_rejection(layout, ev.name)
    return INSTALLED


def _reject(s3, layout, ev: ObjectEvent, etag, expected: str, actual: str, nbytes: int) -> str:
    with store.name_lock(layout, ev.name):
        verdict = _ordering_under_lock(s3, layout, ev, etag)
        if verdict is not None:
            return verdict
        store.write_rejection(layout, store.Rejection(
            name=ev.name, key=ev.key, etag=etag, sequencer=ev.sequencer, expected_sha256=expected,
            actual_sha256=actual, size=nbytes, rejected_at=common.utc_iso(time.time())))
    return REJECTED


def _advance_sequencer(layout, ev: ObjectEvent) -> None:
    """A re-upload of identical bytes: nothing to copy, but later events must compare to it."""
    with store.name_lock(layout, ev.name):
        record = store.read_record(layout, ev.name)
        if record is None or record.etag != ev.etag or not _newer(ev.sequencer, record.sequencer):
            return
        record.sequencer = ev.sequencer
        store.write_record(layout, record)
        rejection = store.read_rejection(layout, ev.name)
        if rejection is not None and not _newer(rejection.sequencer, ev.sequencer):
            store.clear_rejection(layout, ev.name)


# --------------------------------------------------------------------------- handler


def _prepare(layout: store.Layout) -> None:
    if layout.root not in _prepared:
        layout.ensure()
        removed = store.sweep_temps(layout)
        if removed:
            log.warning("removed abandoned temporary files", count=removed)
        _prepared.add(layout.root)


def handler(event, context):
    """Lambda entry point for S3 event notifications."""
    log.bind(common.context_request_id(context), common.context_function_name(context, "producer"))
    config = common.Config.from_env()
    layout = store.Layout(config.mount)
    _prepare(layout)
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
