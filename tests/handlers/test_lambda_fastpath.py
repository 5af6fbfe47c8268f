"""The producer's socket fast path, over real HTTP (moto server on loopback)."""

from __future__ import annotations

import hashlib
import http.client
import os

import efs_records as rec
import efs_stream as stream
import producer

BUCKET = "efsctl-fastpath"


def test_large_object_streams_from_the_socket_into_the_model(moto_server, sandbox, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    data = os.urandom(stream.DIRECT_MIN_BYTES + (1 << 20) + 123)  # O_DIRECT, several chunks, odd tail
    digest = hashlib.sha256(data).hexdigest()
    etag = s3.put_object(Bucket=BUCKET, Key="models/fast/big.bin", Body=data,
                         Metadata={"sha256": digest})["ETag"].strip('"')

    body = s3.get_object(Bucket=BUCKET, Key="models/fast/big.bin")["Body"]
    assert isinstance(stream.body_readinto(body).__self__, http.client.HTTPResponse)
    body.close()

    ev = producer.ObjectEvent(BUCKET, "models/fast/big.bin", "fast/big.bin", etag, "01", len(data))
    assert producer.ingest(s3, sandbox.layout, ev) == "installed"
    assert hashlib.sha256(sandbox.model("fast/big.bin").read_bytes()).hexdigest() == digest
    assert rec.read_record(sandbox.layout, "fast/big.bin").sha256 == digest
    sandbox.assert_confined()


def test_superseded_version_is_not_downloaded(moto_server, sandbox, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    old = s3.put_object(Bucket=BUCKET, Key="models/v.bin", Body=b"old")["ETag"].strip('"')
    s3.put_object(Bucket=BUCKET, Key="models/v.bin", Body=b"new")
    ev = producer.ObjectEvent(BUCKET, "models/v.bin", "v.bin", old, None, 3)
    assert producer.ingest(s3, sandbox.layout, ev) == "superseded"
    assert not sandbox.model("v.bin").exists()
    sandbox.assert_confined()
