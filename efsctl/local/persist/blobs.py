"""S3 object bodies as files: ``<data>/s3/blobs/<2 hex>/<32 hex>``, written once, never changed.

An object's body is a tuple of *segments* ``(blob, offset, length)``: a PUT or an uploaded part
is one whole blob, a completed multipart upload is its parts' segments in order, and a copy
shares its source's segments, so nothing is copied or held in memory. A blob is fsync'd before
the request that wrote it is answered; its directory entry is made durable by the next commit
(:meth:`BlobStore.sync`), before that commit's journal record. A small body (at most
:data:`INLINE_MAX`, a prediction's output, say) is kept in its segment instead, ``(bytes, 0,
length)``, and so saved inside the commit's journal record: one fdatasync for the whole PUT.

Blobs are deleted only by :meth:`BlobStore.collect`, after a checkpoint: what the checkpoint
does not reference, that no request is still staging or reading, and that existed before the
checkpoint's snapshot was taken.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

Segment = tuple[str | bytes, int, int]  # (blob name, offset, length), or (the bytes, 0, length)
CHUNK = 1 << 20
DROP_WINDOW = 8 << 20       # a reader drops the cached pages behind it this many bytes at a time
DROP_BEHIND = hasattr(os, "posix_fadvise")
INLINE_MAX = 64 << 10


def names(segments: Iterable[Segment]) -> list[str]:
    """The blobs segments refer to (inline ones refer to none)."""
    return [name for name, _, _ in segments if isinstance(name, str)]


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "blobs"
        self._lock = threading.Lock()
        self._dirty: set[Path] = set()
        self._born: dict[str, int] = {}     # blobs this process wrote, by the sequence they were born at
        self._seq = 0
        self._staged: Counter[str] = Counter()
        self._reading: Counter[str] = Counter()
        self.garbage_bytes = 0              # bodies dropped since the last collection (an estimate)

    # --- writing -------------------------------------------------------------------------------

    def path(self, name: str) -> Path:
        return self.root / name[:2] / name

    def new(self) -> tuple[str, Path]:
        """A fresh blob name and its path (its directory exists); the caller writes and fsyncs it."""
        name = uuid.uuid4().hex
        path = self.path(name)
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._dirty.add(path.parent.parent)
        with self._lock:
            self._seq += 1
            self._born[name] = self._seq
            self._dirty.add(path.parent)
        return name, path

    def write_bytes(self, data: bytes) -> Segment:
        name, path = self.new()
        with open(path, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return (name, 0, len(data))

    def sync(self) -> None:
        """fsync the directories that gained blobs, so their names survive a power loss."""
        from efsctl.local.persist.journal import fsync_dir

        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for directory in sorted(dirty, key=lambda p: len(p.parts)):
            try:
                fsync_dir(directory)
            except FileNotFoundError:
                pass

    def discard(self, name: str) -> None:
        """Remove a blob nothing ever referenced (a staged body moto refused)."""
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            pass

    # --- protection while in use ---------------------------------------------------------------

    def hold(self, names: Iterable[str], counter: str = "reading") -> None:
        with self._lock:
            getattr(self, f"_{counter}").update(names)

    def release(self, names: Iterable[str], counter: str = "reading") -> None:
        with self._lock:
            held = getattr(self, f"_{counter}")
            held.subtract(names)
            for name in [n for n, c in held.items() if c <= 0]:
                del held[name]

    # --- reading -------------------------------------------------------------------------------

    def chunks(self, segments: Iterable[Segment], size: int = CHUNK) -> Iterator[bytes]:
        for name, offset, length in segments:
            if isinstance(name, bytes):
                for start in range(offset, offset + length, size):
                    yield name[start:min(start + size, offset + length)]
                continue
            yield from _read_blob(self.path(name), offset, length, size)

    def read(self, segments: Iterable[Segment]) -> bytes:
        return b"".join(self.chunks(segments))

    def md5(self, segments: Iterable[Segment]) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        for data in self.chunks(segments):
            digest.update(data)
        return digest.hexdigest()

    # --- garbage -------------------------------------------------------------------------------

    def mark(self) -> int:
        """The sequence number a snapshot is taken at (blobs born later are never collected by it)."""
        with self._lock:
            return self._seq

    def collect(self, referenced: set[str], mark: int) -> tuple[int, int]:
        """Delete blobs not ``referenced`` (and not in use, and born before ``mark``): (files, bytes)."""
        files = size = 0
        if not self.root.is_dir():
            return files, size
        with self._lock:
            protected = set(self._staged) | set(self._reading)
            born = dict(self._born)
        for shard in self.root.iterdir():
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard):
                name = entry.name
                if name in referenced or name in protected or born.get(name, 0) > mark:
                    continue
                try:
                    length = entry.stat().st_size
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                files += 1
                size += length
        with self._lock:
            self._born = {n: s for n, s in self._born.items() if s > mark}
            self.garbage_bytes = 0
        return files, size


class BodyReader:
    """Part of an object's body, read from its blobs only when iterated (a WSGI response body).

    moto slices what it thinks is the object's value for a Range request and asks its length;
    both work here without reading anything.
    """

    def __init__(self, store: BlobStore, segments: tuple[Segment, ...]) -> None:
        self.store = store
        self.segments = segments
        self.length = sum(length for _, _, length in segments)
        self._held = names(segments)
        store.hold(self._held)

    def __len__(self) -> int:
        return self.length

    def __bool__(self) -> bool:
        return True

    def __getitem__(self, item: slice) -> "BodyReader":
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError("an S3 body is sliced by byte range only")
        start, stop, _ = item.indices(self.length)
        return BodyReader(self.store, cut(self.segments, start, max(start, stop)))

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.store.chunks(self.segments)
        finally:
            self.close()

    def read(self) -> bytes:
        try:
            return self.store.read(self.segments)
        finally:
            self.close()

    def close(self) -> None:
        held, self._held = self._held, []
        if held:
            self.store.release(held)

    def __del__(self) -> None:
        self.close()


def cut(segments: tuple[Segment, ...], start: int, stop: int) -> tuple[Segment, ...]:
    """The segments covering bytes ``[start, stop)`` of the concatenation of ``segments``."""
    out = []
    position = 0
    for name, offset, length in segments:
        begin, end = max(start, position), min(stop, position + length)
        if begin < end:
            out.append((name, offset + begin - position, end - begin))
        position += length
        if position >= stop:
            break
    return tuple(out)


def _read_blob(path: Path, offset: int, length: int, size: int) -> Iterator[bytes]:
    """``length`` bytes of the blob at ``path`` from ``offset``, ``size`` at a time, through the
    page cache with read-ahead, the pages behind the reader dropped as it goes.

    Blobs are written with O_DIRECT, so a body is not in the cache when it is first read, and
    the producer reads it once. Reading it through the cache and keeping it would allocate a
    fresh page for every 4 KiB of it: CPU (on a VM that hands free memory back to its host,
    over 2 s a GiB, against under 0.5 s for the read itself) and memory pressure on what is
    worth caching. Dropping the pages just read keeps a few MiB of cache in use, recycled."""
    with open(path, "rb", buffering=0) as fh:
        fd = fh.fileno()
        fh.seek(offset)
        left, dropped, position = length, offset, offset
        while left > 0:
            data = fh.read(min(size, left))
            if not data:
                raise OSError(f"S3 body {path.name} is shorter than recorded")
            left -= len(data)
            position += len(data)
            if DROP_BEHIND and position - dropped >= DROP_WINDOW:
                os.posix_fadvise(fd, dropped, position - dropped, os.POSIX_FADV_DONTNEED)
                dropped = position
            yield data
        if DROP_BEHIND and position > dropped:
            os.posix_fadvise(fd, dropped, position - dropped, os.POSIX_FADV_DONTNEED)
