"""safetensors, GGUF and NumPy ``.npy``: tensor files with a header that says what follows.

Each analyser returns None when the file is not of its format, else a dict; a file of the
format whose header breaks the format's rules gets ``"valid": false`` and ``"error"``, with
only the facts that could be established. The rules are the libraries' own (cited per format),
so a file we call valid is one the library loads.
"""

from __future__ import annotations

import ast
import json
import re
import struct
from collections import Counter
from typing import Any, Dict, Optional

from efs_read import (MAX_INT, Cursor, Exhausted, Malformed, clip, is_uint, pread_exact, product,
                      reject_json_constant)

Analysis = Dict[str, Any]

# --------------------------------------------------------------------------- safetensors

# safetensors/src/tensor.rs: Dtype::bitsize (sub-byte types count in bits).
SAFETENSORS_BITS = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
    "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}
SAFETENSORS_MAX_HEADER = 100_000_000  # the library's MAX_HEADER_SIZE
SAFETENSORS_READ_HEADER = 16 << 20    # what we parse: real headers are a few MiB at most
_JSON_SPACE = b" \t\r\n"


def _has_surrogates(value: Any) -> bool:
    """serde_json refuses lone surrogates (\\ud800) in strings; Python's json accepts them."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_surrogates(k) or _has_surrogates(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogates(v) for v in value)
    return False


def safetensors(fd: int, size: int, head: bytes) -> Optional[Analysis]:
    """As ``SafeTensors::read_metadata`` checks it: an 8-byte length, a UTF-8 JSON header of
    that many bytes, then the data section, exactly covered by the tensors in offset order,
    each span being its elements times its dtype's size."""
    if size < 10 or len(head) < 10:
        return None
    n = struct.unpack("<Q", head[:8])[0]
    first = head[8:8 + 64].lstrip(_JSON_SPACE)[:1]
    if first != b"{" or n < 2 or n > size - 8:
        return None
    result: Analysis = {"header_bytes": n}
    if n > SAFETENSORS_MAX_HEADER:
        return dict(result, valid=False, error=f"header too large ({n} bytes; the limit is {SAFETENSORS_MAX_HEADER})")
    if n > SAFETENSORS_READ_HEADER:
        return dict(result, error=f"the header ({n} bytes) is larger than the analysis reads")
    raw = head[8:8 + n] if 8 + n <= len(head) else pread_exact(fd, n, 8)
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=reject_json_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None  # not a JSON header: some other binary that happens to start like one
    if not isinstance(header, dict):
        return None
    try:
        result.update(_safetensors_header(header, size - 8 - n))
    except Malformed as exc:
        tensors = sum(1 for k in header if k != "__metadata__")
        return dict(result, tensors=tensors, valid=False, error=str(exc))
    return result


def _safetensors_header(header: dict, data_len: int) -> Analysis:
    if _has_surrogates(header):
        raise Malformed("the header has a string that is not valid UTF-8")
    metadata = header.get("__metadata__")
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise Malformed("__metadata__ must map strings to strings")
    infos = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise Malformed(f"tensor {clip(name, 80)!r} lacks dtype, shape or data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in SAFETENSORS_BITS:
            raise Malformed(f"tensor {clip(name, 80)!r} has an unknown dtype {clip(str(dtype), 40)!r}")
        if (not isinstance(shape, list) or not all(is_uint(v) for v in shape) or not isinstance(offsets, list)
                or len(offsets) != 2 or not all(is_uint(v) for v in offsets)):
            raise Malformed(f"tensor {clip(name, 80)!r}: shape and data_offsets must be unsigned integers")
        infos.append((tuple(offsets), name, dtype, shape))
    infos.sort(key=lambda item: item[0])  # the library orders tensors by offsets, not by name
    start, parameters, dtypes = 0, 0, Counter()
    for (begin, end), name, dtype, shape in infos:
        if begin != start or end < begin:
            raise Malformed(f"invalid offset for tensor {clip(name, 80)!r}")
        start = end
        try:
            bits = product(shape) * SAFETENSORS_BITS[dtype]
        except Malformed:
            raise Malformed("overflow computing buffer size from shape and/or element type") from None
        if bits > MAX_INT:
            raise Malformed("overflow computing buffer size from shape and/or element type")
        if bits % 8:
            raise Malformed(f"tensor {clip(name, 80)!r} does not end on a byte boundary")
        if end - begin != bits // 8:
            raise Malformed(f"invalid shape, data type, or offset for tensor {clip(name, 80)!r}")
        parameters += bits // SAFETENSORS_BITS[dtype]
        dtypes[dtype] += 1
    if start != data_len:
        raise Malformed(f"incomplete metadata, file not fully covered (tensors cover {start} of {data_len} "
                        "data bytes)")
    result: Analysis = {"tensors": len(infos), "dtypes": dict(sorted(dtypes.items())), "parameters": parameters}
    if isinstance(metadata, dict):
        result["metadata_keys"] = len(metadata)
    return result


# --------------------------------------------------------------------------- GGUF

# ggml type id -> (name, block size in elements, bytes per block): gguf-py's GGML_QUANT_SIZES.
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8),
    28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}
GGUF_MAX_BYTES = 256 << 20  # metadata + tensor infos; a large vocabulary is a few MiB
GGUF_MAX_STRING = 16 << 20
GGUF_MAX_DIMS = 4           # ggml's GGML_MAX_DIMS: llama.cpp refuses more
GGUF_DEFAULT_ALIGNMENT = 32
_GGUF_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_GGUF_STRING, _GGUF_ARRAY, _GGUF_UINT32 = 8, 9, 4
_GGUF_REPORTED = {"general.architecture": "architecture", "general.name": "name",
                  "general.file_type": "file_type"}


def _gguf_string(cur: Cursor, wide: bool) -> bytes:
    length = cur.unpack("Q" if wide else "I")
    if length > GGUF_MAX_STRING:
        raise Malformed(f"a string of {length} bytes")
    return cur.take(length)


def _gguf_value(cur: Cursor, vtype: int, wide: bool, depth: int = 0):
    """Read one value; arrays are walked (strings must be, to find the next key), not kept."""
    if vtype in _GGUF_FIXED:
        return cur.unpack(_GGUF_FIXED[vtype])
    if vtype == _GGUF_STRING:
        return clip(_gguf_string(cur, wide).decode("utf-8", "replace"))
    if vtype == _GGUF_ARRAY and depth < 4:
        item_type = cur.unpack("I")
        count = cur.unpack("Q" if wide else "I")
        if item_type in _GGUF_FIXED:
            cur.skip(count * struct.calcsize("<" + _GGUF_FIXED[item_type]))
        elif count > cur.size - cur.pos:
            raise Malformed(f"an array of {count} items cannot fit in the file")
        else:
            for _ in range(count):
                _gguf_value(cur, item_type, wide, depth + 1)
        return None
    raise Malformed(f"unknown value type {vtype}")


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed(f"{what} is not valid UTF-8") from None


def gguf(fd: int, size: int, head: bytes) -> Optional[Analysis]:
    """GGUF v1-v3 as gguf-py's GGUFReader and llama.cpp's gguf loader check it: the key/value
    section, then tensor infos (known ggml types, at most 4 dims, unique names), then data at
    the aligned offsets, each tensor inside the file."""
    if head[:4] != b"GGUF" or len(head) < 8:
        return None
    version = struct.unpack("<I", head[4:8])[0]
    result: Analysis = {"version": version}
    if version not in (1, 2, 3):
        return dict(result, valid=False, error=f"unsupported GGUF version {version}")
    try:
        _gguf_sections(Cursor(fd, size, 8, GGUF_MAX_BYTES), size, version >= 2, result)
    except Exhausted as exc:
        result["error"] = f"the header is larger than the analysis reads ({exc})"
    except Malformed as exc:
        result.update(valid=False, error=f"malformed header: {exc}")
    return result


def _gguf_sections(cur: Cursor, size: int, wide: bool, result: Analysis) -> None:
    count = "Q" if wide else "I"
    tensors, keys = cur.unpack(count), cur.unpack(count)
    if tensors > size // 8 or keys > size // 8:
        raise Malformed(f"it declares {tensors} tensors and {keys} keys, more than the file can hold")
    result.update(tensors=tensors, keys=keys)
    seen, alignment = set(), GGUF_DEFAULT_ALIGNMENT
    for _ in range(keys):
        key = _utf8(_gguf_string(cur, wide), "a key")
        if key in seen:
            raise Malformed(f"duplicate key {clip(key, 80)!r}")
        seen.add(key)
        vtype = cur.unpack("I")
        value = _gguf_value(cur, vtype, wide)
        if key == "general.alignment":
            if vtype != _GGUF_UINT32 or value == 0 or value & (value - 1):
                raise Malformed("general.alignment must be a non-zero power of two (uint32)")
            alignment = value
        if key in _GGUF_REPORTED and value is not None:
            result[_GGUF_REPORTED[key]] = value
    infos, names = [], set()
    for _ in range(tensors):
        name = _gguf_string(cur, wide)
        _utf8(name, "a tensor name")
        if name in names:
            raise Malformed(f"duplicate tensor {clip(name.decode('utf-8', 'replace'), 80)!r}")
        names.add(name)
        n_dims = cur.unpack("I")
        if n_dims > GGUF_MAX_DIMS:
            raise Malformed(f"a tensor with {n_dims} dimensions (at most {GGUF_MAX_DIMS})")
        dims = [cur.unpack(count) for _ in range(n_dims)]
        infos.append((name, dims, cur.unpack("I"), cur.unpack("Q")))
    data_start = -(-cur.pos // alignment) * alignment
    parameters, dtypes = 0, Counter()
    for name, dims, type_id, offset in infos:
        label = clip(name.decode("utf-8", "replace"), 80)
        if type_id not in GGML_TYPES:
            raise Malformed(f"tensor {label!r} has an unknown ggml type {type_id}")
        type_name, block, type_size = GGML_TYPES[type_id]
        elements = product(dims, limit=(1 << 63) - 1)
        if dims and dims[0] % block:
            raise Malformed(f"tensor {label!r}: {dims[0]} is not a multiple of {type_name}'s block of {block}")
        if offset % alignment:
            raise Malformed(f"tensor {label!r} is not aligned to {alignment} bytes")
        if data_start + offset + elements // block * type_size > size:
            raise Malformed(f"tensor {label!r} runs past the end of the file")
        parameters += elements
        dtypes[type_name] += 1
    result.update(parameters=parameters, dtypes=dict(sorted(dtypes.items())))


# --------------------------------------------------------------------------- NumPy .npy

NPY_MAX_HEADER = 10_000  # numpy.load's default max_header_size: larger headers it refuses
NPY_MAX_DIMS = 64        # numpy 2's NPY_MAXDIMS
_TYPESTR = re.compile(r"[<>|=]?([?bBhHiIlLqQpPefdgFDGSUVOmMc])(\d*)(\[[a-zA-Z0-9]+\])?")
_KIND_SIZES = {"?": 1, "b": 1, "B": 1, "c": 1, "O": None}


def _itemsize(descr: Any, depth: int = 0) -> Optional[int]:
    """Bytes per element of a .npy ``descr`` (a typestr or a structured list); None when the
    size is not fixed on disk (objects are pickled) or not worked out here."""
    if isinstance(descr, str):
        match = _TYPESTR.fullmatch(descr)
        if not match:
            return None
        kind, digits = match.group(1), match.group(2)
        if kind in _KIND_SIZES and not digits:
            return _KIND_SIZES[kind]
        if not digits or len(digits) > 12:
            return None
        return int(digits) * (4 if kind == "U" else 1)
    if isinstance(descr, list) and depth < 4 and descr:
        total = 0
        for field in descr:
            if not isinstance(field, tuple) or len(field) not in (2, 3):
                return None
            size = _itemsize(field[1], depth + 1)
            if size is None:
                return None
            if len(field) == 3:
                if not isinstance(field[2], tuple) or not all(is_uint(v) for v in field[2]):
                    return None
                size *= product(field[2])
            total += size
        return total
    return None


def npy(fd: int, size: int, head: bytes) -> Optional[Analysis]:
    """As ``numpy.lib.format.read_array_header_*`` checks it, then whether the data that
    follows is as long as the shape and dtype need (``numpy.load`` reads exactly that)."""
    if head[:6] != b"\x93NUMPY" or len(head) < 10:
        return None
    major, minor = head[6], head[7]
    result: Analysis = {"version": f"{major}.{minor}"}
    if major == 1:
        header_len, start = struct.unpack("<H", head[8:10])[0], 10
    elif major in (2, 3) and len(head) >= 12:
        header_len, start = struct.unpack("<I", head[8:12])[0], 12
    else:
        return dict(result, valid=False, error="unsupported .npy version")
    if header_len > NPY_MAX_HEADER or start + header_len > size:
        return dict(result, valid=False, error=f"the header ({header_len} bytes) is too long or truncated")
    try:
        header = ast.literal_eval(pread_exact(fd, header_len, start).decode("utf-8" if major == 3 else "latin-1"))
    except Exception:  # literal_eval raises many types on hostile input; none may escape
        return dict(result, valid=False, error="the header is not a Python literal")
    try:
        result.update(_npy_header(header, size - start - header_len))
    except Malformed as exc:
        result.update(valid=False, error=str(exc))
    return result


def _npy_header(header: Any, data_len: int) -> Analysis:
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise Malformed("the header must have exactly the keys descr, fortran_order and shape")
    shape, fortran, descr = header["shape"], header["fortran_order"], header["descr"]
    if not isinstance(shape, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape):
        raise Malformed("shape must be a tuple of integers")
    if not isinstance(fortran, bool):
        raise Malformed("fortran_order must be True or False")
    if len(shape) > NPY_MAX_DIMS:
        raise Malformed(f"{len(shape)} dimensions (numpy allows {NPY_MAX_DIMS})")
    if not all(is_uint(v) for v in shape):
        raise Malformed("shape has a negative or oversized dimension")
    elements = product(shape, limit=(1 << 63) - 1)
    itemsize = _itemsize(descr)
    if descr is None or not isinstance(descr, (str, list)):
        raise Malformed("descr must be a type string or a list of fields")
    result: Analysis = {"dtype": clip(descr) if isinstance(descr, str) else f"structured ({len(descr)} fields)",
                        "shape": list(shape), "fortran_order": fortran, "elements": elements}
    if itemsize is not None and elements * itemsize > data_len:
        raise Malformed(f"the data has {data_len} bytes; the shape and dtype need {elements * itemsize}")
    return result
