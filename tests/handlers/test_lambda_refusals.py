"""The producer's refusals are recorded where the API reads them: GET /models/{name} answers
409 UploadRejected with the reason and the refused object's ETag, until a later upload of the
name installs. Routine 404s are logged at INFO, bad requests at WARNING."""

from __future__ import annotations

import errno
import hashlib
import json

import pytest

import consumer
import efs_records as rec
import producer
from lambda_events import api_v2, put_model, response_json, s3_event, s3_record


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(s3, name: str, data: bytes, sequencer: str | None = None, declared: str | None = None):
    """(etag, outcome) of putting ``data`` under ``models/<name>`` and running the producer."""
    etag = put_model(s3, "models/" + name, data, sha256=declared or sha(data))
    result = producer.handler(s3_event(s3_record("models/" + name, etag, len(data), sequencer)), None)
    return etag, result["results"][0]["outcome"]


def describe(name: str, context):
    response = consumer.handler(api_v2("GET", f"/models/{name}", path_parameters={"name": name}), context)
    return response["statusCode"], response_json(response)


def test_a_name_conflict_is_refused_reported_and_cleared_by_a_later_install(s3, sandbox, lambda_context):
    assert upload(s3, "clash", b"a model")[1] == "installed"
    etag, outcome = upload(s3, "clash/inner", b"another")
    assert outcome == "conflict"
    status, body = describe("clash/inner", lambda_context)
    assert status == 409
    error = body["error"]
    assert (error["code"], error["reason"], error["etag"]) == ("UploadRejected", "name_conflict", etag)
    assert "the name clashes with what is on EFS: models/clash is a model, not a folder" in error["message"]
    status, body = consumer.handler(api_v2("POST", "/predict", {"model": "clash/inner"}), lambda_context)[
        "statusCode"], None
    assert status == 409

    sandbox.model("clash").unlink()  # the clash goes; the same upload again now installs
    assert upload(s3, "clash/inner", b"another")[1] == "installed"
    assert rec.read_refusal(sandbox.layout, "clash/inner") is None
    status, body = describe("clash/inner", lambda_context)
    assert status == 200 and "rejected" not in body
    sandbox.assert_confined()


def test_a_directory_where_the_model_must_go_is_refused(s3, sandbox, lambda_context):
    upload(s3, "team/a.bin", b"a")
    etag, outcome = upload(s3, "team", b"b")
    assert outcome == "conflict"
    status, body = describe("team", lambda_context)
    assert (status, body["error"]["reason"], body["error"]["etag"]) == (409, "name_conflict", etag)


def test_an_object_over_the_size_limit_is_refused_without_copying(s3, sandbox, lambda_context, monkeypatch):
    monkeypatch.setenv("MAX_MODEL_BYTES", "10")
    etag, outcome = upload(s3, "big.bin", b"x" * 11)
    assert outcome == "too_large"
    status, body = describe("big.bin", lambda_context)
    assert (status, body["error"]["reason"], body["error"]["etag"]) == (409, "too_large", etag)
    assert "11 bytes; the limit is 10 bytes" in body["error"]["message"]
    assert not sandbox.model("big.bin").exists()
    assert upload(s3, "small.bin", b"x" * 10)[1] == "installed"
    sandbox.assert_confined()


def test_a_full_file_system_is_a_refusal_and_leaves_no_temp(s3, sandbox, lambda_context, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(producer.stream, "copy_to_fd", full)
    etag, outcome = upload(s3, "m.bin", b"weights")
    assert outcome == "no_space"
    status, body = describe("m.bin", lambda_context)
    assert (status, body["error"]["reason"]) == (409, "no_space")
    assert "no space left on device" in body["error"]["message"]
    sandbox.assert_confined()


def test_a_name_over_the_limits_is_refused_and_the_api_says_why(s3, sandbox, lambda_context):
    name = "y" * 300 + ".bin"
    record = s3_record("models/" + name, "0123abcd", 3, "01")
    assert producer.handler(s3_event(record), None)["results"][0]["outcome"] == "invalid_name"
    status, body = describe(name, lambda_context)
    assert (status, body["error"]["reason"], body["error"]["etag"]) == (409, "invalid_name", "0123abcd")
    assert "exceeds 255 bytes" in body["error"]["message"]
    status, body = describe("z" * 300, lambda_context)  # no such upload: only invalid
    assert (status, body["error"]["code"]) == (400, "InvalidModelName")
    sandbox.assert_confined()


def test_a_refusal_of_a_stale_event_does_not_overwrite_a_later_one(s3, sandbox):
    etag_new, outcome = upload(s3, "m.bin", b"good", sequencer="0B", declared="0" * 64)
    assert outcome == "rejected"
    sandbox.model("m.bin").mkdir(parents=True)  # now an older event for the name would conflict
    (sandbox.model("m.bin") / "x").write_bytes(b"x")
    old = s3_record("models/m.bin", "feedbeef", 3, "0A")
    assert producer.handler(s3_event(old), None)["results"][0]["outcome"] == "stale"
    assert rec.read_refusal(sandbox.layout, "m.bin").etag == etag_new


def test_a_refused_reupload_keeps_the_old_version_and_is_shown_beside_it(s3, sandbox, lambda_context):
    upload(s3, "m.bin", b"v1", sequencer="01")
    etag, outcome = upload(s3, "m.bin", b"v2", sequencer="02", declared="f" * 64)
    assert outcome == "rejected"
    status, body = describe("m.bin", lambda_context)
    assert status == 200 and body["sha256"] == sha(b"v1")
    assert body["rejected"]["etag"] == etag and body["rejected"]["expected_sha256"] == "f" * 64
    listing = response_json(consumer.handler(api_v2("GET", "/models"), lambda_context))
    assert listing["models"][0]["rejected"]["etag"] == etag


def log_levels(capsys) -> list:
    return [(line["level"], line.get("status")) for line in map(json.loads, capsys.readouterr().out.splitlines())
            if line["msg"] == "request refused"]


def test_a_model_not_there_yet_is_routine_not_a_warning(s3, sandbox, lambda_context, capsys):
    describe("arriving.bin", lambda_context)
    consumer.handler(api_v2("POST", "/predict", {"model": "arriving.bin"}), lambda_context)
    assert log_levels(capsys) == [("INFO", 404), ("INFO", 404)]


@pytest.mark.parametrize("event, status", [
    (api_v2("POST", "/predict", "{not json"), 400),
    (api_v2("GET", "/models/a%5Cb", path_parameters={"name": "a\\b"}), 400),
    (api_v2("GET", "/admin", route_key="$default"), 404),
])
def test_bad_requests_stay_warnings(s3, sandbox, lambda_context, capsys, event, status):
    assert consumer.handler(event, lambda_context)["statusCode"] == status
    assert log_levels(capsys) == [("WARNING", status)]
