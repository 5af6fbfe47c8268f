"""Hostile inputs. Each asserts the exact outcome and that nothing was written outside
models/, outputs/ and .efsctl/ (nor any temp file left, nor the 'outside' directory touched)."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest

import consumer
import efs_records as rec
import producer
from lambda_events import BUCKET, api_v1, api_v2, put_model, response_json, s3_event, s3_record

EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CountingS3:
    """Delegates to the moto client, counting the calls the producer makes."""

    def __init__(self, client):
        self.client, self.calls = client, []

    def __getattr__(self, name):
        attr = getattr(self.client, name)
        if callable(attr):
            def wrapper(*args, **kwargs):
                self.calls.append(name)
                return attr(*args, **kwargs)
            return wrapper
        return attr


@pytest.fixture
def spy(s3):
    counting = CountingS3(s3)
    producer._clients["s3"] = counting
    return counting


def outcomes(result) -> list:
    return [r["outcome"] for r in result["results"]]


def models_tree(sandbox) -> list:
    root = sandbox.mount / "models"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# =========================================================================== producer


@pytest.mark.parametrize("key", [
    "models/../escape.bin",
    "models/team/../../escape.bin",
    "models//etc/passwd",
    "models/a\x00b.bin",
    "models/..\\..\\escape.bin",
    "models/./a.bin",
    "models/" + "x" * 1100,
    "models/" + "y" * 300 + "/m.bin",
    "models/.efsctl/meta/evil.json",
    "models/a\nb.bin",
    "models/team//a.bin",
])
def test_producer_rejects_hostile_keys(spy, sandbox, producer_context, key):
    result = producer.handler(s3_event(s3_record(key, "abc", 10, "01")), producer_context)
    assert outcomes(result) == ["invalid_name"]
    assert spy.calls == []
    assert models_tree(sandbox) == []
    sandbox.assert_confined()


@pytest.mark.parametrize("key, size", [("models/", 0), ("models/dir/", 0), ("models/dir/sub/", 0)])
def test_producer_ignores_folder_markers(spy, sandbox, producer_context, key, size):
    assert outcomes(producer.handler(s3_event(s3_record(key, EMPTY_SHA[:32], size)), producer_context)) == ["ignored"]
    assert spy.calls == [] and models_tree(sandbox) == []
    sandbox.assert_confined()


@pytest.mark.parametrize("record", [
    s3_record("outputs/x.json", "abc", 1),
    s3_record("model/x.bin", "abc", 1),
    s3_record("models/x.bin", "abc", 1, event_name="ObjectRemoved:Delete"),
    {"eventSource": "aws:sqs", "body": "{}"},
    "not a record",
    {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": BUCKET}, "object": {"key": 42}}},
])
def test_producer_ignores_records_that_are_not_model_uploads(spy, sandbox, producer_context, record):
    assert outcomes(producer.handler(s3_event(record), producer_context)) == ["ignored"]
    assert spy.calls == [] and models_tree(sandbox) == []
    sandbox.assert_confined()


@pytest.mark.parametrize("event", [
    {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2025-01-31T12:00:00.000Z", "Bucket": BUCKET},
    {}, {"Records": "nope"}, None, [],
])
def test_producer_survives_events_without_records(spy, sandbox, producer_context, event):
    assert producer.handler(event, producer_context) == {"results": []}
    sandbox.assert_confined()


def test_missing_object_is_logged_and_skipped(spy, sandbox, producer_context, capsys):
    result = producer.handler(s3_event(s3_record("models/gone.bin", "d41d8cd98f00b204e9800998ecf8427e", 5)),
                              producer_context)
    assert outcomes(result) == ["missing"]
    assert models_tree(sandbox) == []
    assert '"outcome": "missing"' in capsys.readouterr().out
    sandbox.assert_confined()


def test_missing_bucket_is_logged_and_skipped(spy, sandbox, producer_context):
    record = s3_record("models/a.bin", "abc", 1, bucket="no-such-bucket-here")
    assert outcomes(producer.handler(s3_event(record), producer_context)) == ["missing"]
    sandbox.assert_confined()


def test_zero_byte_object_is_a_valid_model(spy, sandbox, producer_context):
    etag = put_model(spy.client, "models/empty.bin", b"", sha256=EMPTY_SHA)
    assert outcomes(producer.handler(s3_event(s3_record("models/empty.bin", etag, 0, "01")), producer_context)) == [
        "installed"]
    assert sandbox.model("empty.bin").read_bytes() == b""
    assert rec.read_record(sandbox.layout, "empty.bin").sha256 == EMPTY_SHA
    sandbox.assert_confined()


def test_checksum_mismatch_leaves_no_file_and_records_the_rejection(spy, sandbox, producer_context, capsys):
    etag = put_model(spy.client, "models/m.bin", b"tampered", sha256=sha(b"original"))
    result = producer.handler(s3_event(s3_record("models/m.bin", etag, 8, "01")), producer_context)
    assert outcomes(result) == ["rejected"]
    assert models_tree(sandbox) == []
    rejection = rec.read_refusal(sandbox.layout, "m.bin")
    assert (rejection.expected_sha256, rejection.actual_sha256) == (sha(b"original"), sha(b"tampered"))
    errors = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"ERROR"' in line]
    assert errors and errors[0]["msg"] == "checksum mismatch: upload rejected"
    sandbox.assert_confined()


def test_checksum_mismatch_keeps_the_good_model(spy, sandbox, producer_context):
    etag = put_model(spy.client, "models/m.bin", b"good", sha256=sha(b"good"))
    producer.handler(s3_event(s3_record("models/m.bin", etag, 4, "01")), producer_context)
    etag = put_model(spy.client, "models/m.bin", b"evil", sha256=sha(b"other"))
    assert outcomes(producer.handler(s3_event(s3_record("models/m.bin", etag, 4, "02")), producer_context)) == [
        "rejected"]
    assert sandbox.model("m.bin").read_bytes() == b"good"
    assert rec.read_record(sandbox.layout, "m.bin").sha256 == sha(b"good")
    sandbox.assert_confined()


def test_malformed_checksum_metadata_is_a_mismatch(spy, sandbox, producer_context):
    etag = put_model(spy.client, "models/m.bin", b"abc", sha256="not-a-hash")
    assert outcomes(producer.handler(s3_event(s3_record("models/m.bin", etag, 3)), producer_context)) == ["rejected"]
    assert models_tree(sandbox) == []
    sandbox.assert_confined()


def test_stale_event_copies_nothing(spy, sandbox, producer_context):
    etag_new = put_model(spy.client, "models/m.bin", b"newer")
    producer.handler(s3_event(s3_record("models/m.bin", etag_new, 5, "0055AED6DCD90281F0")), producer_context)
    spy.calls.clear()
    old = s3_record("models/m.bin", "0123456789abcdef0123456789abcdef", 5, "0055AED6DCD90281E5")
    assert outcomes(producer.handler(s3_event(old), producer_context)) == ["stale"]
    assert spy.calls == [] and sandbox.model("m.bin").read_bytes() == b"newer"
    sandbox.assert_confined()


def test_duplicate_event_copies_nothing(spy, sandbox, producer_context):
    etag = put_model(spy.client, "models/m.bin", b"abc")
    event = s3_event(s3_record("models/m.bin", etag, 3, "01"), s3_record("models/m.bin", etag, 3, "01"))
    assert outcomes(producer.handler(event, producer_context)) == ["installed", "duplicate"]
    assert spy.calls.count("get_object") == 1
    sandbox.assert_confined()


def test_superseded_event_copies_nothing(spy, sandbox, producer_context):
    first = put_model(spy.client, "models/m.bin", b"first")
    put_model(spy.client, "models/m.bin", b"second")
    assert outcomes(producer.handler(s3_event(s3_record("models/m.bin", first, 5)), producer_context)) == [
        "superseded"]
    assert models_tree(sandbox) == []
    sandbox.assert_confined()


def test_symlinked_directory_out_of_models_is_refused(spy, sandbox, producer_context):
    sandbox.layout.ensure()
    os.symlink(sandbox.outside, sandbox.mount / "models" / "evil")
    etag = put_model(spy.client, "models/evil/planted.bin", b"payload")
    assert outcomes(producer.handler(s3_event(s3_record("models/evil/planted.bin", etag, 7)), producer_context)) == [
        "unsafe_path"]
    assert spy.calls == []
    sandbox.assert_confined()


def test_model_name_that_is_a_symlink_is_replaced_not_written_through(spy, sandbox, producer_context):
    sandbox.layout.ensure()
    os.symlink(sandbox.outside / "secret.txt", sandbox.model("link.bin"))
    etag = put_model(spy.client, "models/link.bin", b"model bytes")
    assert outcomes(producer.handler(s3_event(s3_record("models/link.bin", etag, 11)), producer_context)) == [
        "installed"]
    assert not sandbox.model("link.bin").is_symlink()
    assert sandbox.model("link.bin").read_bytes() == b"model bytes"
    sandbox.assert_confined()


@pytest.mark.parametrize("existing, key", [
    ("team", "models/team/a.bin"),        # a file where a directory must go
    ("team/a.bin", "models/team"),        # a directory where the model must go
])
def test_file_directory_conflicts_are_refused(spy, sandbox, producer_context, existing, key):
    sandbox.layout.ensure()
    sandbox.model(existing).parent.mkdir(parents=True, exist_ok=True)
    sandbox.model(existing).write_bytes(b"existing")
    before = models_tree(sandbox)
    etag = put_model(spy.client, key, b"new")
    assert outcomes(producer.handler(s3_event(s3_record(key, etag, 3)), producer_context)) == ["conflict"]
    assert models_tree(sandbox) == before
    sandbox.assert_confined()


def test_dangling_symlink_parent_is_refused(spy, sandbox, producer_context):
    sandbox.layout.ensure()
    os.symlink(sandbox.outside / "nowhere", sandbox.mount / "models" / "dangling")
    etag = put_model(spy.client, "models/dangling/x.bin", b"x")
    assert outcomes(producer.handler(s3_event(s3_record("models/dangling/x.bin", etag, 1)), producer_context)) == [
        "unsafe_path"]
    assert not (sandbox.outside / "nowhere").exists()
    sandbox.assert_confined()


def test_damaged_record_is_ignored_and_rewritten(spy, sandbox, producer_context):
    etag = put_model(spy.client, "models/m.bin", b"abc")
    sandbox.layout.ensure()
    with open(sandbox.layout.meta_path("m.bin"), "w") as f:
        f.write('{"name": "m.bin", "size": "lots"')
    assert outcomes(producer.handler(s3_event(s3_record("models/m.bin", etag, 3, "01")), producer_context)) == [
        "installed"]
    assert rec.read_record(sandbox.layout, "m.bin").etag == etag
    sandbox.assert_confined()


def test_event_without_etag_or_with_a_lying_size_still_copies_the_object(spy, sandbox, producer_context):
    put_model(spy.client, "models/m.bin", b"12345")
    record = s3_record("models/m.bin", None, 10**15, "01")
    assert outcomes(producer.handler(s3_event(record), producer_context)) == ["installed"]
    assert sandbox.model("m.bin").read_bytes() == b"12345"
    sandbox.assert_confined()


def test_non_hex_sequencer_is_treated_as_absent(spy, sandbox, producer_context):
    etag = put_model(spy.client, "models/m.bin", b"abc")
    record = s3_record("models/m.bin", etag, 3, sequencer="ZZZ-not-hex")
    assert outcomes(producer.handler(s3_event(record), producer_context)) == ["installed"]
    assert rec.read_record(sandbox.layout, "m.bin").sequencer is None
    sandbox.assert_confined()


# =========================================================================== consumer


def predict(body, context, **kwargs):
    response = consumer.handler(api_v2("POST", "/predict", body, **kwargs), context)
    return response["statusCode"], response_json(response)


def assert_nothing_written(sandbox):
    outputs = sandbox.mount / "outputs"
    assert not outputs.exists() or list(outputs.iterdir()) == []
    sandbox.assert_confined()


@pytest.mark.parametrize("name", [
    "../etc/passwd", "/etc/passwd", "a\x00b", "a\\b", "..\\..\\x", "a/./b", "a/../b", "a//b", "./a",
    ".efsctl/meta/x.json", "x" * 5000, "y" * 300, "", "bad\ud800",
])
def test_predict_rejects_hostile_names(s3, sandbox, lambda_context, name):
    status, body = predict(json.dumps({"model": name}), lambda_context)
    assert (status, body["error"]["code"]) == (400, "InvalidModelName")
    assert_nothing_written(sandbox)


@pytest.mark.parametrize("value", [1, None, ["a"], {"a": 1}, True])
def test_predict_rejects_non_string_names(s3, sandbox, lambda_context, value):
    status, body = predict({"model": value}, lambda_context)
    assert (status, body["error"]["code"]) == (400, "InvalidModelName")
    assert_nothing_written(sandbox)


@pytest.mark.parametrize("raw", [
    "{", "not json", "[]", '"a string"', "null", "42", '{"model": NaN}', '{"model": Infinity}',
    "[" * 60_000, '\ufeff{"model": "a"}', '{"modle": "typo"}', '{"model": "a", "verify": "yes"}',
    '{"model": "a", "verify": 1}',
])
def test_predict_rejects_malformed_bodies(s3, sandbox, lambda_context, raw):
    status, body = predict(raw, lambda_context)
    assert (status, body["error"]["code"]) == (400, "BadRequest")
    assert_nothing_written(sandbox)


def test_predict_requires_a_body(s3, sandbox, lambda_context):
    event = api_v2("POST", "/predict")
    response = consumer.handler(event, lambda_context)
    assert (response["statusCode"], response_json(response)["error"]["code"]) == (400, "BadRequest")
    event["body"] = {"model": "a"}  # not a string: not what API Gateway sends
    response = consumer.handler(event, lambda_context)
    assert (response["statusCode"], response_json(response)["error"]["code"]) == (400, "BadRequest")
    assert_nothing_written(sandbox)


@pytest.mark.parametrize("raw, as_base64", [
    ("!!!not base64!!!", True),
    (base64.b64encode(b'{"model": "\xff\xfe"}').decode(), True),
])
def test_predict_rejects_bad_base64_bodies(s3, sandbox, lambda_context, raw, as_base64):
    event = api_v2("POST", "/predict")
    event["body"], event["isBase64Encoded"] = raw, as_base64
    response = consumer.handler(event, lambda_context)
    assert (response["statusCode"], response_json(response)["error"]["code"]) == (400, "BadRequest")
    assert_nothing_written(sandbox)


@pytest.mark.parametrize("as_base64", [False, True])
def test_predict_rejects_oversized_bodies(s3, sandbox, lambda_context, as_base64):
    raw = json.dumps({"model": "a", "pad": "x" * (64 * 1024)})
    status, body = predict(raw, lambda_context, base64_body=as_base64)
    assert (status, body["error"]["code"]) == (413, "PayloadTooLarge")
    assert_nothing_written(sandbox)


def test_a_body_of_exactly_64_kib_is_accepted(s3, sandbox, lambda_context):
    doc = {"model": "absent.bin", "pad": ""}
    doc["pad"] = "x" * (64 * 1024 - len(json.dumps(doc)))
    assert len(json.dumps(doc)) == 64 * 1024
    status, body = predict(json.dumps(doc), lambda_context)
    assert (status, body["error"]["code"]) == (404, "NotFound")


def test_symlink_out_of_models_is_not_followed(s3, sandbox, lambda_context):
    sandbox.layout.ensure()
    os.symlink(sandbox.outside / "secret.txt", sandbox.model("leak.bin"))
    os.symlink(sandbox.outside, sandbox.mount / "models" / "leakdir")
    for name in ("leak.bin", "leakdir/secret.txt"):
        status, body = predict({"model": name}, lambda_context)
        assert (status, body["error"]["code"]) == (404, "UnsafePath")
        assert sha(b"top secret\n") not in json.dumps(body)
        response = consumer.handler(api_v2("GET", f"/models/{name}", path_parameters={"name": name}), lambda_context)
        assert response["statusCode"] == 404
    listing = response_json(consumer.handler(api_v2("GET", "/models"), lambda_context))
    assert listing == {"models": []}
    assert_nothing_written(sandbox)


def test_symlink_inside_models_is_allowed(s3, sandbox, lambda_context):
    sandbox.layout.ensure()
    sandbox.model("real.bin").write_bytes(b"weights")
    os.symlink("real.bin", sandbox.model("alias.bin"))
    status, body = predict({"model": "alias.bin"}, lambda_context)
    assert status == 200 and body["sha256"] == sha(b"weights")
    sandbox.assert_confined()


@pytest.mark.parametrize("kind", ["loop", "fifo", "directory", "absent"])
def test_things_that_are_not_models_are_404(s3, sandbox, lambda_context, kind):
    sandbox.layout.ensure()
    target = sandbox.model("thing")
    if kind == "loop":
        os.symlink("thing", target)
    elif kind == "fifo":
        os.mkfifo(target)  # opening it for reading must not block
    elif kind == "directory":
        target.mkdir()
        (target / "inner.bin").write_bytes(b"x")
    status, body = predict({"model": "thing"}, lambda_context)
    assert (status, body["error"]["code"]) == (404, "NotFound")
    assert_nothing_written(sandbox)


@pytest.mark.parametrize("event", [
    api_v2("GET", "/predict"),
    api_v2("DELETE", "/models/a.bin", path_parameters={"name": "a.bin"}, route_key="$default"),
    api_v2("GET", "/admin", route_key="$default"),
    api_v2("POST", "/", route_key="$default"),
    api_v1("PUT", "/models", resource="/models"),
    {"version": "2.0", "routeKey": "$default"},
    {},
])
def test_unknown_routes_are_404(s3, sandbox, lambda_context, event):
    response = consumer.handler(event, lambda_context)
    assert (response["statusCode"], response_json(response)["error"]["code"]) == (404, "RouteNotFound")
    assert_nothing_written(sandbox)


@pytest.mark.parametrize("event", [None, "string event", [1, 2]])
def test_events_that_are_not_objects_are_400(s3, sandbox, lambda_context, event):
    response = consumer.handler(event, lambda_context)
    assert (response["statusCode"], response_json(response)["error"]["code"]) == (400, "BadRequest")


@pytest.mark.parametrize("event", [
    api_v2("GET", "/models/..%2Fsecret", path_parameters={"name": "../secret"}),
    api_v2("GET", "/models/%2e%2e/%2e%2e/outside/secret.txt", route_key="$default"),
    api_v2("GET", "/models/%2Fetc%2Fpasswd", route_key="$default"),
    api_v1("GET", "/models/a\\b", path_parameters={"name": "a\\b"}),
])
def test_describe_rejects_traversal(s3, sandbox, lambda_context, event):
    response = consumer.handler(event, lambda_context)
    assert (response["statusCode"], response_json(response)["error"]["code"]) == (400, "InvalidModelName")
    assert_nothing_written(sandbox)


def test_percent_sequences_are_decoded_once_only(s3, sandbox, lambda_context):
    event = api_v2("GET", "/models/%252e%252e", path_parameters={"name": "%2e%2e"})
    response = consumer.handler(event, lambda_context)
    assert (response["statusCode"], response_json(response)["error"]["code"]) == (404, "NotFound")
    assert_nothing_written(sandbox)


def test_unknown_model_is_404(s3, sandbox, lambda_context):
    status, body = predict({"model": "nope.bin"}, lambda_context)
    assert (status, body["error"]["code"]) == (404, "NotFound")
    assert "nope.bin" in body["error"]["message"]
    assert_nothing_written(sandbox)


def test_access_denied_is_recorded_as_a_refusal(spy, sandbox, producer_context, capsys):
    from botocore.exceptions import ClientError

    class Forbidden:
        def get_object(self, **kwargs):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    producer._clients["s3"] = Forbidden()
    result = producer.handler(s3_event(s3_record("models/m.bin", "abc", 3)), producer_context)
    assert outcomes(result) == ["access_denied"]
    line = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "AccessDenied" in x][0]
    assert line["level"] == "ERROR" and line["msg"].startswith("upload refused: S3 denied GetObject")
    refusal = rec.read_refusal(sandbox.layout, "m.bin")
    assert (refusal.reason, refusal.etag) == ("access_denied", "abc") and "AccessDenied" in refusal.message
    sandbox.assert_confined()
