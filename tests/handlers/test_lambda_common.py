"""Core helpers, without any event: names, sequencers, logs, the EFS store."""

from __future__ import annotations

import io
import json
import os

import pytest

import efs_common as common
import efs_records as rec
import efs_store as store
from efs_common import InvalidModelName, validate_model_name


@pytest.mark.parametrize("name", [
    "resnet.safetensors",
    "team/a.gguf",
    "deep/er/still/model.bin",
    "my model+v1 (final).bin",
    "mödel/ü.npy",
    "a..b",
    "x" * 255,
    "/".join(["y" * 200] * 5),  # 1004 bytes
])
def test_valid_names_are_returned_unchanged(name):
    assert validate_model_name(name) == name


@pytest.mark.parametrize("name, fragment", [
    ("", "empty"),
    ("../etc/passwd", "starts with '.'"),
    ("a/../../b", "starts with '.'"),
    ("./a", "starts with '.'"),
    ("a/./b", "starts with '.'"),
    (".hidden", "starts with '.'"),
    ("team/.efsctl", "starts with '.'"),
    ("/etc/passwd", "relative"),
    ("a//b", "empty path segment"),
    ("a/", "empty path segment"),
    ("a\x00b", "U+0000"),
    ("a\nb", "U+000A"),
    ("a\x7fb", "U+007F"),
    ("a\\b", "backslash"),
    ("..\\..\\windows", "backslash"),
    ("x" * 1025, "limit is 1024"),
    ("é" * 513, "limit is 1024"),
    ("x" * 256, "exceeds 255"),
    ("bad\ud800surrogate", "UTF-8"),
])
def test_invalid_names_raise_a_typed_error(name, fragment):
    with pytest.raises(InvalidModelName) as info:
        validate_model_name(name)
    assert fragment in str(info.value)
    assert info.value.code == "InvalidModelName"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [None, 42, ["a"], b"bytes"])
def test_non_string_names_are_invalid(value):
    with pytest.raises(InvalidModelName, match="string"):
        validate_model_name(value)


@pytest.mark.parametrize("a, b, expected", [
    ("0055AED6DCD90281E5", "0055AED6DCD90281E6", -1),
    ("0055AED6DCD90281E5", "0055aed6dcd90281e5", 0),
    ("0055AED6DCD90281E5", "0055AED6DCD90281E500", 0),   # padding makes them equal
    ("0055AED6DCD90281E6", "0055AED6DCD90281E50001", 1),  # shorter, but larger once padded
    ("0055B", "0055AFFFFFFFFFFFFF", 1),
])
def test_sequencers_compare_after_right_padding(a, b, expected):
    assert common.compare_sequencers(a, b) == expected
    assert common.compare_sequencers(b, a) == -expected


@pytest.mark.parametrize("value, expected", [
    ("0055aed6dcd90281e5", "0055AED6DCD90281E5"), ("", None), (None, None), ("xyz", None), (12, None)])
def test_normalize_sequencer(value, expected):
    assert common.normalize_sequencer(value) == expected


def test_config_defaults_and_environment():
    assert common.Config.from_env({}) == common.Config("/mnt/efs", None, "models/", "outputs/")
    env = {"EFS_MOUNT_PATH": "/mnt/x", "BUCKET": "b", "MODELS_PREFIX": "m/", "OUTPUTS_PREFIX": "o/"}
    assert common.Config.from_env(env) == common.Config("/mnt/x", "b", "m/", "o/")


def test_logger_writes_one_json_object_per_line():
    out = io.StringIO()
    logger = common.JsonLogger("producer", stream=out)
    logger.bind("req-1")
    logger.info("model installed", key="models/a b.bin", bytes=3, sha256="ab", duration_ms=1.5)
    logger.debug("hidden at INFO")
    logger.error("bad \ud800 name", key="x\ud800")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first)[:5] == ["ts", "level", "fn", "request_id", "msg"]
    assert first["level"] == "INFO" and first["fn"] == "producer" and first["request_id"] == "req-1"
    assert first["key"] == "models/a b.bin" and first["bytes"] == 3 and first["duration_ms"] == 1.5
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert json.loads(lines[1])["level"] == "ERROR"
    assert lines[1].isascii()


def test_utc_iso_has_milliseconds():
    assert common.utc_iso(0) == "1970-01-01T00:00:00.000Z"
    assert common.utc_iso(1.2345) == "1970-01-01T00:00:01.234Z" or common.utc_iso(1.2345) == "1970-01-01T00:00:01.235Z"
    assert common.utc_iso(59.9999) == "1970-01-01T00:01:00.000Z"


def test_context_helpers(lambda_context):
    assert common.context_request_id(lambda_context) == lambda_context.aws_request_id
    assert len(common.context_request_id(None)) == 32
    assert common.context_function_name(None, "consumer") == "consumer"


# --------------------------------------------------------------------------- store


def test_layout_keeps_state_out_of_models(tmp_path):
    layout = store.Layout(str(tmp_path))
    layout.ensure()
    assert layout.meta_path("team/a.gguf").startswith(str(tmp_path / ".efsctl" / "meta") + "/")
    assert layout.meta_path("a") != layout.meta_file("a", ".rejected") != layout.meta_file("a", ".corrupt")
    assert os.path.basename(layout.meta_path("x" * 255 + "/" + "y" * 255)) == store.Layout.name_key(
        "x" * 255 + "/" + "y" * 255) + ".json"
    with pytest.raises(InvalidModelName):
        layout.model_path("../x")


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path):
    layout = store.Layout(str(tmp_path))
    layout.ensure()
    dest = os.path.join(layout.outputs, "r.json")
    store.write_atomic(layout, dest, b"one")
    store.write_atomic(layout, dest, b"two")
    assert open(dest, "rb").read() == b"two"
    assert os.listdir(layout.tmp) == []


def test_write_atomic_cleans_up_on_failure(tmp_path):
    layout = store.Layout(str(tmp_path))
    layout.ensure()
    with pytest.raises(FileNotFoundError):
        store.write_atomic(layout, os.path.join(layout.root, "missing-dir", "x.json"), b"x")
    assert os.listdir(layout.tmp) == []


def test_records_round_trip_and_ignore_damage(tmp_path):
    layout = store.Layout(str(tmp_path))
    layout.ensure()
    record = rec.ModelRecord(name="a/b", key="models/a/b", size=3, sha256="00" * 32, etag="e",
                             sequencer="0A", mtime_ns=5, installed_at="t", ino=7, declared_sha256="00" * 32)
    rec.write_record(layout, record)
    assert rec.read_record(layout, "a/b") == record
    assert rec.read_record(layout, "a/c") is None
    with open(layout.meta_path("a/b"), "w") as f:
        f.write("{not json")
    assert rec.read_record(layout, "a/b") is None
    with open(layout.meta_path("a/b"), "w") as f:
        json.dump({"name": "someone-else"}, f)
    assert rec.read_record(layout, "a/b") is None
    with open(layout.meta_path("a/b"), "w") as f:
        json.dump(dict(vars(record), size="lots"), f)
    assert rec.read_record(layout, "a/b") is None


def test_records_written_by_the_previous_version_still_read(tmp_path):
    layout = store.Layout(str(tmp_path))
    layout.ensure()
    old = {"name": "m", "key": "models/m", "size": 3, "sha256": "11" * 32, "etag": "e", "sequencer": None,
           "mtime_ns": 5, "installed_at": "t"}
    with open(layout.meta_path("m"), "w") as f:
        json.dump(old, f)
    assert rec.read_record(layout, "m") == rec.ModelRecord(**old)
    rejected = {"name": "m", "key": "models/m", "etag": "e", "sequencer": "01", "expected_sha256": "aa" * 32,
                "actual_sha256": "bb" * 32, "size": 3, "rejected_at": "2025-01-31T12:00:00.000Z"}
    with open(layout.meta_file("m", ".rejected"), "w") as f:
        json.dump(rejected, f)
    refusal = rec.read_refusal(layout, "m")
    assert (refusal.reason, refusal.refused_at, refusal.expected_sha256) == (
        rec.CHECKSUM_MISMATCH, "2025-01-31T12:00:00.000Z", "aa" * 32)
    assert "aa" * 32 in refusal.message and "bb" * 32 in refusal.message


def test_name_lock_is_reentrant_across_names(tmp_path):
    layout = store.Layout(str(tmp_path))
    layout.ensure()
    with store.name_lock(layout, "a"):
        with store.name_lock(layout, "b"):
            pass
    with store.name_lock(layout, "a"):
        pass
    assert sorted(os.listdir(layout.locks)) == sorted(
        [store.Layout.name_key("a") + ".lock", store.Layout.name_key("b") + ".lock"])
