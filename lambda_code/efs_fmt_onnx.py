"""ONNX by a small protobuf wire reader: the ModelProto's own fields, then its graph's nodes
and initializers, read field by field. Tensor payloads (``raw_data`` and the typed lists) are
skipped, not read, so a model of gigabytes costs a few MiB of reads.

Written by hand because the protobuf runtime and the onnx package are not in the Lambda
runtime; the wire format (varints, length-delimited fields) is all that is needed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Optional, Tuple

from efs_read import Cursor, Exhausted, Malformed, clip, product

Analysis = Dict[str, Any]

ONNX_MAX_STEPS = 2_000_000
HEAD_WINDOW = 64 << 10
MAX_OP_TYPES = 24
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
# ModelProto: field number -> wire type (onnx/onnx.proto)
_MODEL_FIELDS = {1: _VARINT, 2: _LEN, 3: _LEN, 4: _LEN, 5: _VARINT, 6: _LEN, 7: _LEN, 8: _LEN, 14: _LEN,
                 20: _LEN, 25: _LEN, 26: _LEN}
_MODEL_STRINGS = {2: "producer_name", 3: "producer_version", 4: "domain"}
# TensorProto.DataType
DATA_TYPES = {0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
              8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
              15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2",
              20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2",
              26: "INT2"}


def _fields(cur: Cursor, end: int):
    """(field number, wire type, value) up to ``end``: varints as ints, length-delimited
    fields as (start, length) with the cursor moved past them."""
    while cur.pos < end:
        tag = cur.varint()
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise Malformed("a field numbered 0")
        if wire == _VARINT:
            yield field, wire, cur.varint()
        elif wire == _LEN:
            length = cur.varint()
            start = cur.pos
            if start + length > end:
                raise Malformed(f"field {field} runs past its message")
            cur.skip(length)
            yield field, wire, (start, length)
        elif wire in (_I64, _I32):
            cur.skip(8 if wire == _I64 else 4)
            yield field, wire, None
        else:
            raise Malformed(f"wire type {wire} (groups are not used by ONNX)")
    if cur.pos != end:
        raise Malformed("a message ends inside a field")


def _string(cur: Cursor, span: Tuple[int, int], limit: int = 4096) -> Optional[str]:
    start, length = span
    if length > limit:
        return None
    cur.pos = start
    text = cur.take(length).decode("utf-8", "replace")
    return clip(text)


def onnx(fd: int, size: int, head: bytes) -> Optional[Analysis]:
    """An ONNX ModelProto: the first field is ir_version, every top-level field is one the
    schema has with its wire type, and there is a graph."""
    if head[:1] != b"\x08":
        return None
    cur = Cursor(fd, size, 0, size, window=HEAD_WINDOW, max_steps=ONNX_MAX_STEPS)
    result: Analysis = {}
    opsets: Dict[str, int] = {}
    graph = None
    try:
        for count, (field, wire, value) in enumerate(_fields(cur, size)):
            if _MODEL_FIELDS.get(field) != wire or (count == 0 and field != 1):
                return None
            if field == 1:
                if not 1 <= value <= 100:
                    return None
                result["ir_version"] = value
            elif field == 5:
                result["model_version"] = value if value < 1 << 63 else None
            elif field in _MODEL_STRINGS:
                text = _string(cur, value)
                if text is not None:
                    result[_MODEL_STRINGS[field]] = text
                cur.pos = sum(value)
            elif field == 8 and len(opsets) < 64:
                domain, version = _opset(cur, value)
                opsets[domain] = version
            elif field == 7:
                graph = value
    except Exhausted:
        pass
    except Malformed:
        return None
    if "ir_version" not in result or graph is None:
        return None
    if opsets:
        result["opsets"] = dict(sorted(opsets.items()))
    result["graph_bytes"] = graph[1]
    try:
        result.update(_graph(cur, graph))
    except Exhausted:
        result["complete"] = False
    except Malformed as exc:
        result.update(valid=False, error=f"graph: {exc}")
    return result


def _opset(cur: Cursor, span: Tuple[int, int]) -> Tuple[str, int]:
    start, length = span
    cur.pos = start
    domain, version = "", 0
    for field, wire, value in _fields(cur, start + length):
        if field == 1 and wire == _LEN:
            domain = _string(cur, value, 256) or ""
            cur.pos = sum(value)
        elif field == 2 and wire == _VARINT:
            version = value if value < 1 << 63 else 0
    return clip(domain, 128), version


def _graph(cur: Cursor, span: Tuple[int, int]) -> Analysis:
    """Nodes (with their op types), initializers (dtypes, element counts), inputs, outputs."""
    start, length = span
    cur.pos = start
    nodes = initializers = sparse = inputs = outputs = external = 0
    parameters, op_types, dtypes = 0, Counter(), Counter()
    for field, wire, value in _fields(cur, start + length):
        if wire != _LEN:
            continue
        after = sum(value)
        if field == 1:
            nodes += 1
            op_types[_node_op(cur, value)] += 1
        elif field in (5, 15):
            elements, dtype, location = _tensor(cur, value) if field == 5 else _sparse(cur, value)
            initializers += field == 5
            sparse += field == 15
            external += location == 1
            parameters += elements
            dtypes[dtype] += 1
        elif field == 11:
            inputs += 1
        elif field == 12:
            outputs += 1
        cur.pos = after
    result: Analysis = {"nodes": nodes, "initializers": initializers, "parameters": parameters,
                        "dtypes": dict(sorted(dtypes.items())), "inputs": inputs, "outputs": outputs,
                        "op_types": dict(op_types.most_common(MAX_OP_TYPES))}
    if sparse:
        result["sparse_initializers"] = sparse
    if external:
        result["external_initializers"] = external
    return result


def _node_op(cur: Cursor, span: Tuple[int, int]) -> str:
    start, length = span
    cur.pos = start
    op_type, domain = "?", ""
    for field, wire, value in _fields(cur, start + length):
        if wire == _LEN and field in (4, 7):
            text = _string(cur, value, 256)
            cur.pos = sum(value)
            if field == 4:
                op_type = text or "?"
            else:
                domain = text or ""
    return clip(f"{domain}.{op_type}" if domain and domain != "ai.onnx" else op_type, 64)


def _tensor(cur: Cursor, span: Tuple[int, int]) -> Tuple[int, str, int]:
    """(elements, dtype name, data_location) of a TensorProto; its data is skipped."""
    start, length = span
    cur.pos = start
    dims, dtype, location = [], 0, 0
    for field, wire, value in _fields(cur, start + length):
        if field == 1 and wire == _VARINT:
            dims.append(value)
        elif field == 1 and wire == _LEN:  # packed dims
            cur.pos = value[0]
            while cur.pos < sum(value):
                dims.append(cur.varint())
        elif field == 2 and wire == _VARINT:
            dtype = value
        elif field == 14 and wire == _VARINT:
            location = value
        if len(dims) > 64:
            raise Malformed("a tensor with more than 64 dimensions")
    if any(d >= 1 << 63 for d in dims):
        raise Malformed("a negative tensor dimension")
    return product(dims), DATA_TYPES.get(dtype, "OTHER"), location


def _sparse(cur: Cursor, span: Tuple[int, int]) -> Tuple[int, str, int]:
    """A SparseTensorProto counts its dense shape's elements and its values' dtype."""
    start, length = span
    cur.pos = start
    dims, dtype, location = [], "UNDEFINED", 0
    for field, wire, value in _fields(cur, start + length):
        if field == 1 and wire == _LEN:
            after = sum(value)
            _, dtype, location = _tensor(cur, value)
            cur.pos = after
        elif field == 3 and wire == _VARINT:
            dims.append(value)
        elif field == 3 and wire == _LEN:
            cur.pos = value[0]
            while cur.pos < sum(value):
                dims.append(cur.varint())
        if len(dims) > 64:
            raise Malformed("a sparse tensor with more than 64 dimensions")
    if any(d >= 1 << 63 for d in dims):
        raise Malformed("a negative sparse tensor dimension")
    return product(dims), dtype, location
