"""The consumer handler with HTTP API payload 2.0 and 1.0 events, S3 through moto."""

from __future__ import annotations

import hashlib
import os
import re

import pytest

import consumer
import efs_stream
import producer
from lambda_events import BUCKET, api_v1, api_v2, put_model, response_json, s3_event, s3_record
from test_lambda_analysis import safetensors_bytes

PREDICT_KEYS = ["model", "size", "sha256", "format", "analysis", "cached", "output", "request_id", "duration_ms"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def install(s3, name: str, data: bytes, sequencer: str = "01", context=None):
    etag = put_model(s3, "models/" + name, data, sha256=sha(data))
    result = producer.handler(s3_event(s3_record("models/" + name, etag, len(data), sequencer)), context)
    assert result["results"][0]["outcome"] == "installed"


@pytest.fixture
def hash_calls(monkeypatch):
    calls = []
    real = efs_stream.hash_fd
    monkeypatch.setattr(consumer.stream, "hash_fd", lambda fd, *a, **k: calls.append(fd) or real(fd, *a, **k))
    return calls


def test_predict_returns_the_result_it_wrote_to_efs_and_s3(s3, sandbox, lambda_context, hash_calls):
    data = safetensors_bytes({"w": ("F32", [256, 256], 262144), "b": ("F32", [256], 1024)})
    install(s3, "resnet.safetensors", data)

    response = consumer.handler(api_v2("POST", "/predict", {"model": "resnet.safetensors", "verify": False}),
                                lambda_context)

    assert response["statusCode"] == 200
    body = response_json(response)
    assert list(body) == PREDICT_KEYS
    assert (body["model"], body["size"], body["sha256"], body["format"]) == (
        "resnet.safetensors", len(data), sha(data), "safetensors")
    assert body["analysis"]["tensors"] == 2 and body["analysis"]["dtypes"] == {"F32": 2}
    assert body["analysis"]["parameters"] == 65536 + 256
    assert 0 <= body["analysis"]["entropy_bits_per_byte"] <= 8
    assert body["cached"] is True and hash_calls == []  # the producer's record was reused
    assert body["request_id"] == lambda_context.aws_request_id
    assert isinstance(body["duration_ms"], (int, float))
    efs_path, s3_key = body["output"]["efs_path"], body["output"]["s3_key"]
    assert re.fullmatch(re.escape(str(sandbox.mount / "outputs")) + r"/\d{8}T\d{6}Z-[0-9a-f]{24}\.json", efs_path)
    assert s3_key == "outputs/" + os.path.basename(efs_path)
    stored = s3.get_object(Bucket=BUCKET, Key=s3_key)["Body"].read()
    assert stored == open(efs_path, "rb").read() == response["body"].encode()
    sandbox.assert_confined()


def test_without_a_record_the_first_predict_hashes_then_the_cache_answers(s3, sandbox, lambda_context, hash_calls):
    data = os.urandom(300_000)
    sandbox.layout.ensure()
    sandbox.model("raw.bin").write_bytes(data)
    first = response_json(consumer.handler(api_v2("POST", "/predict", {"model": "raw.bin"}), lambda_context))
    second = response_json(consumer.handler(api_v2("POST", "/predict", {"model": "raw.bin"}), lambda_context))
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["sha256"] == second["sha256"] == sha(data)
    assert first["analysis"] == second["analysis"] and first["format"] == "binary"
    assert len(hash_calls) == 1
    assert first["output"] != second["output"]


def test_verify_forces_a_full_read(s3, sandbox, lambda_context, hash_calls):
    install(s3, "m.bin", b"x" * 5000)
    body = response_json(consumer.handler(api_v2("POST", "/predict", {"model": "m.bin", "verify": True}),
                                          lambda_context))
    assert body["cached"] is False and len(hash_calls) == 1 and body["sha256"] == sha(b"x" * 5000)


def test_a_touched_model_is_rehashed(s3, sandbox, lambda_context, hash_calls):
    install(s3, "m.bin", b"abc")
    st = os.stat(sandbox.model("m.bin"))
    os.utime(sandbox.model("m.bin"), ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    body = response_json(consumer.handler(api_v2("POST", "/predict", {"model": "m.bin"}), lambda_context))
    assert body["cached"] is False and len(hash_calls) == 1


def test_a_replaced_model_is_a_new_identity(s3, sandbox, lambda_context, hash_calls):
    install(s3, "m.bin", b"one", "01")
    assert response_json(consumer.handler(api_v2("POST", "/predict", {"model": "m.bin"}), lambda_context))[
        "sha256"] == sha(b"one")
    install(s3, "m.bin", b"two!", "02")
    body = response_json(consumer.handler(api_v2("POST", "/predict", {"model": "m.bin"}), lambda_context))
    assert (body["sha256"], body["size"], body["cached"]) == (sha(b"two!"), 4, True)


def test_cached_predict_reads_nothing_of_a_huge_model(s3, sandbox, lambda_context, monkeypatch):
    sandbox.layout.ensure()
    with open(sandbox.model("huge.bin"), "wb") as f:
        f.truncate(16 << 30)
    fd = os.open(sandbox.model("huge.bin"), os.O_RDONLY)
    os.close(fd)
    st = os.stat(sandbox.model("huge.bin"))
    import efs_records

    efs_records.write_record(sandbox.layout, efs_records.ModelRecord(
        name="huge.bin", key="models/huge.bin", size=st.st_size, sha256="ab" * 32, etag="e", sequencer=None,
        mtime_ns=st.st_mtime_ns, installed_at="t"))
    read = []
    real_pread, real_preadv = os.pread, os.preadv
    monkeypatch.setattr(os, "pread", lambda fd, n, off: read.append(n) or real_pread(fd, n, off))
    monkeypatch.setattr(os, "preadv", lambda fd, bufs, off: read.append(-1) or real_preadv(fd, bufs, off))
    first = response_json(consumer.handler(api_v2("POST", "/predict", {"model": "huge.bin"}), lambda_context))
    assert first["cached"] is True and first["sha256"] == "ab" * 32
    assert -1 not in read and sum(read) < 2 << 20  # head + sample, no full read
    read.clear()
    second = response_json(consumer.handler(api_v2("POST", "/predict", {"model": "huge.bin"}), lambda_context))
    assert second["cached"] is True and read == []


def test_payload_v1_and_base64_bodies(s3, sandbox, lambda_context):
    install(s3, "team/a.json", b'{"hello": "world"}')
    for event in (api_v1("POST", "/predict", {"model": "team/a.json"}),
                  api_v1("POST", "/predict", {"model": "team/a.json"}, base64_body=True),
                  api_v2("POST", "/predict", {"model": "team/a.json"}, base64_body=True),
                  api_v2("POST", "/predict", {"model": "team/a.json"}, route_key="$default")):
        response = consumer.handler(event, lambda_context)
        assert response["statusCode"] == 200, response
        body = response_json(response)
        assert (body["format"], body["analysis"]["keys"]) == ("json", 1)


def test_rest_style_event_without_a_version(s3, sandbox, lambda_context):
    install(s3, "m.bin", b"abc")
    event = api_v1("POST", "/predict", {"model": "m.bin"})
    del event["version"]
    event["routeKey"] = "ignored in 1.0"
    assert consumer.handler(event, lambda_context)["statusCode"] == 200


def test_named_stage_prefix_is_stripped(s3, sandbox, lambda_context):
    install(s3, "m.bin", b"abc")
    event = api_v2("POST", "/prod/predict", {"model": "m.bin"}, route_key="$default")
    event["requestContext"]["stage"] = "prod"
    assert consumer.handler(event, lambda_context)["statusCode"] == 200


def test_list_models(s3, sandbox, lambda_context):
    install(s3, "b/inner model.bin", b"1234", "01")
    install(s3, "a.bin", b"1", "02")
    sandbox.model("unrecorded.bin").write_bytes(b"zz")
    (sandbox.mount / "models" / ".hidden").write_bytes(b"h")
    body = response_json(consumer.handler(api_v2("GET", "/models"), lambda_context))
    assert [m["name"] for m in body["models"]] == ["a.bin", "b/inner model.bin", "unrecorded.bin"]
    by_name = {m["name"]: m for m in body["models"]}
    assert by_name["b/inner model.bin"]["size"] == 4 and by_name["b/inner model.bin"]["sha256"] == sha(b"1234")
    assert by_name["unrecorded.bin"]["sha256"] is None
    assert all(set(m) == {"name", "size", "sha256", "modified"} for m in body["models"])
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", m["modified"]) for m in body["models"])


def test_list_is_bounded(s3, sandbox, lambda_context, monkeypatch):
    monkeypatch.setattr(consumer, "MAX_LISTED", 2)
    sandbox.layout.ensure()
    for i in range(3):
        sandbox.model(f"m{i}.bin").write_bytes(b"x")
    body = response_json(consumer.handler(api_v2("GET", "/models"), lambda_context))
    assert len(body["models"]) == 2 and body["truncated"] is True


@pytest.mark.parametrize("make_event", [
    lambda: api_v2("GET", "/models/team/a%20b.bin", path_parameters={"name": "team/a b.bin"}),
    lambda: api_v2("GET", "/models/team/a%20b.bin", route_key="$default"),
    lambda: api_v1("GET", "/models/team/a b.bin", path_parameters={"name": "team/a b.bin"}),
])
def test_describe_one_model(s3, sandbox, lambda_context, make_event):
    install(s3, "team/a b.bin", b"data")
    response = consumer.handler(make_event(), lambda_context)
    assert response["statusCode"] == 200
    body = response_json(response)
    assert set(body) == {"name", "size", "sha256", "modified"}
    assert (body["name"], body["size"], body["sha256"]) == ("team/a b.bin", 4, sha(b"data"))


def test_describe_after_a_rejected_first_upload_is_409_upload_rejected(s3, sandbox, lambda_context):
    etag = put_model(s3, "models/m.bin", b"corrupted", sha256=sha(b"original"))
    producer.handler(s3_event(s3_record("models/m.bin", etag, 9, "01")), None)
    for event in (api_v2("GET", "/models/m.bin", path_parameters={"name": "m.bin"}),
                  api_v2("POST", "/predict", {"model": "m.bin"})):
        response = consumer.handler(event, lambda_context)
        assert response["statusCode"] == 409
        error = response_json(response)["error"]
        assert (error["code"], error["reason"], error["etag"]) == ("UploadRejected", "checksum_mismatch", etag)
        assert (error["expected_sha256"], error["actual_sha256"]) == (sha(b"original"), sha(b"corrupted"))
        assert sha(b"original") in error["message"] and sha(b"corrupted") in error["message"]


def test_describe_shows_a_rejection_behind_a_good_model(s3, sandbox, lambda_context):
    install(s3, "m.bin", b"good", "01")
    etag = put_model(s3, "models/m.bin", b"bad!", sha256=sha(b"meant"))
    producer.handler(s3_event(s3_record("models/m.bin", etag, 4, "02")), None)
    body = response_json(consumer.handler(api_v2("GET", "/models/m.bin", path_parameters={"name": "m.bin"}),
                                          lambda_context))
    assert body["sha256"] == sha(b"good")
    assert body["rejected"]["expected_sha256"] == sha(b"meant") and body["rejected"]["actual_sha256"] == sha(b"bad!")
    assert body["rejected"]["etag"] == etag and body["rejected"]["reason"] == "checksum_mismatch"


def test_custom_outputs_prefix(s3, sandbox, lambda_context, monkeypatch):
    monkeypatch.setenv("OUTPUTS_PREFIX", "results/")
    install(s3, "m.bin", b"abc")
    body = response_json(consumer.handler(api_v2("POST", "/predict", {"model": "m.bin"}), lambda_context))
    assert body["output"]["s3_key"].startswith("results/")
    s3.head_object(Bucket=BUCKET, Key=body["output"]["s3_key"])


def test_an_s3_outage_is_a_500_not_a_4xx(s3, sandbox, lambda_context, monkeypatch, capsys):
    install(s3, "m.bin", b"abc")
    monkeypatch.setenv("BUCKET", "no-such-bucket-here")
    response = consumer.handler(api_v2("POST", "/predict", {"model": "m.bin"}), lambda_context)
    assert response["statusCode"] == 500
    assert response_json(response)["error"]["code"] == "InternalError"
    assert '"level": "ERROR"' in capsys.readouterr().out


def test_the_warm_cache_is_bounded(s3, sandbox, lambda_context, monkeypatch):
    monkeypatch.setattr(consumer, "CACHE_ENTRIES", 2)
    sandbox.layout.ensure()
    for i in range(4):
        sandbox.model(f"m{i}").write_bytes(b"%d" % i)
        consumer.handler(api_v2("POST", "/predict", {"model": f"m{i}"}), lambda_context)
    assert len(consumer._cache) == 2


def test_a_model_rewritten_in_place_while_hashed_is_409(s3, sandbox, lambda_context, monkeypatch):
    sandbox.layout.ensure()
    sandbox.model("m.bin").write_bytes(b"abc")
    real_fstat, calls = os.fstat, []

    def fstat(fd):
        st = real_fstat(fd)
        calls.append(fd)
        if len(calls) == 1:
            return st
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid,
                               st.st_size, st.st_atime, st.st_mtime + 1, st.st_ctime))

    monkeypatch.setattr(os, "fstat", fstat)
    response = consumer.handler(api_v2("POST", "/predict", {"model": "m.bin"}), lambda_context)
    assert (response["statusCode"], response_json(response)["error"]["code"]) == (409, "ModelChanging")
    assert consumer._cache == {}
