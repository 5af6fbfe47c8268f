"""Pickles (protocols 0-5) and PyTorch checkpoints, by opcode grammar: nothing is unpickled.

``pickletools.genops`` (standard library) parses the opcodes; a small symbolic machine then
plays their stack effects as ``pickletools.dis`` checks them (marks, pops, memo keys), keeping
only what describes the file: the globals it would import and, for ``torch.save`` files, each
tensor's storage type and shape (``torch._utils._rebuild_tensor_v2(storage, offset, size, ...)``).
Protocols 0 and 1 have no magic bytes, so they are recognised by this grammar alone.
"""

from __future__ import annotations

import os
import pickletools
import struct
import warnings
import zipfile
from collections import Counter
from typing import Any, Dict, Optional, Tuple

from efs_read import Exhausted, Malformed, clip, is_uint, pread_exact, product

Analysis = Dict[str, Any]

PICKLE_MAX_BYTES = 16 << 20
PICKLE_MAX_OPS = 500_000
MAX_GLOBALS = 16
MAX_MEMO = 1_000_000
ZIP_MAX_ENTRIES = 100_000
ZIP_MAX_DIRECTORY = 64 << 20
_OPS = {op.code: op for op in pickletools.opcodes}
_MARK, _SLICE = pickletools.markobject, pickletools.stackslice
# Opcodes of protocols 0 and 1 that can start a pickle (those that push something).
_P01_STARTS = {op.code.encode("latin-1") for op in pickletools.opcodes
               if op.proto <= 1 and op.stack_after and not op.stack_before}
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of torch.save's legacy (pre-zip) format
_REBUILD = {"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor"}
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
    "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "QInt8Storage": "qint8", "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32", "Float8_e4m3fnStorage": "float8_e4m3fn", "Float8_e5m2Storage": "float8_e5m2",
}


class _Global(str):
    """A ``module.name`` the pickle imports."""


class _Persistent(tuple):
    """A persistent id (torch: ``('storage', StorageClass, key, location, numel)``)."""


class _Opaque:
    """Any other value: only that it is there counts."""


_OPAQUE = _Opaque()


class _Bounded:
    """The file-like ``genops`` reads: a budget of bytes, beyond which it stops (Exhausted)
    rather than fail, and the true end of the data, past which it is Malformed."""

    def __init__(self, raw, size: int, budget: int):
        self.raw, self.size, self.pos, self.end = raw, size, 0, min(size, budget)

    def read(self, n: int = -1) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise Malformed(f"the pickle is truncated at byte {self.pos}")
        if self.pos + n > self.end:
            raise Exhausted(f"stopped reading at byte {self.pos}")
        data = self.raw.read(n)
        self.pos += len(data)
        return data

    def readline(self) -> bytes:
        data = self.raw.readline(self.end - self.pos + 1)
        self.pos += len(data)
        if not data.endswith(b"\n") and self.pos >= self.end and self.end < self.size:
            raise Exhausted(f"stopped reading at byte {self.pos}")
        return data

    def tell(self) -> int:
        return self.pos


class Machine:
    """Plays opcodes' stack effects; raises Malformed where ``pickle.loads`` would fail on the
    structure (an unknown opcode, a pop from too short a stack, no mark, an unknown memo key)."""

    def __init__(self) -> None:
        self.stack: list = []
        self.memo: dict = {}
        self.protocol = 0
        self.ops = 0
        self.globals: Counter = Counter()
        self.tensors = 0
        self.parameters = 0
        self.dtypes: Counter = Counter()
        self.first: Any = None

    def run(self, source: _Bounded) -> bool:
        """Walk one pickle to its STOP: True; False when the budget ran out first (all valid)."""
        try:
            with warnings.catch_warnings():
                # genops decodes STRING arguments with codecs.escape_decode, which warns on
                # hostile escapes; the warning must not become the answer (nor fill the log)
                warnings.simplefilter("ignore")
                self._play(source)
        except Exhausted:
            return False
        except (ValueError, UnicodeDecodeError, OverflowError) as exc:  # genops' own complaints
            raise Malformed(clip(str(exc), 120)) from None
        if self.stack:
            raise Malformed("the stack is not empty after STOP")
        return True

    def _play(self, source: _Bounded) -> None:
        for op, arg, _ in pickletools.genops(source):
            self.ops += 1
            if self.ops > PICKLE_MAX_OPS:
                raise Exhausted("too many opcodes")
            self.protocol = max(self.protocol, op.proto if op.name != "PROTO" else arg)
            self._step(op, arg)

    def _pop_to_mark(self) -> list:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index] is _MARK:
                items = self.stack[index + 1:]
                del self.stack[index:]
                return items
        raise Malformed("an opcode needs a MARK and none is on the stack")

    def _step(self, op, arg) -> None:
        before = op.stack_before
        items = None
        if _MARK in before or (op.name == "POP" and self.stack and self.stack[-1] is _MARK):
            items = self._pop_to_mark()
            count = before.index(_MARK) if _MARK in before else 0
        else:
            count = len(before)
        if count > len(self.stack):
            raise Malformed(f"{op.name} pops {count} items from a stack of {len(self.stack)}")
        popped = self.stack[len(self.stack) - count:] if count else []
        if count:
            del self.stack[-count:]
        if op.name == "STOP":
            self.first = popped[0] if self.first is None else self.first
            return
        self.stack.extend(self._effect(op, arg, popped, items))

    def _effect(self, op, arg, popped: list, items: Optional[list]) -> list:
        name = op.name
        if name == "MARK":
            return [_MARK]
        if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            top = popped[0] if popped else (self.stack[-1] if self.stack else _MARK)
            if top is _MARK:
                raise Malformed(f"{name} with nothing to store")
            if len(self.memo) >= MAX_MEMO:
                raise Exhausted("memo too large")
            self.memo[len(self.memo) if name == "MEMOIZE" else arg] = top
            return popped
        if name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise Malformed(f"memo key {clip(str(arg), 20)} was never stored")
            return [self.memo[arg]]
        if name == "DUP":
            return popped + popped
        if name in ("GLOBAL", "INST"):
            return [self._global(*str(arg).split(" ", 1)) if " " in str(arg) else _OPAQUE]
        if name == "STACK_GLOBAL":
            module, attr = popped
            return [self._global(module, attr) if isinstance(module, str) and isinstance(attr, str) else _OPAQUE]
        if name in ("EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
            values = items if name == "TUPLE" else popped
            return [tuple(values) if len(values) <= 64 else _OPAQUE]
        if name in ("BINPERSID", "PERSID"):
            pid = popped[0] if name == "BINPERSID" else arg
            return [_Persistent(pid) if isinstance(pid, tuple) else _OPAQUE]
        if name == "REDUCE":
            return [self._reduce(*popped)]
        if not op.stack_after:
            return []
        if name in ("APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"):
            return [popped[0]]  # the container, still on the stack
        if op.arg is None:
            return [{"NONE": None, "NEWTRUE": True, "NEWFALSE": False}.get(name, _OPAQUE)]
        return [self._literal(arg)]

    def _literal(self, arg) -> Any:
        if isinstance(arg, bool) or arg is None:
            return arg
        if isinstance(arg, int):
            return arg if arg.bit_length() <= 128 else _OPAQUE  # torch's magic number is 77 bits
        if isinstance(arg, str) and len(arg) <= 256:
            return arg
        return _OPAQUE

    def _global(self, module: str, attr: str) -> _Global:
        name = _Global(clip(f"{module}.{attr}".replace("\n", " "), 200))
        if len(self.globals) < 1000 or name in self.globals:
            self.globals[name] += 1
        return name

    def _reduce(self, func, args) -> Any:
        """A call the pickle makes; torch's tensor rebuild is counted, nothing is called."""
        if func in _REBUILD and isinstance(args, tuple) and len(args) >= 3:
            storage, size = args[0], args[2]
            if isinstance(size, tuple) and all(is_uint(v) for v in size):
                self.tensors += 1
                self.parameters += product(size)
                kind = storage[1] if isinstance(storage, _Persistent) and len(storage) > 1 else None
                short = kind.rsplit(".", 1)[-1] if isinstance(kind, _Global) else None
                self.dtypes[_STORAGE_DTYPES.get(short, short or "unknown")] += 1
        return _OPAQUE

    def summary(self) -> Analysis:
        names = sorted(self.globals)
        result: Analysis = {"opcodes": self.ops, "globals": names[:MAX_GLOBALS]}
        if len(names) > MAX_GLOBALS:
            result["globals_total"] = len(names)
        if self.tensors:
            result.update(tensors=self.tensors, parameters=self.parameters, dtypes=dict(sorted(self.dtypes.items())))
        return result

    def checkpoint_fields(self) -> Analysis:
        """What a torch checkpoint's analysis reports of its pickle: tensors, parameters, dtypes, globals."""
        summary = self.summary()
        return {"tensors": summary.get("tensors", 0), "parameters": summary.get("parameters", 0),
                "dtypes": summary.get("dtypes", {}), "globals": summary["globals"]}


def _walk(raw, size: int) -> Tuple[Machine, bool, int]:
    """(machine, complete, bytes consumed) of the pickle at the start of ``raw``."""
    source = _Bounded(raw, size, PICKLE_MAX_BYTES)
    machine = Machine()
    complete = machine.run(source)
    return machine, complete, source.pos


def pickle(fd: int, size: int, head: bytes) -> Optional[Tuple[str, Analysis]]:
    """A pickle of any protocol (protocols 2+ announce themselves with PROTO; 0 and 1 are
    recognised when the opcodes parse and play out, to STOP at the end of the file or for
    many opcodes), or a legacy ``torch.save`` file (pickles in a row, the first a magic number)."""
    magic = len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5
    if not magic and head[:1] not in _P01_STARTS:
        return None
    with os.fdopen(os.dup(fd), "rb", buffering=1 << 16) as raw:
        raw.seek(0)
        try:
            machine, complete, used = _walk(raw, size)
        except Malformed as exc:
            if not magic:
                return None
            return "pickle", {"protocol": head[1], "valid": False, "error": str(exc)}
        if not magic and not (complete and (used == size or machine.ops >= 16)) and not (
                not complete and machine.ops >= 64):
            return None
        if machine.first == _TORCH_MAGIC and complete:
            return "pytorch", _torch_legacy(raw, size, used, machine.protocol)
    result: Analysis = {"protocol": machine.protocol, "complete": complete}
    if complete and used < size:
        result["trailing_bytes"] = size - used
    result.update(machine.summary())
    return "pickle", result


def _torch_legacy(raw, size: int, used: int, protocol: int) -> Analysis:
    """torch.save's pre-1.6 format: pickles of the magic number, the protocol version and the
    system info, then the object (its tensors), then the storage keys and the raw storages."""
    result: Analysis = {"serialization": "legacy", "protocol": protocol}
    try:
        for index in range(3):
            source = _Bounded(raw, size - used, PICKLE_MAX_BYTES)
            machine = Machine()
            if not machine.run(source):
                return dict(result, complete=False)
            used += source.pos
    except Malformed as exc:
        return dict(result, valid=False, error=f"pickle {index + 2}: {exc}")
    result.update(machine.checkpoint_fields())
    return result


# --------------------------------------------------------------------------- zip: PyTorch, npz


def zip_archive(fd: int, size: int, head: bytes) -> Optional[Tuple[str, Analysis]]:
    """A zip's central directory; ``torch.save``'s archive (``<prefix>/data.pkl``) has its
    pickle walked for tensors, an ``.npz`` counts its arrays."""
    if head[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):
        return None
    declared = _zip_directory(fd, size)
    if declared is None:
        return None
    entries, directory_bytes = declared
    if entries > ZIP_MAX_ENTRIES or directory_bytes > ZIP_MAX_DIRECTORY:
        return "zip", {"entries": entries}  # its central directory is not read: too large
    try:
        with os.fdopen(os.dup(fd), "rb") as f, zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            names = [info.filename for info in infos]
            pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
            if pickles:
                return "pytorch", _torch_archive(zf, infos, names, pickles[0])
            if names and all(n.endswith(".npy") for n in names):
                return "npz", {"arrays": len(names)}
            return "zip", {"entries": len(names)}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return None


def _torch_archive(zf: zipfile.ZipFile, infos, names, pickle_name: str) -> Analysis:
    prefix = pickle_name[: -len("data.pkl")]
    result: Analysis = {"entries": len(names), "archive": clip(prefix.rstrip("/"), 120),
                        "storages": sum(1 for n in names if n.startswith(prefix + "data/") and not n.endswith("/"))}
    version = next((i for i in infos if i.filename == prefix + "version"), None)
    if version is not None and version.file_size <= 32:
        result["version"] = clip(zf.read(version).decode("ascii", "replace").strip(), 32)
    info = zf.getinfo(pickle_name)
    try:
        with zf.open(info) as raw:
            machine, complete, _ = _walk(raw, info.file_size)
    except Malformed as exc:
        return dict(result, valid=False, error=f"data.pkl: {exc}")
    result.update(machine.checkpoint_fields())
    if not complete:
        result["complete"] = False
    return result


def _zip_directory(fd: int, size: int) -> Optional[Tuple[int, int]]:
    """(entries, central directory bytes) as the end record declares them (zip64's when it
    defers to it), read before zipfile loads the whole directory; None without an end record."""
    tail_len = min(size, (1 << 16) + 22)
    tail = pread_exact(fd, tail_len, size - tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    entries, directory = struct.unpack("<HI", tail[at + 10:at + 16])
    if (entries == 0xFFFF or directory == 0xFFFFFFFF) and at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":
        locator_offset = struct.unpack("<Q", tail[at - 12:at - 4])[0]
        record = pread_exact(fd, 56, locator_offset) if locator_offset < size else b""
        if record[:4] == b"PK\x06\x06" and len(record) == 56:
            entries, directory = struct.unpack("<QQ", record[32:48])
    return entries, directory
