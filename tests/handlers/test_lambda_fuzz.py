"""No file makes the consumer answer 5xx: the hostile headers that once did, a hostile header
per format, and a seeded fuzz run of random and mutated headers across every format, each
through ``POST /predict`` with a status < 500 and a bounded time per case."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import struct
import time
import zipfile

import pytest

import consumer
from lambda_events import api_v2, response_json
from protowire import field, varint
from test_lambda_analysis import gguf_bytes, npy_bytes, onnx_bytes, safetensors_bytes, zip_bytes

CASE_SECONDS = 10.0  # generous: CI is slow and shared; a real case takes milliseconds
FUZZ_CASES = 3000


@pytest.fixture
def model_slot(sandbox, monkeypatch):
    """``put(data)`` installs ``data`` as models/fuzz.bin (a new inode each time) and predicts it."""
    monkeypatch.delenv("BUCKET")  # results go to EFS only: this is about analysis, not S3
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # durability is tested elsewhere
    sandbox.layout.ensure()
    tmp = sandbox.mount / "staging"
    context = type("Context", (), {"aws_request_id": "fuzz", "function_name": "consumer"})()

    def put(data: bytes):
        tmp.write_bytes(data)
        os.replace(tmp, sandbox.model("fuzz.bin"))
        started = time.perf_counter()
        response = consumer.handler(api_v2("POST", "/predict", {"model": "fuzz.bin"}), context)
        elapsed = time.perf_counter() - started
        return response["statusCode"], response_json(response), elapsed

    return put


def _huge_dims_safetensors(dims: list) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": dims, "data_offsets": [0, 16]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + b"\0" * 16


def _npy_header(shape: str) -> bytes:
    return npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }")


HOSTILE = {
    # the three files that made every predict a 500 (math.prod, then json.dumps of a 30,000-digit int)
    "safetensors, 300 dims of 1e18": _huge_dims_safetensors([10**18] * 300),
    "npy, 1500 dims of 1e18": _npy_header("(" + "1000000000000000000, " * 1500 + ")"),
    "npy, two 4000-digit dims": _npy_header("(" + "9" * 4000 + ", " + "9" * 4000 + ")"),
    # reported as a clean model of 10^12 parameters; the library refuses it
    "safetensors, 104 bytes claiming 1e6 x 1e6 F32": _huge_dims_safetensors([1000000, 1000000]),
    "gguf, a tensor of 4 dims of 2^63": (
        b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 1) + b"w" + struct.pack("<I", 4)
        + struct.pack("<4Q", *[2**63] * 4) + struct.pack("<IQ", 0, 0) + b"\0" * 64),
    "gguf, 2^62 keys": b"GGUF" + struct.pack("<IQQ", 3, 0, 2**62) + b"\0" * 64,
    "gguf, a string of 2^63 bytes": b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**63) + b"\0" * 64,
    "onnx, an initializer of 64 dims of 2^62": (
        b"\x08\x08" + b"\x3a" + bytes([0])),  # replaced below with a real wire encoding
    "pickle, BINUNICODE8 of 2^63 bytes": b"\x80\x04\x8d" + struct.pack("<Q", 2**63) + b"x",
    "pickle, a 5000-digit LONG": b"(L" + b"9" * 5000 + b"L\n.",
    "pickle, 100,000 nested MARKs": b"(" * 100_000 + b".",
    "pickle protocol 0, memo key never stored": b"(g0\n.",
    "hdf5, a superblock pointing past the end": b"\x89HDF\r\n\x1a\n" + bytes([0, 0, 0, 0, 0, 8, 8, 0]) + b"\xff" * 88,
    "zip, 2^32-1 entries declared": b"PK\x05\x06" + b"\0" * 4 + struct.pack("<HHII", 0xFFFF, 0xFFFF, 2**32 - 1, 0)
                                     + b"\0\0",
    "json, 100,000 nested arrays": b"[" * 100_000,
    "json, a 10,000-digit number": b'{"n": ' + b"9" * 10_000 + b"}",
    "text, lone surrogate bytes": b"hello \xed\xa0\x80 world\n" * 100,
}


def _onnx_huge_initializer() -> bytes:
    tensor = b"".join(varint(1 << 3) + varint(2**62) for _ in range(64)) + varint(2 << 3) + varint(1)
    graph = field(1, field(4, b"Relu")) + field(5, tensor)
    return varint(1 << 3) + varint(8) + field(7, graph)


HOSTILE["onnx, an initializer of 64 dims of 2^62"] = _onnx_huge_initializer()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_headers_are_answered_not_failed(model_slot, name):
    status, body, elapsed = model_slot(HOSTILE[name])
    assert status == 200, body
    assert elapsed < CASE_SECONDS
    assert body["format"] != "unknown", body  # analysed, not degraded by a crash
    analysis = body["analysis"]
    if analysis.get("valid") is False:
        assert analysis["error"]
    assert len(json.dumps(body)) < 64 << 10


@pytest.mark.parametrize("name, fmt", [("safetensors, 300 dims of 1e18", "safetensors"),
                                       ("safetensors, 104 bytes claiming 1e6 x 1e6 F32", "safetensors"),
                                       ("npy, 1500 dims of 1e18", "npy"), ("npy, two 4000-digit dims", "npy")])
def test_the_reported_files_are_invalid_with_a_reason(model_slot, name, fmt):
    status, body, _ = model_slot(HOSTILE[name])
    assert (status, body["format"], body["analysis"]["valid"]) == (200, fmt, False)
    assert "parameters" not in body["analysis"] and "elements" not in body["analysis"]


def test_a_crash_in_analysis_degrades_to_a_result_without_it(model_slot, monkeypatch, capsys):
    def broken(fd, size):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(consumer.analysis, "analyse", broken)
    status, body, _ = model_slot(b"anything")
    assert status == 200 and body["format"] == "unknown"
    assert body["analysis"] == {"error": "the analysis failed (ZeroDivisionError); the file was not analysed"}
    assert body["sha256"] and '"msg": "analysis failed; answering without it"' in capsys.readouterr().out


def test_an_analysis_that_json_cannot_carry_degrades_too(model_slot, monkeypatch):
    monkeypatch.setattr(consumer.analysis, "analyse", lambda fd, size: ("npy", {"elements": 10 ** 5000}))
    status, body, _ = model_slot(b"anything")
    assert status == 200 and body["format"] == "unknown" and "ValueError" in body["analysis"]["error"]


# --------------------------------------------------------------------------- the fuzz run


def _seeds() -> list:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": [1.0] * 10}, protocol=2))
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/data/0", b"\0" * 64)
    seeds = [
        safetensors_bytes({"w": ("F32", [4, 4], 64), "b": ("F16", [4], 8)}, metadata={"k": "v"}),
        gguf_bytes(3), gguf_bytes(1),
        npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"),
        npy_bytes("{'descr': [('x', '<f4'), ('y', '<i2')], 'fortran_order': True, 'shape': (2,), }", major=2),
        onnx_bytes(), _onnx_huge_initializer(), buf.getvalue(), zip_bytes({"a.npy": b"x", "b.npy": b"y"}),
        b"\x89HDF\r\n\x1a\n" + bytes([0, 0, 0, 0, 0, 8, 8, 0, 4, 0, 16, 0, 0, 0, 0, 0]) + b"\0" * 200,
        b"\x89HDF\r\n\x1a\n" + bytes([2, 8, 8, 0]) + b"\0" * 40 + b"OHDR\x02\x00\x10" + b"\0" * 64,
        json.dumps({"a": [1, 2, {"b": None}], "c": "d" * 50}).encode(), b"plain text\nline two\n" * 20,
    ] + [pickle.dumps({"a": [1, 2.5, "x"], "b": (None, True)}, protocol=p) for p in range(6)]
    return seeds


def _mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        at = rng.randrange(len(data)) if data else 0
        if kind < 0.35 and data:
            data[at] = rng.randrange(256)
        elif kind < 0.55:
            data[at:at + 8] = struct.pack("<Q", rng.choice([2**63, 2**64 - 1, 2**32, 10**12, 0, 1 << 40]))
        elif kind < 0.65:
            data[at:at] = rng.choice([b"9" * rng.randint(1, 6000), b"[" * 2000, b"(" * 2000, b"\xff" * 64])
        elif kind < 0.8:
            del data[rng.randrange(len(data) + 1):]
        elif kind < 0.9 and data:
            end = min(len(data), at + rng.randint(1, 64))
            data[at:at] = data[at:end] * rng.randint(1, 50)
        else:
            data[at:at + 4] = struct.pack("<I", rng.choice([2**31, 2**32 - 1, 64, 65]))
    return bytes(data)


def _case(rng: random.Random, seeds: list) -> bytes:
    roll = rng.random()
    if roll < 0.85:
        return _mutate(rng, rng.choice(seeds))
    magic = rng.choice([b"GGUF", b"\x93NUMPY\x01\x00", b"\x89HDF\r\n\x1a\n", b"PK\x03\x04", b"\x80\x04", b"\x08\x07",
                        b"(", b"{", b"[", b""])
    return magic + bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))


def test_fuzz_no_header_yields_a_5xx(model_slot):
    rng = random.Random(20251313)
    seeds = _seeds()
    formats = {}
    slowest = 0.0
    for case in range(FUZZ_CASES):
        data = _case(rng, seeds)
        status, body, elapsed = model_slot(data)
        assert status < 500, (case, data[:200], body)
        assert elapsed < CASE_SECONDS, (case, data[:200], elapsed)
        assert status == 200 and body["format"] != "unknown", (case, data[:200], body)
        formats[body["format"]] = formats.get(body["format"], 0) + 1
        slowest = max(slowest, elapsed)
    # every format was reached by some of the cases
    assert {"safetensors", "gguf", "npy", "onnx", "pytorch", "npz", "zip", "hdf5", "pickle", "json", "text",
            "binary"} <= set(formats), formats
