"""Content analysis of a model file: its format from header bytes, plus byte entropy.

``analyse(fd, size)`` reads a bounded amount whatever the file size: a 64 KiB head, an
entropy sample of at most 1 MiB (16 windows spread over the file), and the format's own
header (a safetensors JSON header, the GGUF key/value and tensor-info sections, a zip's
central directory, the top-level fields of an ONNX protobuf). Nothing is unpickled or
executed; malformed headers fall through to the next format, ending at ``binary``.
"""

from __future__ import annotations

import ast
import codecs
import json
import math
import os
import struct
import zipfile
from collections import Counter
from typing import Any, Dict, Optional, Tuple

HEAD_BYTES = 64 << 10
SAMPLE_BYTES = 1 << 20
SAMPLE_WINDOWS = 16
SAFETENSORS_MAX_HEADER = 100_000_000  # the format's own limit
GGUF_MAX_BYTES = 256 << 20  # metadata + tensor infos; a large vocabulary is a few MiB
GGUF_MAX_STRING = 16 << 20
NPY_MAX_HEADER = 64 << 10
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

Analysis = Dict[str, Any]


class _Malformed(Exception):
    pass


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        data = os.pread(fd, size - got, offset + got)
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


# --------------------------------------------------------------------------- entropy


def byte_entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte (0.0 for no data)."""
    n = len(data)
    if not n:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values()) + 0.0


def read_sample(fd: int, size: int) -> bytes:
    """The whole file up to SAMPLE_BYTES, else SAMPLE_WINDOWS windows spread evenly over it."""
    if size <= SAMPLE_BYTES:
        return _pread_exact(fd, size, 0)
    window = SAMPLE_BYTES // SAMPLE_WINDOWS
    span = size - window
    return b"".join(_pread_exact(fd, window, i * span // (SAMPLE_WINDOWS - 1)) for i in range(SAMPLE_WINDOWS))


# --------------------------------------------------------------------------- a bounded cursor


class _Cursor:
    """Sequential little-endian reads through a window, within a byte budget.

    ``source`` is an open fd or a bytes object.
    """

    def __init__(self, source, size: int, pos: int, budget: int, window: int = 1 << 20,
                 max_steps: int = 2_000_000):
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
            self._read = lambda n, offset: data[offset:offset + n]
        else:
            self._read = lambda n, offset: _pread_exact(source, n, offset)
        self.size, self.pos = size, pos
        self.limit = min(size, pos + budget)
        self.window = window
        self.buf, self.buf_at = b"", pos
        self.steps_left = max_steps  # bounds CPU as the budget bounds bytes (e.g. tiny strings)

    def take(self, n: int) -> bytes:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise _Malformed("too many fields")
        if n < 0 or self.pos + n > self.limit:
            raise _Malformed(f"read past the end at {self.pos}")
        rel = self.pos - self.buf_at
        if rel < 0 or rel + n > len(self.buf):
            self.buf = self._read(max(n, self.window), self.pos)
            self.buf_at, rel = self.pos, 0
            if len(self.buf) < n:
                raise _Malformed("file shorter than expected")
        self.pos += n
        return self.buf[rel:rel + n]

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.limit:
            raise _Malformed(f"skip past the end at {self.pos}")
        self.pos += n

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def varint(self) -> int:
        result = 0
        for shift in range(0, 70, 7):
            byte = self.take(1)[0]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
        raise _Malformed("varint too long")


# --------------------------------------------------------------------------- safetensors


def _safetensors(fd: int, size: int, head: bytes) -> Optional[Analysis]:
    if size < 10 or len(head) < 9:
        return None
    header_len = struct.unpack("<Q", head[:8])[0]
    if header_len < 2 or header_len > min(size - 8, SAFETENSORS_MAX_HEADER) or head[8:9] != b"{":
        return None
    raw = head[8:8 + header_len] if 8 + header_len <= len(head) else _pread_exact(fd, header_len, 8)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(header, dict):
        return None
    data_len = size - 8 - header_len
    dtypes: Counter = Counter()
    parameters = 0
    tensors = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            return None
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if (not isinstance(dtype, str) or not isinstance(shape, list) or not isinstance(offsets, list)
                or len(offsets) != 2 or not all(_is_uint(v) for v in shape + offsets)
                or not offsets[0] <= offsets[1] <= data_len):
            return None
        tensors += 1
        dtypes[dtype] += 1
        parameters += math.prod(shape)
    result: Analysis = {"tensors": tensors, "dtypes": dict(sorted(dtypes.items())),
                        "parameters": parameters, "header_bytes": header_len}
    metadata = header.get("__metadata__")
    if isinstance(metadata, dict):
        result["metadata_keys"] = len(metadata)
    return result


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --------------------------------------------------------------------------- GGUF

_GGUF_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_GGUF_REPORTED = {"general.architecture": "architecture", "general.name": "name",
                  "general.file_type": "file_type"}


def _gguf_string(cur: _Cursor, wide: bool) -> bytes:
    length = cur.unpack("Q" if wide else "I")
    if length > GGUF_MAX_STRING:
        raise _Malformed("string too long")
    return cur.take(length)


def _gguf_value(cur: _Cursor, vtype: int, wide: bool, depth: int = 0):
    """Read one value; arrays are walked (strings must be, to find the next key) not kept."""
    if vtype in _GGUF_FIXED:
        return cur.unpack(_GGUF_FIXED[vtype])
    if vtype == _GGUF_STRING:
        return _gguf_string(cur, wide).decode("utf-8", "replace")
    if vtype == _GGUF_ARRAY and depth < 4:
        item_type = cur.unpack("I")
        count = cur.unpack("Q" if wide else "I")
        if item_type in _GGUF_FIXED:
            cur.skip(count * struct.calcsize("<" + _GGUF_FIXED[item_type]))
        else:
            for _ in range(count):
                _gguf_value(cur, item_type, wide, depth + 1)
        return None
    raise _Malformed(f"unknown value type {vtype}")


def _gguf(fd: int, size: int, head: bytes) -> Optional[Analysis]:
    if head[:4] != b"GGUF" or len(head) < 8:
        return None
    version = struct.unpack("<I", head[4:8])[0]
    result: Analysis = {"version": version}
    if version not in (1, 2, 3):
        result["error"] = f"unsupported GGUF version {version}"
        return result
    wide = version >= 2  # v1 used 32-bit counts and lengths
    cur = _Cursor(fd, size, 8, GGUF_MAX_BYTES)
    try:
        tensors = cur.unpack("Q" if wide else "I")
        keys = cur.unpack("Q" if wide else "I")
        result.update(tensors=tensors, keys=keys)
        for _ in range(keys):
            key = _gguf_string(cur, wide).decode("utf-8", "replace")
            value = _gguf_value(cur, cur.unpack("I"), wide)
            if key in _GGUF_REPORTED and value is not None:
                result[_GGUF_REPORTED[key]] = value
        parameters = 0
        for _ in range(tensors):
            _gguf_string(cur, wide)
            n_dims = cur.unpack("I")
            if n_dims > 8:
                raise _Malformed("tensor with more than 8 dimensions")
            parameters += math.prod(cur.unpack("Q" if wide else "I") for _ in range(n_dims))
            cur.skip(4 + 8)  # ggml type, data offset
        result["parameters"] = parameters
    except _Malformed as exc:
        result["error"] = f"malformed header: {exc}"
    return result


# --------------------------------------------------------------------------- NumPy .npy


def _npy(fd: int, size: int, head: bytes) -> Optional[Analysis]:
    if head[:6] != b"\x93NUMPY" or len(head) < 10:
        return None
    major, minor = head[6], head[7]
    if major == 1:
        header_len, start = struct.unpack("<H", head[8:10])[0], 10
    elif major in (2, 3) and len(head) >= 12:
        header_len, start = struct.unpack("<I", head[8:12])[0], 12
    else:
        return {"version": f"{major}.{minor}", "error": "unsupported .npy version"}
    if header_len > NPY_MAX_HEADER or start + header_len > size:
        return {"version": f"{major}.{minor}", "error": "header too long or truncated"}
    raw = _pread_exact(fd, header_len, start)
    try:
        header = ast.literal_eval(raw.decode("utf-8" if major == 3 else "latin-1"))
        descr, shape = header["descr"], tuple(header["shape"])
        fortran = bool(header.get("fortran_order", False))
        if not all(_is_uint(dim) for dim in shape):
            raise ValueError("bad shape")
    except Exception:  # literal_eval raises many types on hostile input; none may escape
        return {"version": f"{major}.{minor}", "error": "malformed header"}
    return {"version": f"{major}.{minor}", "dtype": descr if isinstance(descr, str) else repr(descr),
            "shape": list(shape), "fortran_order": fortran, "elements": math.prod(shape)}


# --------------------------------------------------------------------------- HDF5, zip, pickle


def _hdf5(fd: int, size: int, head: bytes) -> Optional[Analysis]:
    offset = 0
    while offset + len(HDF5_SIGNATURE) < len(head):  # 0, 512, 1024, ... (a user block may precede)
        if head[offset:offset + 8] == HDF5_SIGNATURE:
            return {"superblock_version": head[offset + 8], "offset": offset}
        offset = 512 if offset == 0 else offset * 2
    return None


def _zip(fd: int, size: int, head: bytes) -> Optional[Tuple[str, Analysis]]:
    if head[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):
        return None
    try:
        with os.fdopen(os.dup(fd), "rb") as f, zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            names = [info.filename for info in infos]
            pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
            if pickles:
                prefix = pickles[0][: -len("data.pkl")]
                result: Analysis = {"entries": len(names), "archive": prefix.rstrip("/"),
                                    "storages": sum(1 for n in names if n.startswith(prefix + "data/")
                                                    and not n.endswith("/"))}
                version = next((i for i in infos if i.filename == prefix + "version"), None)
                if version is not None and version.file_size <= 32:
                    result["version"] = zf.read(version).decode("ascii", "replace").strip()
                return "pytorch", result
            if names and all(n.endswith(".npy") for n in names):
                return "npz", {"arrays": len(names)}
            return "zip", {"entries": len(names)}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return None


def _pickle(fd: int, size: int, head: bytes) -> Optional[Analysis]:
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return {"protocol": head[1]}
    return None


# --------------------------------------------------------------------------- ONNX

# ModelProto fields: number -> wire type (0 varint, 2 length-delimited)
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_ONNX_STRINGS = {2: "producer_name", 3: "producer_version", 4: "domain"}


def _onnx(fd: int, size: int, head: bytes) -> Optional[Analysis]:
    """Heuristic: a protobuf whose first field is ir_version, whose top-level fields are all
    ModelProto fields, and which has a graph. The graph itself is skipped, not parsed."""
    if head[:1] != b"\x08":
        return None
    cur = _Cursor(fd, size, 0, size, window=HEAD_BYTES)
    result: Analysis = {}
    opsets: Dict[str, int] = {}
    try:
        for _ in range(256):
            if cur.pos >= size:
                break
            tag = cur.varint()
            field, wire = tag >> 3, tag & 7
            if _ONNX_FIELDS.get(field) != wire:
                return None
            if wire == 0:
                value = cur.varint()
                if field == 1:
                    if not 1 <= value <= 100:
                        return None
                    result["ir_version"] = value
                elif field == 5:
                    result["model_version"] = value
                continue
            length = cur.varint()
            if field in _ONNX_STRINGS and length <= 4096:
                result[_ONNX_STRINGS[field]] = cur.take(length).decode("utf-8", "replace")
            elif field == 8 and length <= 4096:
                domain, version = _onnx_opset(cur.take(length))
                opsets[domain] = version
            else:
                if field == 7:
                    result["graph_bytes"] = length
                cur.skip(length)
            if "ir_version" not in result:
                return None
    except _Malformed:
        return None
    if "ir_version" not in result or "graph_bytes" not in result:
        return None
    if opsets:
        result["opsets"] = opsets
    return result


def _onnx_opset(data: bytes) -> Tuple[str, int]:
    domain, version = "", 0
    cur = _Cursor(data, len(data), 0, len(data))
    while cur.pos < len(data):
        tag = cur.varint()
        if tag == 0x0A:
            domain = cur.take(cur.varint()).decode("utf-8", "replace")
        elif tag == 0x10:
            version = cur.varint()
        else:
            raise _Malformed("unexpected field in opset_import")
    return domain, version


# --------------------------------------------------------------------------- text and JSON


_CONTROL_BYTES = bytes(b for b in range(32) if chr(b) not in "\t\n\r\f\v\b") + b"\x7f"


def _text(size: int, head_sample: bytes, complete: bool) -> Optional[Tuple[str, Analysis]]:
    if b"\x00" in head_sample:
        return None
    data = head_sample[3:] if head_sample.startswith(codecs.BOM_UTF8) else head_sample
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=complete)
    except UnicodeDecodeError:
        return None
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES))
    if controls > len(data) // 100:
        return None
    if complete:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            value = None
        else:
            if isinstance(value, dict):
                return "json", {"type": "object", "keys": len(value)}
            if isinstance(value, list):
                return "json", {"type": "array", "items": len(value)}
    return "text", {"encoding": "utf-8", "lines": text.count("\n") + (0 if text.endswith("\n") or not text else 1)}


# --------------------------------------------------------------------------- entry point


def detect(fd: int, size: int, head: bytes, sample: bytes) -> Tuple[str, Analysis]:
    """(format, format-specific analysis) from the head and, for text, the sample."""
    if size == 0:
        return "empty", {}
    for fmt, probe in (("gguf", _gguf), ("npy", _npy), ("hdf5", _hdf5)):
        found = probe(fd, size, head)
        if found is not None:
            return fmt, found
    zipped = _zip(fd, size, head)
    if zipped is not None:
        return zipped
    for fmt, probe in (("safetensors", _safetensors), ("pickle", _pickle), ("onnx", _onnx)):
        found = probe(fd, size, head)
        if found is not None:
            return fmt, found
    text = _text(size, sample if size <= SAMPLE_BYTES else head, complete=size <= SAMPLE_BYTES)
    if text is not None:
        return text
    return "binary", {}


def analyse(fd: int, size: int) -> Tuple[str, Analysis]:
    """Format and analysis of an open file of ``size`` bytes; entropy comes first in the dict."""
    sample = read_sample(fd, size)
    head = sample[:HEAD_BYTES] if size <= SAMPLE_BYTES else _pread_exact(fd, HEAD_BYTES, 0)
    fmt, details = detect(fd, size, head, sample)
    analysis: Analysis = {"entropy_bits_per_byte": round(byte_entropy(sample), 4), "sample_bytes": len(sample)}
    analysis.update(details)
    return fmt, analysis
