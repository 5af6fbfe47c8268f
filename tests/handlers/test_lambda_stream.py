"""The streaming copy and hashing, without S3: sizes around chunk boundaries, O_DIRECT tails,
short streams and failing writes."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

import efs_stream as stream


def _reader(data: bytes, max_piece: int = 1 << 30):
    """readinto over bytes that returns at most max_piece bytes per call (like a socket)."""
    src = io.BytesIO(data)

    def readinto(view):
        piece = src.read(min(len(view), max_piece))
        view[: len(piece)] = piece
        return len(piece)

    return readinto


CHUNK = 64 << 10


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 12345])
@pytest.mark.parametrize("direct", [False, True])
def test_copy_hashes_and_writes_every_byte(tmp_path, size, direct):
    data = os.urandom(size)
    path = tmp_path / "out.bin"
    flags = os.O_WRONLY | os.O_CREAT | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags, 0o644)
    try:
        sha, n = stream.copy_to_fd(_reader(data, max_piece=10_000), fd, direct=direct, expected_size=size,
                                   chunk=CHUNK, depth=3)
    finally:
        os.close(fd)
    assert (sha, n) == (hashlib.sha256(data).hexdigest(), size)
    assert path.read_bytes() == data


def test_short_stream_is_an_error(tmp_path):
    fd = os.open(tmp_path / "out.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(stream.IncompleteBody, match="received 100 of 200 bytes"):
            stream.copy_to_fd(_reader(b"x" * 100), fd, expected_size=200, chunk=CHUNK)
    finally:
        os.close(fd)


def test_reader_failure_propagates_without_deadlock(tmp_path):
    calls = []

    def failing(view):
        calls.append(1)
        if len(calls) > 3:
            raise ConnectionResetError("peer went away")
        view[:1000] = b"y" * 1000
        return 1000

    fd = os.open(tmp_path / "out.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(ConnectionResetError):
            stream.copy_to_fd(failing, fd, chunk=CHUNK, depth=2)
    finally:
        os.close(fd)


def test_writer_failure_propagates_without_deadlock(tmp_path):
    fd = os.open(tmp_path / "out.bin", os.O_RDONLY | os.O_CREAT, 0o644)  # writes fail: EBADF
    try:
        with pytest.raises(OSError):
            stream.copy_to_fd(_reader(b"z" * (10 * CHUNK)), fd, chunk=CHUNK, depth=2)
    finally:
        os.close(fd)


def test_open_for_copy_prefers_direct_for_large_objects(tmp_path):
    made = []

    def factory(flags):
        path = str(tmp_path / f"t{len(made)}")
        made.append(flags)
        return os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o644), path

    fd, _, direct = stream.open_for_copy(factory, stream.DIRECT_MIN_BYTES, str(tmp_path))
    os.close(fd)
    assert direct and made[-1] & os.O_DIRECT
    fd, _, direct = stream.open_for_copy(factory, 10, str(tmp_path))
    os.close(fd)
    assert not direct and made[-1] == 0


def test_open_for_copy_falls_back_when_direct_is_refused(tmp_path):
    def factory(flags):
        if flags:
            raise OSError(22, "Invalid argument")
        return os.open(tmp_path / "t", os.O_WRONLY | os.O_CREAT, 0o644), str(tmp_path / "t")

    fd, _, direct = stream.open_for_copy(factory, 1 << 30, str(tmp_path))
    os.close(fd)
    assert direct is False


def test_no_direct_io_on_nfs(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "_fs_types", {})
    monkeypatch.setattr(stream, "_mount_fs_type", lambda directory: "nfs4")
    made = []

    def factory(flags):
        made.append(flags)
        return os.open(tmp_path / "t", os.O_WRONLY | os.O_CREAT, 0o644), str(tmp_path / "t")

    fd, _, direct = stream.open_for_copy(factory, 1 << 30, str(tmp_path))
    os.close(fd)
    assert (direct, made) == (False, [0])


def test_mount_fs_type_reads_mountinfo():
    assert stream._mount_fs_type("/") != ""
    assert stream._mount_fs_type("/proc/self") == "proc"


def test_body_readinto_falls_back_to_read_for_plain_bodies():
    class Body:
        def __init__(self):
            self.src = io.BytesIO(b"abcdef")

        def read(self, n):
            return self.src.read(n)

    readinto = stream.body_readinto(Body())
    buf = bytearray(4)
    assert readinto(memoryview(buf)) == 4 and bytes(buf) == b"abcd"


@pytest.mark.parametrize("size", [0, 1, CHUNK, 3 * CHUNK + 7])
def test_hash_fd(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "m.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert stream.hash_fd(fd, chunk=CHUNK) == (hashlib.sha256(data).hexdigest(), size)
    finally:
        os.close(fd)


def test_hash_fd_read_error_propagates(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)  # a directory: preadv fails with EISDIR
    try:
        with pytest.raises(IsADirectoryError):
            stream.hash_fd(fd, chunk=CHUNK)
    finally:
        os.close(fd)
