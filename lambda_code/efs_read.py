"""Bounded reads for the format analysers: every number a file declares is checked before it is
used to read, loop, allocate or multiply, so a hostile header costs at most a fixed budget and
never yields a number JSON cannot carry (the analysis is returned to the caller as JSON)."""

from __future__ import annotations

import os
import struct
from typing import Iterable

MAX_INT = (1 << 64) - 1  # counts and products above this are refused, as the libraries do
MAX_TEXT = 256           # characters of a name or string copied from a file into the analysis


class Malformed(Exception):
    """The file's structure breaks its format's rules (or our bounds); the message says how."""


class Exhausted(Malformed):
    """The read budget ran out before the structure ended: what was seen so far is valid."""


def pread_exact(fd: int, size: int, offset: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        data = os.pread(fd, size - got, offset + got)
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def product(values: Iterable[int], limit: int = MAX_INT) -> int:
    """The product of non-negative ints, refusing one over ``limit`` as soon as it is exceeded
    (a zero anywhere makes it 0, as it does for the libraries)."""
    values = list(values)
    if any(v == 0 for v in values):
        return 0
    result = 1
    for value in values:
        result *= value
        if result > limit:
            raise Malformed(f"a shape's element count exceeds {limit}")
    return result


def is_uint(value: object, limit: int = MAX_INT) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


def clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def reject_json_constant(value: str):
    """For ``json.loads(parse_constant=...)``: NaN and Infinity are not JSON (serde_json, which
    safetensors uses, and strict API clients refuse them too)."""
    raise ValueError(f"{value} is not valid JSON")


class Cursor:
    """Sequential little-endian reads through a window, within a byte budget.

    ``source`` is an open fd or a bytes object. Reading past the file's end is Malformed;
    reading past the budget (but not the file) is Exhausted.
    """

    def __init__(self, source, size: int, pos: int, budget: int, window: int = 1 << 20,
                 max_steps: int = 2_000_000):
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            self._read = lambda n, offset: data[offset:offset + n]
        else:
            self._read = lambda n, offset: pread_exact(source, n, offset)
        self.size, self.pos = size, pos
        self.limit = min(size, pos + budget)
        self.window = window
        self.buf, self.buf_at = b"", pos
        self.steps_left = max_steps  # bounds CPU as the budget bounds bytes (e.g. tiny strings)

    def _check(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise Malformed(f"a length at offset {self.pos} runs past the end of the file")
        if self.pos + n > self.limit:
            raise Exhausted(f"stopped reading at offset {self.pos}")

    def take(self, n: int) -> bytes:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise Exhausted("too many fields")
        self._check(n)
        rel = self.pos - self.buf_at
        if rel < 0 or rel + n > len(self.buf):
            self.buf = self._read(max(n, min(self.window, self.limit - self.pos)), self.pos)
            self.buf_at, rel = self.pos, 0
            if len(self.buf) < n:
                raise Malformed("the file is shorter than its header says")
        self.pos += n
        return self.buf[rel:rel + n]

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise Malformed(f"a length at offset {self.pos} runs past the end of the file")
        self.pos += n  # skipping costs nothing, so it may go beyond the read budget

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def varint(self) -> int:
        result = 0
        for shift in range(0, 70, 7):
            byte = self.take(1)[0]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
        raise Malformed("a varint is longer than 10 bytes")

    def at_end(self) -> bool:
        return self.pos >= self.size
