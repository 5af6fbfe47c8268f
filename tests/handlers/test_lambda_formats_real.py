"""Each analysis cross-checked against what the format's own library reads from real files:
safetensors, GGUF (gguf-py), NumPy (.npy and .npz), ONNX, HDF5 (h5py), pickle, JSON.

The libraries write the fixtures and read them back; our standard-library analysis of the
same bytes must agree field by field. ``CROSS_CHECKED`` lists the fields compared per format
(the closing count of the issue is taken from it).
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import pickletools
import random
import struct
import sys
import types

import numpy as np
import pytest

import efs_analysis as analysis

CROSS_CHECKED = {
    "safetensors": ["tensors", "dtypes", "parameters", "metadata_keys", "header_bytes", "valid"],
    "gguf": ["version", "tensors", "keys", "architecture", "name", "file_type", "parameters", "dtypes", "valid"],
    "npy": ["dtype", "shape", "fortran_order", "elements", "version", "valid"],
    "npz": ["arrays"],
    "onnx": ["ir_version", "producer_name", "producer_version", "model_version", "opsets", "nodes",
             "initializers", "parameters", "dtypes", "inputs", "outputs", "op_types", "sparse_initializers",
             "external_initializers"],
    "hdf5": ["datasets", "groups", "parameters", "dtypes", "offset"],
    "pickle": ["protocol", "complete", "globals"],
    "pytorch": ["tensors", "parameters", "dtypes", "storages"],
    "json": ["type", "keys", "items"],
}


def analyse(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return analysis.analyse(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def valid(result) -> bool:
    return "valid" not in result and "error" not in result


# =========================================================================== safetensors


def test_safetensors_written_by_the_library(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    tensors = {"embed.weight": rng.standard_normal((64, 32), dtype=np.float32),
               "embed.half": rng.standard_normal((7, 3)).astype(np.float16),
               "ids": np.arange(11, dtype=np.int64), "mask": np.ones((2, 2, 2), dtype=bool),
               "bytes": np.zeros(5, dtype=np.uint8), "empty": np.zeros((0, 4), dtype=np.float64),
               "scalar": np.array(3.0, dtype=np.float32)}
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path), metadata={"format": "np", "author": "tests"})
    fmt, result = analyse(path)
    with safe_open(str(path), framework="numpy") as f:
        keys = list(f.keys())
        dtypes = collections.Counter(f.get_slice(k).get_dtype() for k in keys)
        parameters = sum(int(np.prod(f.get_slice(k).get_shape())) for k in keys)
        metadata = f.metadata()
    assert fmt == "safetensors" and valid(result)
    assert result["tensors"] == len(keys) and result["dtypes"] == dict(dtypes)
    assert result["parameters"] == parameters and result["metadata_keys"] == len(metadata)
    assert result["header_bytes"] == struct.unpack("<Q", path.read_bytes()[:8])[0]


def _safetensors_file(entries: dict, data_len: int, pad: int = 0, metadata=None) -> bytes:
    header = dict(entries)
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8 + pad)
    return struct.pack("<Q", len(raw)) + raw + b"\x07" * data_len


def _random_safetensors(rng: random.Random) -> bytes:
    """A header that is valid, or broken in one of the ways the library checks."""
    dtypes = ["F32", "F16", "BF16", "I64", "U8", "BOOL", "F64", "I8", "F4", "F6_E2M3", "F8_E4M3", "C64", "XX"]
    entries, offset = {}, 0
    for i in range(rng.randint(0, 5)):
        dtype = rng.choice(dtypes[:-1] if rng.random() < 0.9 else dtypes)
        shape = [rng.randint(0, 4) for _ in range(rng.randint(0, 3))]
        bits = {"F4": 4, "F6_E2M3": 6}.get(dtype, 8 * {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "F64": 8,
                                                       "C64": 8}.get(dtype, 1))
        nbytes = int(np.prod(shape)) * bits // 8
        entries[f"t{i}"] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    data_len = offset
    damage = rng.random()
    if entries and damage < 0.15:  # an offset moved
        name = rng.choice(list(entries))
        entries[name]["data_offsets"][rng.randint(0, 1)] += rng.choice([-1, 1, 7])
    elif damage < 0.25:
        data_len += rng.choice([-1, 1, 8]) if data_len else 1  # data not exactly covered
    elif entries and damage < 0.32:
        name = rng.choice(list(entries))
        entries[name]["shape"] = entries[name]["shape"] + [rng.choice([2, 10**6, 2**40])]
    elif entries and damage < 0.36:
        entries[rng.choice(list(entries))]["shape"] = [-1]
    elif entries and damage < 0.40:
        entries[rng.choice(list(entries))] = {"dtype": "F32", "shape": [1]}
    metadata = rng.choice([None, {"a": "b"}, {"n": 1}]) if rng.random() < 0.3 else None
    return _safetensors_file(entries, max(data_len, 0), pad=rng.randint(0, 3), metadata=metadata)


def test_safetensors_validity_agrees_with_the_library_on_damaged_headers(tmp_path):
    """A differential test: the library opens a file exactly when we call it valid."""
    from safetensors import safe_open

    rng = random.Random(13)
    path = tmp_path / "m.safetensors"
    agreed = {True: 0, False: 0}
    for case in range(300):
        data = _random_safetensors(rng)
        path.write_bytes(data)
        try:
            with safe_open(str(path), framework="numpy"):
                library_ok = True
        except Exception:
            library_ok = False
        fmt, result = analyse(path)
        ours_ok = fmt == "safetensors" and valid(result)
        assert ours_ok == library_ok, (case, data[:300], result)
        agreed[library_ok] += 1
    assert agreed[True] > 50 and agreed[False] > 50  # both kinds were exercised


# =========================================================================== GGUF


def _gguf_file(path, tensors: dict, quantized: dict = {}):
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny test model")
    writer.add_file_type(7)
    writer.add_context_length(2048)
    writer.add_token_list(["<s>", "</s>", "hello", "world"])
    writer.add_array("tokenizer.ggml.scores", [0.0, -1.0, -2.0, -3.0])
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    for name, (array, qtype) in quantized.items():
        raw = gguf.quants.quantize(array, qtype)
        writer.add_tensor(name, raw, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gguf_written_by_gguf_py(tmp_path):
    import gguf

    rng = np.random.default_rng(2)
    path = tmp_path / "model.gguf"
    _gguf_file(path, {"token_embd.weight": rng.standard_normal((16, 64), dtype=np.float32),
                      "output_norm.weight": rng.standard_normal(64).astype(np.float16),
                      "pos": np.arange(8, dtype=np.int32)},
               {"blk.0.attn_q.weight": (rng.standard_normal((4, 64), dtype=np.float32),
                                        gguf.GGMLQuantizationType.Q8_0)})
    fmt, result = analyse(path)
    reader = gguf.GGUFReader(str(path))
    fields = {k: v for k, v in reader.fields.items() if not k.startswith("GGUF.")}
    assert fmt == "gguf" and valid(result), result
    assert result["version"] == int(reader.fields["GGUF.version"].parts[-1][0])
    assert result["tensors"] == len(reader.tensors) and result["keys"] == len(fields)
    assert result["architecture"] == bytes(fields["general.architecture"].parts[-1]).decode()
    assert result["name"] == bytes(fields["general.name"].parts[-1]).decode()
    assert result["file_type"] == int(fields["general.file_type"].parts[-1][0])
    assert result["parameters"] == sum(int(t.n_elements) for t in reader.tensors)
    assert result["dtypes"] == dict(collections.Counter(t.tensor_type.name for t in reader.tensors))


def test_our_ggml_type_table_is_gguf_pys():
    import gguf

    from efs_fmt_tensors import GGML_TYPES

    for type_id, (name, block, size) in GGML_TYPES.items():
        qtype = gguf.GGMLQuantizationType(type_id)
        assert qtype.name == name and gguf.GGML_QUANT_SIZES[qtype] == (block, size)


def test_damaged_gguf_we_call_valid_gguf_py_reads(tmp_path):
    """Never laxer than the library: whatever we accept, GGUFReader loads (we are stricter
    where llama.cpp is: at most 4 dimensions, aligned offsets, whole blocks)."""
    import gguf

    rng = np.random.default_rng(3)
    good = tmp_path / "good.gguf"
    _gguf_file(good, {"a": rng.standard_normal((8, 32), dtype=np.float32), "b": np.ones(32, dtype=np.float16)})
    original = good.read_bytes()
    path = tmp_path / "damaged.gguf"
    pick = random.Random(14)
    refused = 0
    for case in range(150):
        data = bytearray(original)
        for _ in range(pick.randint(1, 4)):
            at = pick.randrange(8, len(data))
            data[at] = pick.randrange(256)
        if pick.random() < 0.3:
            data = data[: pick.randrange(24, len(data))]
        path.write_bytes(bytes(data))
        fmt, result = analyse(path)
        if fmt == "gguf" and valid(result):
            reader = gguf.GGUFReader(str(path))  # must not raise
            assert result["tensors"] == len(reader.tensors)
        else:
            refused += 1
    assert refused > 20


# =========================================================================== NumPy


@pytest.mark.parametrize("array", [
    np.arange(24, dtype="<f4").reshape(2, 3, 4),
    np.asfortranarray(np.arange(6, dtype=">i8").reshape(2, 3)),
    np.array(7, dtype=np.int8),
    np.zeros((3, 0), dtype=np.complex128),
    np.array(["abc", "de"], dtype="<U5"),
    np.array([b"xy"], dtype="S4"),
    np.array([True, False]),
    np.array(["2025-01-31"], dtype="datetime64[ns]"),
    np.zeros(3, dtype=[("x", "<f4"), ("y", "<i2", (2,))]),
    np.array([{"a": 1}, None], dtype=object),
])
def test_npy_written_by_numpy(tmp_path, array):
    path = tmp_path / "a.npy"
    np.save(path, array, allow_pickle=True)
    fmt, result = analyse(path)
    loaded = np.load(path, allow_pickle=True)
    assert fmt == "npy" and valid(result), result
    assert result["shape"] == list(loaded.shape) and result["elements"] == loaded.size
    assert result["fortran_order"] == (loaded.flags.f_contiguous and not loaded.flags.c_contiguous)
    if loaded.dtype.names is None:
        assert result["dtype"] == loaded.dtype.str
    else:
        assert result["dtype"] == f"structured ({len(loaded.dtype.names)} fields)"


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_npy_header_versions(tmp_path, version):
    path = tmp_path / "a.npy"
    array = np.arange(5, dtype=np.float64) if version != (3, 0) else np.zeros(2, dtype=[("naïve", "<f8")])
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=version)
    fmt, result = analyse(path)
    assert fmt == "npy" and valid(result) and result["version"] == f"{version[0]}.{version[1]}"
    assert result["elements"] == np.load(path).size


def test_truncated_npy_is_invalid_exactly_when_numpy_fails(tmp_path):
    full = tmp_path / "full.npy"
    np.save(full, np.arange(100, dtype=np.float32))
    data = full.read_bytes()
    path = tmp_path / "cut.npy"
    for cut in (0, 1, 4, 399, 400):
        path.write_bytes(data[: len(data) - cut] if cut else data)
        try:
            np.load(path)
            numpy_ok = True
        except ValueError:
            numpy_ok = False
        fmt, result = analyse(path)
        assert fmt == "npy" and valid(result) == numpy_ok, (cut, result)


def test_npz_written_by_numpy(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, a=np.zeros(3), b=np.ones((2, 2)), c=np.arange(4))
    fmt, result = analyse(path)
    assert fmt == "npz" and result["arrays"] == len(np.load(path).files)


# =========================================================================== ONNX


def _onnx_model():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    weights = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3), dtype=np.float32), "conv.w")
    bias = helper.make_tensor("conv.b", TensorProto.FLOAT, [8], rng.standard_normal(8).tolist())  # float_data
    half = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float16), "fc.w")
    shape = numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "shape")
    sparse_values = numpy_helper.from_array(np.array([1.0, 2.0], dtype=np.float32), "sparse.w")
    sparse_indices = numpy_helper.from_array(np.array([0, 5], dtype=np.int64), "sparse.i")
    sparse = helper.make_sparse_tensor(sparse_values, sparse_indices, [4, 4])
    nodes = [helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["flat"]),
             helper.make_node("Relu", ["flat"], ["y"]),
             helper.make_node("Identity", ["y"], ["z"], domain="")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
                              initializer=[weights, bias, half, shape], sparse_initializer=[sparse])
    model = helper.make_model(graph, producer_name="efsctl-tests", producer_version="1.2",
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.model_version = 5
    return onnx, model


def _onnx_expected(onnx, model) -> dict:
    graph = model.graph
    tensors = list(graph.initializer) + [s.values for s in graph.sparse_initializer]
    dims = [list(t.dims) for t in graph.initializer] + [list(s.dims) for s in graph.sparse_initializer]
    return {"ir_version": model.ir_version, "producer_name": model.producer_name,
            "producer_version": model.producer_version, "model_version": model.model_version,
            "opsets": {o.domain: o.version for o in model.opset_import}, "nodes": len(graph.node),
            "initializers": len(graph.initializer), "parameters": sum(int(np.prod(d)) for d in dims),
            "dtypes": dict(collections.Counter(onnx.TensorProto.DataType.Name(t.data_type) for t in tensors)),
            "inputs": len(graph.input), "outputs": len(graph.output),
            "op_types": dict(collections.Counter(n.op_type for n in graph.node)),
            "sparse_initializers": len(graph.sparse_initializer)}


def test_onnx_written_by_onnx(tmp_path):
    onnx, model = _onnx_model()
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    loaded = onnx.load(str(path))
    fmt, result = analyse(path)
    assert fmt == "onnx" and valid(result), result
    for key, value in _onnx_expected(onnx, loaded).items():
        assert result[key] == value, key


def test_onnx_with_external_data(tmp_path):
    onnx, model = _onnx_model()
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.data", size_threshold=64)
    loaded = onnx.load(str(path), load_external_data=False)
    external = sum(1 for t in loaded.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL)
    fmt, result = analyse(path)
    assert fmt == "onnx" and result["external_initializers"] == external > 0
    assert result["parameters"] == _onnx_expected(onnx, loaded)["parameters"]


# =========================================================================== HDF5


def _h5_expected(path):
    import h5py

    datasets, groups = [], 1  # the root group counts as a group
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            nonlocal groups
            if isinstance(obj, h5py.Dataset):
                datasets.append((obj.size, obj.dtype))
            elif isinstance(obj, h5py.Group):
                groups += 1
        f.visititems(visit)
    dtypes = collections.Counter(str(d) for _, d in datasets if d.kind in "fiu")
    return {"datasets": len(datasets), "groups": groups, "parameters": sum(s for s, _ in datasets),
            "dtypes": dict(dtypes)}


def _h5_file(path, libver="earliest", members=6, userblock=0):
    import h5py

    rng = np.random.default_rng(5)
    with h5py.File(path, "w", libver=libver, userblock_size=userblock) as f:
        f["weights"] = rng.standard_normal((16, 8), dtype=np.float32)
        layer = f.create_group("model/layer_1")
        layer["kernel"] = rng.standard_normal((3, 3, 4)).astype(np.float16)
        layer["bias"] = np.arange(4, dtype=np.int64)
        layer["bytes"] = np.zeros(10, dtype=np.uint8)
        f["scalar"] = 3.5
        f["model/alias"] = layer["kernel"]  # a second hard link: one object
        many = f.create_group("many")
        for i in range(members):
            many[f"d{i:02d}"] = np.full(i + 1, i, dtype=np.int32)
        f.create_dataset("chunked", data=np.ones((64, 64), dtype=np.float64), chunks=(16, 16), compression="gzip")


@pytest.mark.parametrize("libver, members, userblock", [("earliest", 6, 0), ("earliest", 40, 0), ("earliest", 700, 0), ("latest", 6, 0),
                                                        ("earliest", 6, 512)])
def test_hdf5_written_by_h5py(tmp_path, libver, members, userblock):
    path = tmp_path / "model.h5"
    _h5_file(path, libver, members, userblock)
    fmt, result = analyse(path)
    expected = _h5_expected(path)
    assert fmt == "hdf5" and valid(result), result
    assert result["offset"] == userblock
    for key, value in expected.items():
        assert result[key] == value, (key, result)
    assert "complete" not in result


def test_hdf5_dense_groups_give_a_lower_bound(tmp_path):
    path = tmp_path / "model.h5"
    _h5_file(path, "latest", members=40)
    fmt, result = analyse(path)
    expected = _h5_expected(path)
    assert fmt == "hdf5" and result["complete"] is False
    assert 0 < result["datasets"] < expected["datasets"]


# =========================================================================== pickle and PyTorch


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_pickles_of_every_protocol(tmp_path, protocol):
    obj = {"weights": [1.0, 2.5] * 50, "names": ("a", "b"), "table": collections.OrderedDict(x=1), "n": None}
    data = pickle.dumps(obj, protocol=protocol)
    path = tmp_path / "p.pkl"
    path.write_bytes(data)
    fmt, result = analyse(path)
    assert pickle.loads(data) == obj
    imported = {f"{a.split(' ')[0]}.{a.split(' ')[1]}" for op, a, _ in pickletools.genops(data) if op.name == "GLOBAL"}
    imported |= {"collections.OrderedDict"} if protocol >= 4 else set()
    assert fmt == "pickle" and valid(result), result
    assert result["protocol"] == protocol and result["complete"] is True
    assert set(result["globals"]) == imported


def test_a_large_protocol_0_pickle_is_not_text(tmp_path):
    data = pickle.dumps([{"k%d" % i: "v" * 20} for i in range(40_000)], protocol=0)
    assert len(data) > analysis.SAMPLE_BYTES
    path = tmp_path / "p.pkl"
    path.write_bytes(data)
    fmt, result = analyse(path)
    assert fmt == "pickle" and result["protocol"] == 0 and result["complete"] is True


@pytest.fixture
def fake_torch(monkeypatch):
    """Modules named like torch's, so that pickle writes the globals torch.save writes."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    class HalfStorage:
        pass

    FloatStorage.__module__ = HalfStorage.__module__ = "torch"
    FloatStorage.__qualname__, HalfStorage.__qualname__ = "FloatStorage", "HalfStorage"

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, torch.HalfStorage, torch._utils = FloatStorage, HalfStorage, utils
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def _torch_like_zip(tmp_path, torch, tensors: dict):
    """An archive laid out as torch.save (zip) lays it: data.pkl with persistent storages."""
    import io
    import zipfile

    class Tensor:
        def __init__(self, key, storage, size):
            self.key, self.storage, self.size = key, storage, size

        def __reduce__(self):
            stride = tuple(int(np.prod(self.size[i + 1:])) for i in range(len(self.size)))
            return torch._utils._rebuild_tensor_v2, (Storage(self.key, self.storage, int(np.prod(self.size))), 0,
                                                    self.size, stride, False, collections.OrderedDict())

    class Storage:
        def __init__(self, key, kind, numel):
            self.key, self.kind, self.numel = key, kind, numel

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", obj.kind, obj.key, "cpu", obj.numel)
            return None

    state = collections.OrderedDict((name, Tensor(str(i), kind, size))
                                    for i, (name, (kind, size)) in enumerate(tensors.items()))
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(state)
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/data.pkl", buf.getvalue())
        zf.writestr("model/version", "3\n")
        for i, (kind, size) in enumerate(tensors.values()):
            zf.writestr(f"model/data/{i}", b"\0" * int(np.prod(size)) * (4 if kind is torch.FloatStorage else 2))
    return path


def test_pytorch_zip_tensors_from_data_pkl(tmp_path, fake_torch):
    tensors = {"conv.weight": (fake_torch.FloatStorage, (8, 3, 3, 3)), "conv.bias": (fake_torch.FloatStorage, (8,)),
               "fc.weight": (fake_torch.HalfStorage, (10, 72))}
    fmt, result = analyse(_torch_like_zip(tmp_path, fake_torch, tensors))
    assert fmt == "pytorch" and valid(result), result
    assert result["tensors"] == 3 and result["storages"] == 3
    assert result["parameters"] == 8 * 27 + 8 + 720
    assert result["dtypes"] == {"float16": 1, "float32": 2}
    assert "torch._utils._rebuild_tensor_v2" in result["globals"]


# =========================================================================== JSON


@pytest.mark.parametrize("indent", [None, 1])
def test_a_tokenizer_json_beyond_the_sample_is_json(tmp_path, indent):
    vocab = {f"tok{i}\u0120": i for i in range(60_000)}
    doc = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "special": {},
           "normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
           "post_processor": None, "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "vocab": vocab, "merges": [f"t{i} k{i}" for i in range(30_000)]}}
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=indent))  # one line: tokens cut by chunks
    assert path.stat().st_size > analysis.SAMPLE_BYTES
    fmt, result = analyse(path)
    assert (fmt, result["type"], result["keys"]) == ("json", "object", len(json.loads(path.read_text())))
    assert "complete" not in result


def test_a_large_json_array_counts_its_items(tmp_path):
    items = [{"id": i, "text": "x" * (i % 50), "score": i / 7, "tags": [] if i % 3 else {}} for i in range(30_000)]
    items += [[], {}, "a \\ \" \u00e9 string", -1.5e-7, True, None]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(items))
    fmt, result = analyse(path)
    assert (fmt, result["type"], result["items"]) == ("json", "array", len(json.loads(path.read_text())))


@pytest.mark.parametrize("text", ['{"a": 1,}', '{"a" 1}', '[1, 2', '{"a": 1} {"b": 2}', '[01]', "{'a': 1}"])
def test_what_json_refuses_is_text(tmp_path, text):
    path = tmp_path / "x.json"
    path.write_text(text + " " * 10)
    with pytest.raises(ValueError):
        json.loads(path.read_text())
    assert analyse(path)[0] == "text"


def _random_json(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth < 4 and roll < 0.3:
        return {rng.choice(["a", "b", "é", 'q"', "\\", "k" * rng.randint(1, 9)]) + str(i): _random_json(rng, depth + 1)
                for i in range(rng.randint(0, 4))}
    if depth < 4 and roll < 0.55:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return rng.choice([0, -1, 10**30, 1.5e-9, -0.0, True, False, None, "", "x\n\t\u2028", "\U0001f600", "a" * 40])


def test_the_streaming_json_grammar_agrees_with_json_loads(tmp_path, monkeypatch):
    """Random documents and damaged ones, cut into tiny chunks so that every kind of token
    straddles a boundary: valid exactly when json.loads parses it, with the same count."""
    import efs_fmt_text

    monkeypatch.setattr(efs_fmt_text, "CHUNK", 7)
    rng = random.Random(1313)
    path = tmp_path / "doc.json"
    for case in range(400):
        top = rng.choice([dict, list])
        doc = _random_json(rng)
        doc = doc if isinstance(doc, top) else top() if rng.random() < 0.1 else ({"v": doc} if top is dict else [doc])
        text = json.dumps(doc, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 0, 2]))
        if rng.random() < 0.4:  # damage it
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(["", ",", "]", "}", '"', ":", "x", "01", " ", "\\"]) + text[at + 1:]
        path.write_text(text)
        try:
            value = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except (ValueError, RecursionError):
            value = None
        fmt, result = analyse(path)
        if isinstance(value, dict):
            assert (fmt, result["keys"]) == ("json", len(value)), (case, text)
        elif isinstance(value, list):
            assert (fmt, result["items"]) == ("json", len(value)), (case, text)
        else:
            assert fmt != "json", (case, text, result)
