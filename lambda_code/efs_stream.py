"""Streaming with SHA-256 in the same pass: S3 body -> file (producer), file -> digest (consumer).

The producer's copy is a three-stage pipeline over a few fixed buffers: the calling thread
fills a buffer straight from the HTTP socket (``readinto``, no intermediate bytes objects),
a hashing thread digests it, a writing thread writes it; hashlib and os.write release the GIL,
so the three overlap. On a local file system large files are written with O_DIRECT from
page-aligned buffers: the bytes skip the page cache, which saves a copy and leaves the final
fsync nearly nothing to flush (not on NFS/EFS, where direct writes wait for the server).
Memory is bounded by ``depth * chunk`` whatever the object size.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import mmap
import os
import queue
import threading
from typing import Callable, Optional, Tuple

CHUNK = 4 << 20  # producer copy: 6 x 4 MiB measured best (bench/datapath.py) for 24 MiB
DEPTH = 6
HASH_CHUNK = 2 << 20  # consumer hash: EFS reads of a few rsize units, still cache-friendly
HASH_DEPTH = 4
DIRECT_MIN_BYTES = 16 << 20  # below this O_DIRECT buys nothing
ALIGN = 4096
_STOP = object()

ReadInto = Callable[[memoryview], int]


class IncompleteBody(IOError):
    """The stream ended before Content-Length bytes arrived."""


def body_readinto(body) -> ReadInto:
    """A ``readinto`` for a botocore StreamingBody.

    Fast path: the http.client response under urllib3, which reads from the socket straight
    into our buffer (http.client handles Content-Length and chunked framing). It applies only
    while urllib3 has buffered nothing and is not decoding content; otherwise the public
    ``read`` is used and copied in.
    """
    raw = getattr(body, "_raw_stream", None)
    fp = getattr(raw, "_fp", None)
    if (fp is not None and callable(getattr(fp, "readinto", None))
            and not getattr(raw, "_decoded_buffer", None)
            and getattr(raw, "_fp_bytes_read", 0) == 0
            and not getattr(raw, "decode_content", False)):
        return fp.readinto

    def copy_readinto(view: memoryview) -> int:
        data = body.read(len(view))
        view[: len(data)] = data
        return len(data)

    return copy_readinto


def _fill(readinto: ReadInto, view: memoryview) -> int:
    filled = 0
    while filled < len(view):
        got = readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def open_for_copy(path_fd_factory: Callable[[int], Tuple[int, str]], size: Optional[int],
                  directory: str) -> Tuple[int, str, bool]:
    """Create the destination via ``path_fd_factory(extra_flags)``, with O_DIRECT when it helps
    and the file system in ``directory`` suits it. Returns (fd, path, direct)."""
    o_direct = getattr(os, "O_DIRECT", 0)
    if o_direct and size is not None and size >= DIRECT_MIN_BYTES and direct_io_suits(directory):
        try:
            fd, path = path_fd_factory(o_direct)
            return fd, path, True
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # tmpfs and some FUSE file systems refuse O_DIRECT
                raise
    fd, path = path_fd_factory(0)
    return fd, path, False


_fs_types: dict = {}


def direct_io_suits(directory: str) -> bool:
    """O_DIRECT pays on a local disk (no page-cache copy, nothing left for fsync). On NFS, and
    so on EFS, each direct write waits for the server, while buffered writes stream behind
    the copy and fsync only waits for the tail: keep the page cache there."""
    fs_type = _fs_types.get(directory)
    if fs_type is None:
        fs_type = _fs_types[directory] = _mount_fs_type(directory)
    return not fs_type.startswith("nfs")


def _mount_fs_type(directory: str) -> str:
    """The file system type of the mount holding ``directory`` (Linux mountinfo), or ''."""
    real = os.path.realpath(directory)
    best, best_type = "", ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if " - " not in line or len(fields) < 5:
                    continue
                mount_point = fields[4].replace("\\040", " ")
                fs_type = line.split(" - ", 1)[1].split()[0]
                inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best):
                    best, best_type = mount_point, fs_type
    except OSError:
        return ""
    return best_type


class _Pipeline:
    def __init__(self, fd: int, direct: bool, chunk: int, depth: int):
        self.fd = fd
        self.direct = direct
        self.sha = hashlib.sha256()
        self.error: Optional[BaseException] = None
        self.free: "queue.Queue" = queue.Queue()
        self.to_hash: "queue.Queue" = queue.Queue()
        self.to_write: "queue.Queue" = queue.Queue()
        self.buffers = [mmap.mmap(-1, chunk) for _ in range(depth)]  # page-aligned
        for buf in self.buffers:
            self.free.put(buf)

    def _hash_loop(self) -> None:
        while True:
            item = self.to_hash.get()
            if item is _STOP:
                self.to_write.put(_STOP)
                return
            buf, n = item
            if self.error is None:
                try:
                    with memoryview(buf) as view:
                        self.sha.update(view[:n])
                except BaseException as exc:  # pragma: no cover - hashlib does not fail
                    self.error = exc
            self.to_write.put(item)

    def _write_loop(self) -> None:
        while True:
            item = self.to_write.get()
            if item is _STOP:
                return
            buf, n = item
            if self.error is None:
                try:
                    with memoryview(buf) as view:
                        self._write(view[:n])
                except BaseException as exc:
                    self.error = exc
            self.free.put(buf)

    def _drop_direct(self) -> None:
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        self.direct = False

    def _write(self, view: memoryview) -> None:
        while view:
            if self.direct and len(view) % ALIGN:
                aligned = len(view) - len(view) % ALIGN
                if aligned:
                    self._write(view[:aligned])
                    view = view[aligned:]
                if self.direct:
                    self._drop_direct()  # the unaligned tail goes through the page cache
                continue
            try:
                written = os.write(self.fd, view)
            except OSError as exc:
                if self.direct and exc.errno == errno.EINVAL:
                    self._drop_direct()
                    continue
                raise
            view = view[written:]

    def run(self, readinto: ReadInto) -> int:
        threads = [threading.Thread(target=self._hash_loop, name="sha256", daemon=True),
                   threading.Thread(target=self._write_loop, name="write", daemon=True)]
        for thread in threads:
            thread.start()
        total = 0
        try:
            while self.error is None:
                buf = self.free.get()
                with memoryview(buf) as view:
                    n = _fill(readinto, view)
                if not n:
                    self.free.put(buf)
                    break
                total += n
                self.to_hash.put((buf, n))
                if n < len(buf):
                    break
        except BaseException as exc:
            if self.error is None:
                self.error = exc
        finally:
            self.to_hash.put(_STOP)
            for thread in threads:
                thread.join()
            for buf in self.buffers:
                try:
                    buf.close()
                except BufferError:
                    pass  # a traceback still holds a view; the buffer goes with the exception
        if self.error is not None:
            raise self.error
        return total


def copy_to_fd(readinto: ReadInto, fd: int, direct: bool = False, expected_size: Optional[int] = None,
               chunk: Optional[int] = None, depth: Optional[int] = None) -> Tuple[str, int]:
    """Copy a stream to ``fd``, SHA-256 in the same pass, then fsync. Returns (hexdigest, bytes).

    Memory: ``depth`` buffers of ``chunk`` bytes (module defaults CHUNK and DEPTH).
    Raises IncompleteBody when ``expected_size`` is given and the stream ends short or long.
    """
    pipeline = _Pipeline(fd, direct, chunk or CHUNK, depth or DEPTH)
    total = pipeline.run(readinto)
    if expected_size is not None and total != expected_size:
        raise IncompleteBody(f"received {total} of {expected_size} bytes")
    os.fsync(fd)
    return pipeline.sha.hexdigest(), total


def hash_fd(fd: int, chunk: Optional[int] = None, depth: Optional[int] = None) -> Tuple[str, int]:
    """SHA-256 of an open file from offset 0, in one streaming pass. Returns (hexdigest, bytes).

    A thread reads ahead into a few buffers while this one hashes, so on EFS the network
    reads and the hashing overlap (hashlib releases the GIL on large updates)."""
    sha = hashlib.sha256()
    free: "queue.Queue" = queue.Queue()
    full: "queue.Queue" = queue.Queue()
    for _ in range(depth or HASH_DEPTH):
        free.put(bytearray(chunk or HASH_CHUNK))
    failure: list = []

    def read_ahead() -> None:
        offset = 0
        try:
            while True:
                buf = free.get()
                if buf is None:
                    return
                n = os.preadv(fd, [buf], offset)
                full.put((buf, n))
                if not n:
                    return
                offset += n
        except BaseException as exc:
            failure.append(exc)
            full.put((None, 0))

    reader = threading.Thread(target=read_ahead, name="read-ahead", daemon=True)
    reader.start()
    total = 0
    try:
        while True:
            buf, n = full.get()
            if not n:
                break
            with memoryview(buf) as view:
                sha.update(view[:n])
            total += n
            free.put(buf)
    finally:
        free.put(None)  # wakes the reader if we stopped early
        reader.join()
    if failure:
        raise failure[0]
    return sha.hexdigest(), total
