"""Framed, checksummed records on disk: the journal (appended, fdatasync'd) and checkpoints.

A frame is ``magic (4) | payload length (8) | crc32 (4) | payload``. A crash can leave the
journal's last frame torn (short, or with a bad checksum): reading stops there, which is right,
since a frame is acknowledged only after its fdatasync returned. After a failed append the file
is cut back to the last whole frame, so later frames never follow a torn one.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

MAGIC = b"EFJ1"
HEADER = struct.Struct(">4sQI")


def frame(payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def read_frames(path: Path) -> tuple[list[bytes], int, bool]:
    """Every whole frame of ``path`` in order, where the last one ends, and whether a torn tail
    followed it."""
    frames: list[bytes] = []
    end = 0
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return frames, end, False
    with fh:
        for payload in _frames(fh):
            if payload is None:
                return frames, end, True
            frames.append(payload)
            end += HEADER.size + len(payload)
    return frames, end, False


def iter_frames(path: Path) -> Iterator[bytes]:
    """Whole frames of a file that must be complete (a checkpoint): a torn one is an error."""
    with open(path, "rb") as fh:
        for payload in _frames(fh):
            if payload is None:
                raise ValueError(f"{path} is damaged (a record is cut short or fails its checksum)")
            yield payload


def _frames(fh: BinaryIO) -> Iterator[bytes | None]:
    while True:
        header = fh.read(HEADER.size)
        if not header:
            return
        if len(header) < HEADER.size:
            yield None
            return
        magic, length, crc = HEADER.unpack(header)
        if magic != MAGIC:
            yield None
            return
        payload = fh.read(length)
        if len(payload) < length or zlib.crc32(payload) != crc:
            yield None
            return
        yield payload


class Journal:
    """An append-only journal file; :meth:`append` returns once the frame is on disk."""

    def __init__(self, path: Path, keep: int | None = None) -> None:
        """Open (or create) ``path``; ``keep``: cut it to that many bytes first (a torn tail)."""
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if keep is not None and os.fstat(self._fd).st_size != keep:
            os.ftruncate(self._fd, keep)
            os.fsync(self._fd)
        self.size = os.fstat(self._fd).st_size

    def append(self, payload: bytes) -> None:
        data = frame(payload)
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fdatasync(self._fd)
        except BaseException:
            try:
                os.ftruncate(self._fd, self.size)
                os.fdatasync(self._fd)
            except OSError:
                pass
            raise
        self.size += len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def write_frames(path: Path, payloads: Iterable[bytes]) -> int:
    """Write a complete file of frames durably under its final name (via a temporary); its size."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    size = 0
    with open(tmp, "wb") as fh:
        for payload in payloads:
            data = frame(payload)
            fh.write(data)
            size += len(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return size


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a new or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
