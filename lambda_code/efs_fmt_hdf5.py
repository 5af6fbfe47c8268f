"""HDF5: the superblock, then a bounded walk of the group tree counting datasets, their element
counts and types. Covers what h5py and Keras write: version 0/1 superblocks with symbol-table
groups (B-tree v1 nodes and SNOD entries), version 2/3 superblocks with compact link storage,
and version 1 and 2 object headers with their continuation blocks. A group stored "dense" (a
fractal heap of links, used past 8 links under libver='latest') is not followed; the counts are
then a lower bound, and ``complete`` says so.

Written by hand because libhdf5 is not in the Lambda runtime; every address and count read is
checked against the file's size and the walk's budget.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Any, Dict, Optional

from efs_read import Malformed, pread_exact, product

Analysis = Dict[str, Any]

SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAX_OBJECTS = 20_000
MAX_READ_BYTES = 32 << 20
MAX_MESSAGES = 200_000
UNDEFINED = (1 << 64) - 1
# object header message types
_DATASPACE, _LINK_INFO, _DATATYPE, _LAYOUT, _LINK, _CONTINUATION, _SYMBOL_TABLE = 0x01, 0x02, 0x03, 0x08, 0x06, 0x10, 0x11


class _File:
    """Reads at addresses relative to the superblock (a user block may precede it), counted
    against one budget."""

    def __init__(self, fd: int, size: int, base: int):
        self.fd, self.size, self.base, self.read_left = fd, size, base, MAX_READ_BYTES

    def read(self, address: int, n: int) -> bytes:
        at = self.base + address
        if address == UNDEFINED or n < 0 or at + n > self.size:
            raise Malformed(f"an address ({address}) points past the end of the file")
        self.read_left -= n
        if self.read_left < 0:
            raise Malformed("the structure is larger than the analysis reads")
        data = pread_exact(self.fd, n, at)
        if len(data) < n:
            raise Malformed("the file is shorter than it says")
        return data


def _uint(data: bytes, at: int, width: int) -> int:
    if width not in (1, 2, 4, 8) or at + width > len(data):
        raise Malformed("a field runs past its structure")
    return int.from_bytes(data[at:at + width], "little")


def hdf5(fd: int, size: int, head: bytes) -> Optional[Analysis]:
    offset = 0
    while offset + len(SIGNATURE) < len(head):  # 0, 512, 1024, ... (a user block may precede)
        if head[offset:offset + 8] == SIGNATURE:
            break
        offset = 512 if offset == 0 else offset * 2
    else:
        return None
    version = head[offset + 8]
    result: Analysis = {"superblock_version": version, "offset": offset}
    walk = _Walk(_File(fd, size, offset))
    try:
        root = walk.superblock(head[offset:], version)
        walk.visit(root, is_root=True)
    except Malformed as exc:
        result.update(valid=False, error=str(exc))
    except (IndexError, struct.error):  # a message shorter than its fields (bounds are checked per read)
        result.update(valid=False, error="a header message is shorter than its fields")
    except RecursionError:
        result.update(valid=False, error="groups nested too deep")
    result.update(walk.summary())
    return result


class _Walk:
    def __init__(self, f: _File):
        self.f = f
        self.o = self.l = 8  # sizes of offsets and lengths, from the superblock
        self.seen: set = set()
        self.datasets = self.groups = self.parameters = self.messages = 0
        self.dtypes: Counter = Counter()
        self.complete = True

    def superblock(self, data: bytes, version: int) -> int:
        """The root group's object header address (or, for symbol-table roots, a marker)."""
        if version in (0, 1):
            self.o, self.l = data[13], data[14]
            if self.o not in (2, 4, 8) or self.l not in (2, 4, 8):
                raise Malformed("bad sizes of offsets or lengths")
            at = 24 + (4 if version == 1 else 0) + 4 * self.o  # base, free space, EOF, driver
            return _uint(data, at + self.o, self.o)            # root entry: name offset, header address
        if version in (2, 3):
            self.o, self.l = data[9], data[10]
            if self.o not in (2, 4, 8) or self.l not in (2, 4, 8):
                raise Malformed("bad sizes of offsets or lengths")
            return _uint(data, 12 + 3 * self.o, self.o)       # base, extension, EOF, root header
        raise Malformed(f"unsupported superblock version {version}")

    def visit(self, address: int, is_root: bool = False, depth: int = 0) -> None:
        if address in self.seen or depth > 64:
            return  # hard links make a graph: each object counts once
        if len(self.seen) >= MAX_OBJECTS:
            self.complete = False
            return
        self.seen.add(address)
        messages = self.header_messages(address)
        kinds = {kind for kind, _ in messages}
        if _LAYOUT in kinds and _DATASPACE in kinds:
            self.dataset(messages)
            return
        if is_root or kinds & {_SYMBOL_TABLE, _LINK_INFO, _LINK}:
            self.groups += 1  # (a named datatype is neither a group nor a dataset)
        for kind, body in messages:
            if kind == _SYMBOL_TABLE:
                btree, heap = _uint(body, 0, self.o), _uint(body, self.o, self.o)
                for child in self.symbol_table(btree, heap):
                    self.visit(child, depth=depth + 1)
            elif kind == _LINK:
                child = self.hard_link(body)
                if child is not None:
                    self.visit(child, depth=depth + 1)
            elif kind == _LINK_INFO:
                heap_at = 2 + (8 if body[1] & 1 else 0)
                if _uint(body, heap_at, self.o) != UNDEFINED:
                    self.complete = False  # dense link storage (fractal heap): not followed

    # -- object headers ---------------------------------------------------------------

    def header_messages(self, address: int) -> list:
        """[(type, body)] of an object header, continuation blocks followed."""
        head = self.f.read(address, 16)
        if head[:4] == b"OHDR":
            return self._v2_header(address, head)
        if head[0] != 1:
            raise Malformed(f"an object header of unknown version {head[0]}")
        count, size = _uint(head, 2, 2), _uint(head, 8, 4)
        messages: list = []
        blocks = [(address + 16, size)]
        while blocks and len(messages) < count:
            at, length = blocks.pop(0)
            self._v1_block(self.f.read(at, length), messages, blocks)
        return messages

    def _count(self) -> None:
        self.messages += 1
        if self.messages > MAX_MESSAGES:
            raise Malformed("too many header messages")

    def _v1_block(self, data: bytes, messages: list, blocks: list) -> None:
        at = 0
        while at + 8 <= len(data):
            kind, size = _uint(data, at, 2), _uint(data, at + 2, 2)
            body = data[at + 8:at + 8 + size]
            if len(body) < size:
                raise Malformed("a header message runs past its block")
            self._count()
            if kind == _CONTINUATION:
                blocks.append((_uint(body, 0, self.o), _uint(body, self.o, self.l)))
            else:
                messages.append((kind, body))
            at += 8 + size

    def _v2_header(self, address: int, head: bytes) -> list:
        flags = head[5]
        at = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 3)
        prefix = self.f.read(address, at + width)
        size = _uint(prefix, at, width)
        messages: list = []
        blocks = [(address + at + width, size, False)]
        while blocks:
            start, length, is_chunk = blocks.pop(0)
            data = self.f.read(start, length)
            if is_chunk:
                if data[:4] != b"OCHK":
                    raise Malformed("a continuation block without its signature")
                data = data[4:-4]  # signature, then checksum at the end
            self._v2_block(data, flags, messages, blocks)
        return messages

    def _v2_block(self, data: bytes, flags: int, messages: list, blocks: list) -> None:
        step = 4 + (2 if flags & 4 else 0)
        at = 0
        while at + step <= len(data):
            kind, size = data[at], _uint(data, at + 1, 2)
            body = data[at + step:at + step + size]
            if len(body) < size:
                raise Malformed("a header message runs past its block")
            self._count()
            if kind == _CONTINUATION:
                blocks.append((_uint(body, 0, self.o), _uint(body, self.o, self.l), True))
            elif kind:
                messages.append((kind, body))
            at += step + size

    # -- groups -----------------------------------------------------------------------

    def symbol_table(self, btree: int, heap: int, depth: int = 0) -> list:
        """Object header addresses of a v1 group's members: B-tree nodes down to SNOD nodes."""
        if depth > 32:
            raise Malformed("a group B-tree nested too deep")
        node = self.f.read(btree, 8 + 2 * self.o)
        if node[:4] != b"TREE" or node[4] != 0:
            raise Malformed("a group B-tree node without its signature")
        level, used = node[5], _uint(node, 6, 2)
        body = self.f.read(btree + 8 + 2 * self.o, used * (self.l + self.o) + self.l)
        children = [_uint(body, self.l + i * (self.l + self.o), self.o) for i in range(used)]
        found = []
        for child in children:
            if level:
                found += self.symbol_table(child, heap, depth + 1)
            else:
                found += self.symbol_node(child)
        return found

    def symbol_node(self, address: int) -> list:
        head = self.f.read(address, 8)
        if head[:4] != b"SNOD":
            raise Malformed("a symbol table node without its signature")
        count = _uint(head, 6, 2)
        entry = 2 * self.o + 24
        data = self.f.read(address + 8, count * entry)
        return [_uint(data, i * entry + self.o, self.o) for i in range(count)]

    def hard_link(self, body: bytes) -> Optional[int]:
        """The target of a Link message when it is a hard link (soft and external are not followed)."""
        flags = body[1]
        at = 2
        link_type = 0
        if flags & 0x08:
            link_type, at = body[at], at + 1
        if flags & 0x04:
            at += 8
        if flags & 0x10:
            at += 1
        width = 1 << (flags & 3)
        at += width + _uint(body, at, width)
        return _uint(body, at, self.o) if link_type == 0 else None

    # -- datasets ---------------------------------------------------------------------

    def dataset(self, messages: list) -> None:
        self.datasets += 1
        for kind, body in messages:
            if kind == _DATASPACE:
                self.parameters += self.elements(body)
            elif kind == _DATATYPE:
                self.dtypes[_dtype(body)] += 1

    def elements(self, body: bytes) -> int:
        version, rank = body[0], body[1]
        if rank > 32:
            raise Malformed(f"a dataspace of rank {rank} (HDF5 allows 32)")
        if version == 1:
            at = 8
        elif version == 2:
            if body[3] == 2:  # null dataspace: no elements
                return 0
            at = 4
        else:
            raise Malformed(f"a dataspace message of unknown version {version}")
        return product(_uint(body, at + i * self.l, self.l) for i in range(rank))

    def summary(self) -> Analysis:
        result: Analysis = {"datasets": self.datasets, "groups": self.groups, "parameters": self.parameters,
                            "dtypes": dict(sorted(self.dtypes.items()))}
        if not self.complete:
            result["complete"] = False
        return result


def _dtype(body: bytes) -> str:
    """A numpy-style name for a datatype message: float32, int64, uint8, string, compound..."""
    if len(body) < 8:
        return "unknown"
    cls, bits, size = body[0] & 0x0F, body[1], struct.unpack("<I", body[4:8])[0]
    if cls == 0:
        return f"{'int' if bits & 0x08 else 'uint'}{size * 8}"
    if cls == 1:
        return f"float{size * 8}"
    return {2: "time", 3: "string", 4: "bitfield", 5: "opaque", 6: "compound", 7: "reference", 8: "enum",
            9: "vlen", 10: "array"}.get(cls, "unknown")
