"""Process entry points for the concurrency tests (importable, so the 'spawn' start method works)."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (str(HERE.parents[1] / "lambda_code"), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

BUCKET = "efsctl-test-bucket"
NAME = "race/model.bin"
KEY = "models/" + NAME


def version_bytes(index: int, size: int) -> bytes:
    """Distinct, self-describing content per version; sizes differ too."""
    stamp = f"version-{index:04d}|".encode()
    length = size + index * 4099
    return (stamp * (length // len(stamp) + 1))[:length]


def version_sha(index: int, size: int) -> str:
    return hashlib.sha256(version_bytes(index, size)).hexdigest()


def sequencer(index: int) -> str:
    return f"0055AED6DCD9{index:06X}"


# --------------------------------------------------------------------------- real S3 (moto server)


def s3_writer(endpoint: str, mount: str, indices: list, size: int, upload_lock, barrier, results) -> None:
    """Upload each version like `efsctl upload`, then run the producer on its event.

    Uploads are serialised: moto's server disposes an overwritten key while a concurrent PUT
    of the same key still reads it (a 500 that real S3 never gives). Producers still race
    with uploads and with each other.
    """
    try:
        os.environ.update(AWS_ENDPOINT_URL=endpoint, EFS_MOUNT_PATH=mount, BUCKET=BUCKET)
        import boto3
        import producer
        from lambda_events import s3_event, s3_record

        s3 = boto3.client("s3", region_name="us-east-1")
        barrier.wait()
        for index in indices:
            data = version_bytes(index, size)
            with upload_lock:
                etag = s3.put_object(Bucket=BUCKET, Key=KEY, Body=data,
                                     Metadata={"sha256": hashlib.sha256(data).hexdigest()})["ETag"].strip('"')
            # moto's events carry no sequencer: ordering falls back to the HEAD check
            outcome = producer.handler(s3_event(s3_record(KEY, etag, len(data))), None)["results"][0]["outcome"]
            results.put(("writer", index, outcome))
    except BaseException:
        results.put(("error", "writer", traceback.format_exc()))


# --------------------------------------------------------------------------- fake S3 with every version


class _FakeBody(io.BytesIO):
    pass


class AllVersionsS3:
    """An S3 that still serves every version by ETag: the worst case for ordering, where no
    IfMatch ever fails and only sequencers and the lock keep the newest version in place."""

    def __init__(self, size: int):
        self.size = size

    @staticmethod
    def etag(index: int) -> str:
        return hashlib.md5(str(index).encode()).hexdigest()

    def get_object(self, Bucket, Key, IfMatch=None):
        index = int(self._index_of(IfMatch.strip('"')))
        data = version_bytes(index, self.size)
        return {"Body": _FakeBody(data), "ETag": f'"{self.etag(index)}"', "ContentLength": len(data),
                "Metadata": {"sha256": hashlib.sha256(data).hexdigest()}}

    def head_object(self, Bucket, Key):  # pragma: no cover - sequencers make it unnecessary
        raise AssertionError("HEAD must not be needed when every event has a sequencer")

    def _index_of(self, etag: str) -> int:
        for index in range(10_000):
            if self.etag(index) == etag:
                return index
        raise KeyError(etag)


def sequenced_writer(mount: str, indices: list, size: int, barrier, results) -> None:
    """Deliver events (out of order) straight to the producer's core."""
    try:
        import efs_store
        import producer

        layout = efs_store.Layout(mount)
        s3 = AllVersionsS3(size)
        barrier.wait()
        for index in indices:
            ev = producer.ObjectEvent(bucket=BUCKET, key=KEY, name=NAME, etag=s3.etag(index),
                                      sequencer=sequencer(index), size=None)
            results.put(("writer", index, producer.ingest(s3, layout, ev)))
    except BaseException:
        results.put(("error", "writer", traceback.format_exc()))


# --------------------------------------------------------------------------- readers


def reader(mount: str, barrier, stop, results) -> None:
    """Hash the model again and again, through the consumer's core and with a plain open()."""
    try:
        import consumer
        import efs_store

        layout = efs_store.Layout(mount)
        barrier.wait()
        seen = []
        while True:
            last_round = stop.is_set()
            _, known, cached = consumer.inspect_model(layout, NAME, verify=True)
            assert cached is False
            with open(os.path.join(mount, "models", NAME), "rb") as f:
                plain = hashlib.file_digest(f, "sha256").hexdigest()
            seen.append(known.sha256)
            seen.append(plain)
            if last_round:
                break
        results.put(("reader", seen))
    except BaseException:
        results.put(("error", "reader", traceback.format_exc()))
