"""Format detection and analysis from header bytes; entropy of a bounded sample."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile

import pytest

import efs_analysis as analysis
from protowire import field, varint


def _analyse_bytes(tmp_path, data: bytes):
    path = tmp_path / "model"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        return analysis.analyse(fd, len(data))
    finally:
        os.close(fd)


def safetensors_bytes(tensors: dict, metadata=None, pad: int = 0) -> bytes:
    header, offset = {}, 0
    for name, (dtype, shape, nbytes) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8 + pad)
    return struct.pack("<Q", len(raw)) + raw + b"\x00" * offset


def _gguf_str(s: str, wide: bool = True) -> bytes:
    raw = s.encode()
    return struct.pack("<Q" if wide else "<I", len(raw)) + raw


def gguf_bytes(version: int = 3, truncate: int = 0) -> bytes:
    wide = version >= 2
    count = "<Q" if wide else "<I"
    kvs = [
        _gguf_str("general.architecture", wide) + struct.pack("<I", 8) + _gguf_str("llama", wide),
        _gguf_str("general.name", wide) + struct.pack("<I", 8) + _gguf_str("tiny llama", wide),
        _gguf_str("llama.context_length", wide) + struct.pack("<I", 4) + struct.pack("<I", 2048),
        _gguf_str("general.file_type", wide) + struct.pack("<I", 4) + struct.pack("<I", 7),
        _gguf_str("tokenizer.ggml.add_bos_token", wide) + struct.pack("<I", 7) + b"\x01",
        _gguf_str("tokenizer.ggml.tokens", wide) + struct.pack("<II", 9, 8) + struct.pack(count, 3)
        + b"".join(_gguf_str(t, wide) for t in ("<s>", "</s>", "hello")),
        _gguf_str("tokenizer.ggml.scores", wide) + struct.pack("<II", 9, 6) + struct.pack(count, 3)
        + struct.pack("<3f", 0.0, -1.0, -2.5),
        _gguf_str("test.nested", wide) + struct.pack("<II", 9, 9) + struct.pack(count, 2)
        + struct.pack("<I", 10) + struct.pack(count, 2) + struct.pack("<2Q", 1, 2)
        + struct.pack("<I", 8) + struct.pack(count, 1) + _gguf_str("x", wide),
    ]
    dim = "<Q" if wide else "<I"
    tensors = [  # token_embd: 64 x 32 Q4_0 (2 blocks of 18 bytes per row) = 1152 bytes at 0
        _gguf_str("token_embd.weight", wide) + struct.pack("<I", 2) + struct.pack(dim, 64) + struct.pack(dim, 32)
        + struct.pack("<IQ", 2, 0),
        _gguf_str("output_norm.weight", wide) + struct.pack("<I", 1) + struct.pack(dim, 64) + struct.pack("<IQ", 0, 1152),
    ]
    data = (b"GGUF" + struct.pack("<I", version) + struct.pack(count, len(tensors)) + struct.pack(count, len(kvs))
            + b"".join(kvs) + b"".join(tensors))
    data += b"\x00" * (-len(data) % 32) + b"\x01" * (1152 + 64 * 4)
    return data[: len(data) - truncate] if truncate else data


def npy_bytes(header: str, major: int = 1, body: bytes = b"\x00" * 48) -> bytes:
    raw = header.encode("latin-1")
    prefix = 10 if major == 1 else 12
    raw += b" " * (-(prefix + len(raw) + 1) % 64) + b"\n"
    length = struct.pack("<H", len(raw)) if major == 1 else struct.pack("<I", len(raw))
    return b"\x93NUMPY" + bytes([major, 0]) + length + raw + body


def onnx_bytes() -> bytes:
    graph = field(1, b"node-bytes" * 50) + field(2, b"main_graph")
    opset = varint(2 << 3) + varint(17)
    opset_ml = field(1, b"ai.onnx.ml") + varint(2 << 3) + varint(3)
    return (varint(1 << 3) + varint(8) + field(2, b"pytorch") + field(3, b"2.1.0")
            + field(7, graph) + field(8, opset) + field(8, opset_ml))


def zip_bytes(entries: dict) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_safetensors(tmp_path):
    data = safetensors_bytes({"w": ("F32", [2, 3], 24), "b": ("F16", [3], 6), "e": ("F32", [4], 16)},
                             metadata={"format": "pt"})
    fmt, result = _analyse_bytes(tmp_path, data)
    assert fmt == "safetensors"
    assert result["tensors"] == 3 and result["dtypes"] == {"F16": 1, "F32": 2}
    assert result["parameters"] == 6 + 3 + 4 and result["metadata_keys"] == 1
    assert list(result)[0] == "entropy_bits_per_byte"


def test_safetensors_header_bigger_than_the_head(tmp_path):
    tensors = {f"layer.{i}.weight": ("BF16", [8, 8], 128) for i in range(2000)}
    data = safetensors_bytes(tensors)
    assert len(data) > analysis.HEAD_BYTES
    fmt, result = _analyse_bytes(tmp_path, data)
    assert (fmt, result["tensors"], result["parameters"]) == ("safetensors", 2000, 2000 * 64)


@pytest.mark.parametrize("data", [
    struct.pack("<Q", 10**12) + b"{}" + b"\x00" * 20,                   # header longer than the file
    struct.pack("<Q", 8) + b"{not js}",                               # not JSON
])
def test_what_only_starts_like_safetensors_is_binary(tmp_path, data):
    fmt, _ = _analyse_bytes(tmp_path, data)
    assert fmt == "binary"


@pytest.mark.parametrize("data, error", [
    (struct.pack("<Q", 12) + b'{"w": 5}    ' + b"\x00" * 10, "lacks dtype"),
    (struct.pack("<Q", 72) + json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 999]}}).encode()
     .ljust(72), "invalid shape, data type, or offset"),
    (struct.pack("<Q", 80) + json.dumps({"w": {"dtype": "F32", "shape": [1000000, 1000000],
                                               "data_offsets": [0, 16]}}).encode().ljust(80) + b"\x00" * 16,
     "invalid shape, data type, or offset"),
])
def test_safetensors_whose_header_breaks_the_rules_is_invalid(tmp_path, data, error):
    fmt, result = _analyse_bytes(tmp_path, data)
    assert fmt == "safetensors" and result["valid"] is False and error in result["error"]
    assert "parameters" not in result


@pytest.mark.parametrize("version", [1, 2, 3])
def test_gguf_parses_keys_arrays_and_tensor_infos(tmp_path, version):
    fmt, result = _analyse_bytes(tmp_path, gguf_bytes(version))
    assert fmt == "gguf"
    assert result["version"] == version and result["tensors"] == 2 and result["keys"] == 8
    assert result["architecture"] == "llama" and result["name"] == "tiny llama" and result["file_type"] == 7
    assert result["parameters"] == 64 * 32 + 64 and result["dtypes"] == {"F32": 1, "Q4_0": 1}
    assert "error" not in result and "valid" not in result


def test_truncated_gguf_reports_what_it_found(tmp_path):
    fmt, result = _analyse_bytes(tmp_path, gguf_bytes(3, truncate=1600))
    assert fmt == "gguf" and result["architecture"] == "llama" and "malformed header" in result["error"]
    assert result["valid"] is False


def test_gguf_with_absurd_counts_is_bounded(tmp_path):
    data = b"GGUF" + struct.pack("<IQQ", 3, 2**62, 2**62) + _gguf_str("k") + struct.pack("<IIQ", 9, 8, 2**62) \
        + b"\x00" * 8 * 1000
    fmt, result = _analyse_bytes(tmp_path, data)
    assert fmt == "gguf" and "malformed header" in result["error"]


def test_pytorch_zip(tmp_path):
    data = zip_bytes({"archive/data.pkl": pickle.dumps({"w": 1}, protocol=2), "archive/version": "3\n",
                      "archive/data/0": b"\x00" * 16, "archive/data/1": b"\x00" * 16,
                      "archive/byteorder": "little"})
    fmt, result = _analyse_bytes(tmp_path, data)
    assert fmt == "pytorch"
    assert result["entries"] == 5 and result["archive"] == "archive" and result["storages"] == 2
    assert result["version"] == "3"


def test_npz_and_plain_zip(tmp_path):
    assert _analyse_bytes(tmp_path, zip_bytes({"a.npy": b"x", "b.npy": b"y"}))[0] == "npz"
    fmt, result = _analyse_bytes(tmp_path, zip_bytes({"readme.txt": b"hi"}))
    assert fmt == "zip" and result["entries"] == 1


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_protocol(tmp_path, protocol):
    fmt, result = _analyse_bytes(tmp_path, pickle.dumps({"weights": [1.0, 2.0]}, protocol=protocol))
    assert (fmt, result["protocol"]) == ("pickle", protocol)


@pytest.mark.parametrize("major", [1, 2])
def test_npy(tmp_path, major):
    data = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", major)
    fmt, result = _analyse_bytes(tmp_path, data)
    assert fmt == "npy"
    assert result["dtype"] == "<f4" and result["shape"] == [3, 4] and result["elements"] == 12
    assert result["fortran_order"] is False and result["version"] == f"{major}.0"


@pytest.mark.parametrize("header", ["{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                                    "__import__('os').system('x')",
                                    "{'descr': '<f4', 'shape': " + "(" * 500 + ")" * 500 + "}"])
def test_hostile_npy_header_is_never_executed(tmp_path, header):
    fmt, result = _analyse_bytes(tmp_path, npy_bytes(header))
    assert fmt == "npy" and result["valid"] is False and result["error"]


@pytest.mark.parametrize("offset", [0, 512, 2048])
def test_hdf5_signature_with_or_without_user_block(tmp_path, offset):
    data = b"\x00" * offset + analysis.HDF5_SIGNATURE + b"\x02" + b"\x00" * 100
    fmt, result = _analyse_bytes(tmp_path, data)
    assert fmt == "hdf5" and result == {**result, "superblock_version": 2, "offset": offset}


def test_onnx(tmp_path):
    fmt, result = _analyse_bytes(tmp_path, onnx_bytes())
    assert fmt == "onnx"
    assert result["ir_version"] == 8 and result["producer_name"] == "pytorch"
    assert result["producer_version"] == "2.1.0" and result["opsets"] == {"": 17, "ai.onnx.ml": 3}
    assert result["graph_bytes"] > 500


def test_protobuf_without_a_graph_is_not_onnx(tmp_path):
    assert _analyse_bytes(tmp_path, varint(8) + varint(8) + field(2, b"pytorch"))[0] == "binary"


def test_json_text_binary_empty(tmp_path):
    assert _analyse_bytes(tmp_path, b'{"a": 1, "b": [1, 2]}')[1]["keys"] == 2
    assert _analyse_bytes(tmp_path, b"[1, 2, 3]") [1]["items"] == 3
    fmt, result = _analyse_bytes(tmp_path, "line one\nligne deux é\n".encode())
    assert (fmt, result["lines"], result["encoding"]) == ("text", 2, "utf-8")
    assert _analyse_bytes(tmp_path, os.urandom(4096))[0] == "binary"
    fmt, result = _analyse_bytes(tmp_path, b"")
    assert fmt == "empty" and result == {"entropy_bits_per_byte": 0.0, "sample_bytes": 0}


def test_deeply_nested_json_is_text(tmp_path):
    fmt, _ = _analyse_bytes(tmp_path, b"[" * 100_000)
    assert fmt == "text"


def test_entropy_values():
    assert analysis.byte_entropy(b"") == 0.0
    assert analysis.byte_entropy(b"\x00" * 1000) == 0.0
    assert analysis.byte_entropy(bytes(range(256)) * 4) == pytest.approx(8.0)
    assert analysis.byte_entropy(b"ab" * 10) == pytest.approx(1.0)


def test_large_files_are_sampled_not_read(tmp_path, monkeypatch):
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(8 << 30)  # sparse: 8 GiB of zeros
    read = []
    real_pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, off: read.append(n) or real_pread(fd, n, off))
    fd = os.open(path, os.O_RDONLY)
    try:
        fmt, result = analysis.analyse(fd, 8 << 30)
    finally:
        os.close(fd)
    assert fmt == "binary" and result["sample_bytes"] == analysis.SAMPLE_BYTES
    assert result["entropy_bits_per_byte"] == 0.0
    assert sum(read) <= analysis.SAMPLE_BYTES + 2 * analysis.HEAD_BYTES
