"""The producer handler with realistic S3 event records, S3 through moto."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import pytest

import efs_records as rec
import producer
from lambda_events import BUCKET, put_model, s3_event, s3_record


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def log_lines(capsys) -> list:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_multi_record_event_installs_every_model(s3, sandbox, producer_context, capsys):
    uploads = {
        "models/resnet.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ",
        "models/team/my model v2.bin": os.urandom(1000),
        "models/a+b=c.gguf": b"GGUF" + os.urandom(100),
        "models/ünïcødé/模型.npy": os.urandom(77),
    }
    records = []
    for i, (key, data) in enumerate(uploads.items()):
        etag = put_model(s3, key, data, sha256=sha(data))
        records.append(s3_record(key, etag, len(data), sequencer=f"0055AED6DCD90281E{i}"))

    result = producer.handler(s3_event(*records), producer_context)

    assert result == {"results": [{"key": key, "outcome": "installed"} for key in uploads]}
    for key, data in uploads.items():
        name = key[len("models/"):]
        assert sandbox.model(name).read_bytes() == data
        record = rec.read_record(sandbox.layout, name)
        st = os.stat(sandbox.model(name))
        assert (record.size, record.sha256, record.key) == (len(data), sha(data), key)
        assert record.mtime_ns == st.st_mtime_ns and record.sequencer.startswith("0055AED6DCD90281E")
    sandbox.assert_confined()
    logs = log_lines(capsys)
    installed = [line for line in logs if line["msg"] == "model installed"]
    assert len(installed) == 4
    assert all(line["request_id"] == producer_context.aws_request_id for line in installed)
    assert all(line["fn"] == producer_context.function_name for line in installed)
    assert {line["key"] for line in installed} == set(uploads)
    assert all({"bytes", "sha256", "duration_ms", "etag"} <= set(line) for line in installed)


def test_newer_version_replaces_the_model(s3, sandbox, producer_context):
    old, new = b"old" * 100, b"new" * 200
    etag_old = put_model(s3, "models/m.bin", old)
    producer.handler(s3_event(s3_record("models/m.bin", etag_old, len(old), "0A")), producer_context)
    etag_new = put_model(s3, "models/m.bin", new)
    result = producer.handler(s3_event(s3_record("models/m.bin", etag_new, len(new), "0B")), producer_context)
    assert result["results"][0]["outcome"] == "installed"
    assert sandbox.model("m.bin").read_bytes() == new
    assert rec.read_record(sandbox.layout, "m.bin").sequencer == "0B"


def test_moto_style_events_without_sequencer_and_with_encoded_slash(s3, sandbox, producer_context):
    data = b"weights"
    etag = put_model(s3, "models/team/x y.bin", data)
    record = s3_record("models%2Fteam%2Fx+y.bin", etag, len(data), encode=False)
    assert producer.handler(s3_event(record), producer_context)["results"][0]["outcome"] == "installed"
    assert sandbox.model("team/x y.bin").read_bytes() == data
    data2 = b"weights v2"
    etag2 = put_model(s3, "models/team/x y.bin", data2)
    record = s3_record("models%2Fteam%2Fx+y.bin", etag2, len(data2), encode=False)
    assert producer.handler(s3_event(record), producer_context)["results"][0]["outcome"] == "installed"
    assert sandbox.model("team/x y.bin").read_bytes() == data2


def test_identical_reupload_advances_the_sequencer_without_copying(s3, sandbox, producer_context):
    data = b"same bytes"
    etag = put_model(s3, "models/m.bin", data)
    producer.handler(s3_event(s3_record("models/m.bin", etag, len(data), "0A")), producer_context)
    inode = os.stat(sandbox.model("m.bin")).st_ino
    etag_again = put_model(s3, "models/m.bin", data)
    assert etag_again == etag
    result = producer.handler(s3_event(s3_record("models/m.bin", etag, len(data), "0C")), producer_context)
    assert result["results"][0]["outcome"] == "duplicate"
    assert os.stat(sandbox.model("m.bin")).st_ino == inode
    assert rec.read_record(sandbox.layout, "m.bin").sequencer == "0C"


def test_rejected_bytes_reuploaded_with_the_right_checksum_are_installed(s3, sandbox, producer_context):
    data = b"good model"
    etag = put_model(s3, "models/m.bin", data, sha256="0" * 64)
    assert producer.handler(s3_event(s3_record("models/m.bin", etag, len(data))), producer_context)[
        "results"][0]["outcome"] == "rejected"
    etag = put_model(s3, "models/m.bin", data, sha256=sha(data))
    assert producer.handler(s3_event(s3_record("models/m.bin", etag, len(data))), producer_context)[
        "results"][0]["outcome"] == "installed"
    assert rec.read_refusal(sandbox.layout, "m.bin") is None


def test_uppercase_checksum_metadata_is_accepted(s3, sandbox, producer_context):
    data = b"abc"
    etag = put_model(s3, "models/m.bin", data, sha256=sha(data).upper())
    assert producer.handler(s3_event(s3_record("models/m.bin", etag, 3)), producer_context)[
        "results"][0]["outcome"] == "installed"


def test_large_object_goes_through_the_bounded_pipeline(s3, sandbox, producer_context, monkeypatch):
    monkeypatch.setattr(producer.stream, "CHUNK", 1 << 20)
    data = os.urandom(20 << 20) + b"tail"  # O_DIRECT body with an unaligned tail
    etag = put_model(s3, "models/big.bin", data, sha256=sha(data))
    result = producer.handler(s3_event(s3_record("models/big.bin", etag, len(data), "01")), producer_context)
    assert result["results"][0]["outcome"] == "installed"
    assert sha(sandbox.model("big.bin").read_bytes()) == sha(data)
    sandbox.assert_confined()


def test_custom_models_prefix(s3, sandbox, producer_context, monkeypatch):
    monkeypatch.setenv("MODELS_PREFIX", "incoming/models/")
    etag = put_model(s3, "incoming/models/m.bin", b"x")
    other = put_model(s3, "models/m.bin", b"y")
    result = producer.handler(s3_event(s3_record("incoming/models/m.bin", etag, 1),
                                       s3_record("models/m.bin", other, 1)), producer_context)
    assert [r["outcome"] for r in result["results"]] == ["installed", "ignored"]
    assert sandbox.model("m.bin").read_bytes() == b"x"


def test_unexpected_failure_is_raised_after_the_other_records(s3, sandbox, producer_context, monkeypatch):
    good = put_model(s3, "models/good.bin", b"good")
    bad = put_model(s3, "models/bad.bin", b"bad")
    real = producer.ingest

    def flaky(client, layout, ev, logger=producer.log):
        if ev.name == "bad.bin":
            raise ConnectionResetError("connection reset by peer")
        return real(client, layout, ev, logger)

    monkeypatch.setattr(producer, "ingest", flaky)
    with pytest.raises(RuntimeError, match="1 of 2 records failed"):
        producer.handler(s3_event(s3_record("models/bad.bin", bad, 3), s3_record("models/good.bin", good, 4)),
                         producer_context)
    assert sandbox.model("good.bin").read_bytes() == b"good"
    assert not sandbox.model("bad.bin").exists()
    sandbox.assert_confined()


def test_retry_after_failure_skips_what_was_installed(s3, sandbox, producer_context):
    etag = put_model(s3, "models/m.bin", b"abc")
    event = s3_event(s3_record("models/m.bin", etag, 3, "0A"))
    assert producer.handler(event, producer_context)["results"][0]["outcome"] == "installed"
    assert producer.handler(event, producer_context)["results"][0]["outcome"] == "duplicate"


def test_abandoned_temps_are_swept_on_cold_start(s3, sandbox, producer_context):
    sandbox.layout.ensure()
    path = os.path.join(sandbox.layout.tmp, "model.4242.abandoned.tmp")  # its writer is gone: no lock
    open(path, "wb").close()
    os.utime(path, (1, 1))
    producer.handler({"Records": []}, producer_context)
    assert not os.path.exists(path)


def test_parse_record_decodes_like_a_form():
    ev = producer.parse_record(s3_record("models/a b+c%/ü.bin", "abc", 5, "0a1b"), "models/")
    assert (ev.key, ev.name, ev.etag, ev.sequencer, ev.size) == (
        "models/a b+c%/ü.bin", "a b+c%/ü.bin", "abc", "0A1B", 5)
    assert producer.parse_record(s3_record("models/x", '"quoted"'), "models/").etag == "quoted"


def test_handlers_create_their_client_lazily_once(s3):
    import consumer

    producer._clients.clear()
    consumer._clients.clear()
    assert "boto3" in sys.modules  # imported by the tests, not by the handlers' modules
    client = producer._s3()
    assert producer._s3() is client and consumer._s3() is consumer._s3()
    assert client.meta.region_name == "us-east-1"


def test_handler_modules_import_nothing_heavy():
    import subprocess

    code = ("import sys; sys.path.insert(0, sys.argv[1]); import producer, consumer; "
            "heavy = [m for m in ('boto3', 'botocore') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code, os.path.dirname(producer.__file__)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_s3_sha256_checksum_is_cross_checked(s3, sandbox, producer_context, monkeypatch):
    s3.put_object(Bucket=BUCKET, Key="models/c.bin", Body=b"checked", ChecksumAlgorithm="SHA256")
    etag = s3.head_object(Bucket=BUCKET, Key="models/c.bin")["ETag"].strip('"')
    event = s3_event(s3_record("models/c.bin", etag, 7, "01"))
    assert producer.handler(event, producer_context)["results"][0]["outcome"] == "installed"

    real_get = s3.get_object

    def corrupted(**kwargs):
        response = real_get(**kwargs)
        response["ChecksumSHA256"] = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="  # sha256(b"hello")
        return response

    monkeypatch.setattr(s3, "get_object", corrupted)
    s3.put_object(Bucket=BUCKET, Key="models/d.bin", Body=b"other")
    etag = s3.head_object(Bucket=BUCKET, Key="models/d.bin")["ETag"].strip('"')
    with pytest.raises(RuntimeError, match="1 of 1 records failed"):
        producer.handler(s3_event(s3_record("models/d.bin", etag, 5, "01")), producer_context)
    assert not sandbox.model("d.bin").exists()
    sandbox.assert_confined()
