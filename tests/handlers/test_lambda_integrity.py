"""`verify` verifies: a model whose bytes changed on EFS after the producer installed it is
answered with 409 IntegrityError (both hashes), listed as corrupt, and repaired by an upload."""

from __future__ import annotations

import hashlib
import os

import consumer
import efs_records as rec
import producer
from lambda_events import api_v2, put_model, response_json, s3_event, s3_record

ORIGINAL = bytes(range(256)) * 64


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def install(s3, name: str, data: bytes, sequencer: str = "01") -> None:
    etag = put_model(s3, "models/" + name, data, sha256=sha(data))
    assert producer.handler(s3_event(s3_record("models/" + name, etag, len(data), sequencer)), None)[
        "results"][0]["outcome"] == "installed"


def overwrite_four_bytes(path, keep_mtime: bool = False) -> bytes:
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(b"EVIL")
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return path.read_bytes()


def predict(name: str, context, verify: bool = False):
    response = consumer.handler(api_v2("POST", "/predict", {"model": name, "verify": verify}), context)
    return response["statusCode"], response_json(response)


def listed(context) -> dict:
    return {m["name"]: m for m in response_json(consumer.handler(api_v2("GET", "/models"), context))["models"]}


def test_bytes_overwritten_on_efs_are_an_integrity_error_until_reuploaded(s3, sandbox, lambda_context):
    install(s3, "m.bin", ORIGINAL)
    assert predict("m.bin", lambda_context)[0] == 200
    damaged = overwrite_four_bytes(sandbox.model("m.bin"))
    for verify in (False, True):
        status, body = predict("m.bin", lambda_context, verify)
        assert status == 409, body
        error = body["error"]
        assert error["code"] == "IntegrityError" and error["name"] == "m.bin"
        assert (error["expected_sha256"], error["actual_sha256"]) == (sha(ORIGINAL), sha(damaged))
        assert sha(ORIGINAL) in error["message"] and sha(damaged) in error["message"]
        assert "upload it again" in error["message"]
    entry = listed(lambda_context)["m.bin"]
    assert entry["corrupt"]["expected_sha256"] == sha(ORIGINAL) and entry["sha256"] == sha(damaged)
    describe = response_json(consumer.handler(api_v2("GET", "/models/m.bin", path_parameters={"name": "m.bin"}),
                                              lambda_context))
    assert describe["corrupt"]["actual_sha256"] == sha(damaged)

    install(s3, "m.bin", ORIGINAL, sequencer="02")  # the repair: upload it again
    assert rec.read_corruption(sandbox.layout, "m.bin") is None
    assert "corrupt" not in listed(lambda_context)["m.bin"]
    status, body = predict("m.bin", lambda_context, verify=True)
    assert status == 200 and body["sha256"] == sha(ORIGINAL)


def test_only_verify_catches_a_change_that_kept_the_mtime_then_it_sticks(s3, sandbox, lambda_context):
    install(s3, "m.bin", ORIGINAL)
    overwrite_four_bytes(sandbox.model("m.bin"), keep_mtime=True)
    status, body = predict("m.bin", lambda_context)
    assert status == 200 and body["sha256"] == sha(ORIGINAL) and body["cached"] is True  # the record vouches
    assert predict("m.bin", lambda_context, verify=True)[0] == 409
    consumer.reset_caches()
    assert predict("m.bin", lambda_context)[0] == 409  # marked corrupt: no longer trusted
    assert "corrupt" in listed(lambda_context)["m.bin"]
    install(s3, "m.bin", ORIGINAL, sequencer="02")  # same bytes, same ETag: still a repair, not a duplicate
    assert predict("m.bin", lambda_context, verify=True)[0] == 200 and "corrupt" not in listed(lambda_context)["m.bin"]


def test_a_touched_but_intact_model_verifies(s3, sandbox, lambda_context):
    install(s3, "m.bin", ORIGINAL)
    os.utime(sandbox.model("m.bin"), (1, 1))
    status, body = predict("m.bin", lambda_context, verify=True)
    assert status == 200 and body["sha256"] == sha(ORIGINAL)
    assert rec.read_corruption(sandbox.layout, "m.bin") is None


def test_a_corrupt_mark_is_lifted_when_the_same_file_hashes_right_again(s3, sandbox, lambda_context):
    install(s3, "m.bin", ORIGINAL)
    path = sandbox.model("m.bin")
    st = os.stat(path)
    overwrite_four_bytes(path, keep_mtime=True)
    assert predict("m.bin", lambda_context, verify=True)[0] == 409
    with open(path, "r+b") as f:  # put the original bytes back in place
        f.seek(1000)
        f.write(ORIGINAL[1000:1004])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert predict("m.bin", lambda_context, verify=True)[0] == 200
    assert predict("m.bin", lambda_context)[0] == 200


def test_the_uploaders_declared_sha256_is_compared_too(s3, sandbox, lambda_context):
    install(s3, "m.bin", ORIGINAL)
    record = rec.read_record(sandbox.layout, "m.bin")
    assert record.declared_sha256 == sha(ORIGINAL) and record.ino == os.stat(sandbox.model("m.bin")).st_ino
    record.declared_sha256 = "d" * 64  # a record that disagrees with what the uploader declared
    rec.write_record(sandbox.layout, record)
    status, body = predict("m.bin", lambda_context, verify=True)
    assert status == 409 and body["error"]["code"] == "IntegrityError"


def test_a_model_without_a_record_has_nothing_to_disagree_with(s3, sandbox, lambda_context):
    sandbox.layout.ensure()
    sandbox.model("hand.bin").write_bytes(b"placed by hand")
    status, body = predict("hand.bin", lambda_context, verify=True)
    assert status == 200 and body["sha256"] == sha(b"placed by hand")


def test_an_unreadable_model_is_409_not_500(s3, sandbox, lambda_context, monkeypatch):
    import errno

    install(s3, "m.bin", ORIGINAL)
    real_open = os.open

    def denied(path, flags, *args):  # as for a non-root function after a chmod 000 (we may run as root)
        if str(path).endswith("m.bin"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", denied)
    status, body = predict("m.bin", lambda_context)
    assert (status, body["error"]["code"]) == (409, "ModelUnreadable")
