"""S3 event notifications to Lambda: built as AWS builds them, delivered asynchronously.

moto invokes the function synchronously, inside PutObject, with a record whose key is encoded
with ``quote_plus`` including ``/`` and which has no ``sequencer``. AWS encodes the key like a
form value but keeps ``/``, strips the ETag's quotes, adds ``versionId`` on versioned buckets and
a hex ``sequencer`` that grows for each key, and invokes the function asynchronously once the
object is committed (so the upload returns at once, and a failing function is retried twice).

The event is queued durably inside the upload's own request (so it is saved with the object, and
a crash after the upload was answered cannot lose it) and released to run once the response is
sent.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from typing import Any
from urllib.parse import quote_plus

from efsctl.local import moto_models
from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target
from efsctl.local.fidelity.lambda_invoke import locator

OWNER_ID = "A3EFSCTLLOCALOWNER"
_seq_lock = threading.Lock()
_last_seq = 0
_on_sequence: Any = None     # the persister's touch, when the sequencer is persisted


def sequencer() -> str:
    """An 18-digit upper-case hex value larger than every one before it (across restarts too)."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(_last_seq + 1, time.time_ns())
        value = _last_seq
    if _on_sequence is not None:
        _on_sequence()
    return f"{value:018X}"


def _restore_sequencer(value: int) -> None:
    global _last_seq
    with _seq_lock:
        _last_seq = max(_last_seq, int(value))


def event_key(name: str) -> str:
    return quote_plus(name, safe="/")


def s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
    now = time.time()
    record_object: dict[str, Any] = {"key": event_key(key.name)}
    if "ObjectRemoved" not in event_name:
        record_object["size"] = key.size
        record_object["eTag"] = key.etag.replace('"', "")
    if getattr(bucket, "is_versioned", False) and key.version_id not in (None, "null"):
        record_object["versionId"] = key.version_id
    record_object["sequencer"] = sequencer()
    return {"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": bucket.region_name,
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z",
        "eventName": event_name.removeprefix("s3:"),
        "userIdentity": {"principalId": f"AWS:{OWNER_ID}"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": os.urandom(8).hex().upper(),
                              "x-amz-id-2": base64.b64encode(os.urandom(48)).decode()},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": notification_id,
               "bucket": {"name": bucket.name, "ownerIdentity": {"principalId": OWNER_ID}, "arn": bucket.arn},
               "object": record_object},
    }]}


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.s3 import notifications

    global _on_sequence

    def invoke_awslambda(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        payload = json.dumps(event_body).encode()
        job = ctx.invoker.prepare(moto_models.function_name_of(fn_arn), locator(ctx, fn_arn), payload, source="s3", arn=fn_arn)
        ctx.deferral.defer(lambda: ctx.invoker.release(job))

    if ctx.persist is not None:
        _on_sequence = lambda: ctx.persist.touch_extra("s3-sequencer")  # noqa: E731
        ctx.persist.register("s3-sequencer", lambda: _last_seq, _restore_sequencer)

    patcher.replace(notifications, "_get_s3_event", s3_event)
    patcher.replace(notifications, "_invoke_awslambda", invoke_awslambda)


PATCH = Patch(
    name="s3_events",
    summary="S3 event records as AWS builds them (key encoding, eTag, versionId, sequencer), delivered async",
    targets=(
        Target("moto.s3.notifications:_get_s3_event", ("event_name", "bucket", "key", "notification_id")),
        Target("moto.s3.notifications:_invoke_awslambda", ("account_id", "event_body", "fn_arn", "region_name")),
        Target("moto.s3.notifications:send_event", ("account_id", "event_name", "bucket", "key")),
    ),
    install=install,
)
