"""S3 request bodies streamed to a blob before moto sees the request (PutObject, UploadPart).

moto reads a request's whole body into memory and copies it again into the object; a 1 GiB
upload then costs gigabytes of RSS. Here the body goes from the socket straight to a blob file
(MD5 for the ETag, CRC32 and any requested checksum computed on the way, then fsync), and moto
gets an empty body plus the blob, which the ``s3_bodies`` patch attaches to the key it creates.
``aws-chunked`` bodies (SigV4 streaming, with or without trailing checksums) are decoded on the
way; ``Content-MD5`` and CRC32/SHA checksums the client sent are verified, as S3 does.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import io
import mmap
import os
import re
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from efsctl.local.persist.blobs import INLINE_MAX, BlobStore, Segment, names

S3_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/s3/aws4_request")
STREAMING = ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
             "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
             "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER")
BODY_QUERY = {"uploadId", "partNumber", "x-id"}
VERIFIED = {"CRC32": 4, "SHA1": 20, "SHA256": 32}     # checksums computed here exactly as the client does
READ = 1 << 20             # bytes read from the socket at a time (md5, CRC32 and the copy stay in cache)
BLOCK = 1 << 20            # an O_DIRECT write (page-aligned, a multiple of any block size)


class BadDigest(Exception):
    """The body does not match the digest the client sent."""


@dataclass
class Staged:
    """A request body on disk: the blob, and what was computed while writing it."""

    segment: Segment
    md5: str
    crc32: int
    digests: dict[str, bytes] = field(default_factory=dict)   # algorithm -> raw checksum
    adopted: bool = False                                      # a key took it as its body

    @property
    def size(self) -> int:
        return self.segment[2]


def is_s3(environ: dict[str, Any]) -> bool:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth.startswith("AWS ") or S3_SCOPE.search(auth):
        return True
    query = environ.get("QUERY_STRING", "")
    return "X-Amz-Credential=" in query and ("%2Fs3%2Faws4_request" in query or "/s3/aws4_request" in query)


def carries_body(environ: dict[str, Any]) -> bool:
    """A PutObject or UploadPart with a body to stage (not a copy, not a subresource)."""
    if environ.get("REQUEST_METHOD") != "PUT" or environ.get("HTTP_X_AMZ_COPY_SOURCE"):
        return False
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if not set(query) <= BODY_QUERY or ("uploadId" in query) != ("partNumber" in query):
        return False
    path = environ.get("PATH_INFO", "").lstrip("/")
    host = environ.get("HTTP_HOST", "").split(":")[0]
    path_style = host in ("localhost", "") or host.replace(".", "").isdigit() or host.startswith("s3.")
    return "/" in path.strip("/") if path_style else bool(path)


def stage(environ: dict[str, Any], store: BlobStore) -> Staged:
    """Write the request's body to a new blob and leave moto an empty one; raises :class:`BadDigest`."""
    sha = environ.get("HTTP_X_AMZ_CONTENT_SHA256", "")
    encodings = [e.strip() for e in environ.get("HTTP_CONTENT_ENCODING", "").split(",") if e.strip()]
    chunked = sha in STREAMING or "aws-chunked" in encodings
    length = environ.get("CONTENT_LENGTH") or ""
    raw: BinaryIO = environ["wsgi.input"]
    stream = _Bounded(raw, int(length)) if length.isdigit() else _Bounded(raw, None)
    algorithm = environ.get("HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM", "").upper() or _trailer_algorithm(environ)
    writer = _Writer(store, algorithm)
    try:
        trailers = _dechunk(stream, writer.write) if chunked else _copy(stream, writer.write)
        staged = writer.finish()
    except BaseException:
        writer.abort()
        raise
    try:
        _verify(environ, staged, trailers, algorithm)
    except BadDigest:
        for name in names([staged.segment]):
            store.discard(name)
            store.release([name], "staged")
        raise
    _rewrite(environ, staged, algorithm, encodings, chunked, trailers)
    return staged


def _trailer_algorithm(environ: dict[str, Any]) -> str:
    trailer = environ.get("HTTP_X_AMZ_TRAILER", "").strip().lower()
    return trailer.removeprefix("x-amz-checksum-").upper() if trailer.startswith("x-amz-checksum-") else ""


class _Bounded:
    """At most ``length`` bytes of ``raw`` (all of it when the length is unknown)."""

    def __init__(self, raw: BinaryIO, length: int | None) -> None:
        self.raw = raw
        self.left = length

    def read(self, n: int) -> bytes:
        if self.left is not None:
            n = min(n, self.left)
            if n <= 0:
                return b""
        data = self.raw.read(n)
        if self.left is not None:
            self.left -= len(data)
        return data

    def readline(self) -> bytes:
        limit = 4096 if self.left is None else min(4096, self.left)
        if limit <= 0:
            return b""
        line = self.raw.readline(limit)
        if self.left is not None:
            self.left -= len(line)
        return line


def _copy(stream: _Bounded, write: Callable[[bytes], None]) -> dict[str, str]:
    while True:
        data = stream.read(READ)
        if not data:
            break
        write(data)
    if stream.left:
        raise ConnectionError(f"the client sent {stream.left} bytes fewer than announced")
    return {}


def _dechunk(stream: _Bounded, write: Callable[[bytes], None]) -> dict[str, str]:
    """Decode ``aws-chunked``: ``hex-size[;chunk-signature=..]\\r\\n data \\r\\n``..., a zero-size
    chunk, then optional ``name:value`` trailer lines (trailing checksums)."""
    while True:
        line = stream.readline()
        if not line:
            raise ConnectionError("the aws-chunked body ended early")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            break
        while size:
            data = stream.read(min(READ, size))
            if not data:
                raise ConnectionError("the aws-chunked body ended inside a chunk")
            write(data)
            size -= len(data)
        stream.readline()   # the \r\n closing the chunk
    trailers = {}
    while True:
        line = stream.readline().strip()
        if not line:
            break
        name, _, value = line.decode("latin-1").partition(":")
        trailers[name.strip().lower()] = value.strip()
    return trailers


class _Writer:
    """Into memory while the body is small (it is then saved inline, in the journal record), into
    a blob file once it is not. The file is written with O_DIRECT from an aligned block where the
    file system allows: no copy into the page cache and no dirty pages for the kernel to write
    back later (CPU this 2-core budget needs), and the closing fdatasync finds nothing to flush.
    Elsewhere (tmpfs, some FUSE file systems) it is written through the cache."""

    def __init__(self, store: BlobStore, algorithm: str) -> None:
        self.store = store
        self.name = ""
        self.path = ""
        self.fd = -1
        self.direct = False
        self.block: mmap.mmap | None = None
        self.filled = 0
        self.buffer = bytearray()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.crc = 0
        self.size = 0
        self.written = 0
        self.extra = Checksummer(algorithm) if algorithm and algorithm != "CRC32" else None
        self.algorithm = algorithm

    def write(self, data: bytes) -> None:
        self.md5.update(data)
        self.crc = binascii.crc32(data, self.crc)
        if self.extra is not None:
            self.extra.update(data)
        self.size += len(data)
        if self.fd < 0 and len(self.buffer) + len(data) <= INLINE_MAX:
            self.buffer += data
            return
        if self.fd < 0:
            self._open()
            pending, self.buffer = self.buffer + data, bytearray()
            self._out(memoryview(pending))
        else:
            self._out(memoryview(data))

    def _open(self) -> None:
        self.name, path = self.store.new()
        self.path = str(path)
        self.store.hold([self.name], "staged")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        o_direct = getattr(os, "O_DIRECT", 0)
        if o_direct:
            try:
                self.fd = os.open(self.path, flags | o_direct, 0o600)
                self.direct, self.block = True, mmap.mmap(-1, BLOCK)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:     # tmpfs and some FUSE file systems refuse O_DIRECT
                    raise
                os.unlink(self.path)
        self.fd = os.open(self.path, flags, 0o600)

    def _out(self, view: memoryview) -> None:
        if not self.direct:
            self._write(view)
            return
        assert self.block is not None
        while view:
            take = min(len(view), BLOCK - self.filled)
            self.block[self.filled:self.filled + take] = view[:take]
            self.filled += take
            view = view[take:]
            if self.filled == BLOCK:
                self._write(memoryview(self.block))
                self.filled = 0

    def _write(self, view: memoryview) -> None:
        while view:
            done = os.write(self.fd, view)
            self.written += done
            view = view[done:]

    def finish(self) -> Staged:
        if self.fd >= 0:
            if self.direct and self.filled:
                # The tail is not a whole block: written through the cache, at its offset.
                tail = os.open(self.path, os.O_WRONLY)
                try:
                    os.pwrite(tail, memoryview(self.block)[:self.filled], self.written)  # type: ignore[arg-type]
                    os.fdatasync(tail)
                finally:
                    os.close(tail)
            os.fdatasync(self.fd)
            self._close()
            segment: Segment = (self.name, 0, self.size)
        else:
            segment = (bytes(self.buffer), 0, self.size)
        digests = {"CRC32": self.crc.to_bytes(4, "big")}
        if self.extra is not None:
            digests[self.algorithm] = self.extra.digest()
        return Staged(segment, self.md5.hexdigest(), self.crc, digests)

    def _close(self) -> None:
        os.close(self.fd)
        self.fd = -1
        if self.block is not None:
            self.block.close()
            self.block = None

    def abort(self) -> None:
        if self.fd >= 0:
            self._close()
            self.store.discard(self.name)
            self.store.release([self.name], "staged")


def _verify(environ: dict[str, Any], staged: Staged, trailers: dict[str, str], algorithm: str) -> None:
    md5 = environ.get("HTTP_CONTENT_MD5")
    if md5 and _b64(md5) != bytes.fromhex(staged.md5):
        raise BadDigest("The Content-MD5 you specified did not match what we received.")
    for name, raw in staged.digests.items():
        sent = environ.get(f"HTTP_X_AMZ_CHECKSUM_{name}") or trailers.get(f"x-amz-checksum-{name.lower()}")
        if sent and name in VERIFIED and _b64(sent) != raw:
            raise BadDigest(f"The {name} you specified did not match the calculated checksum.")


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _rewrite(environ: dict[str, Any], staged: Staged, algorithm: str, encodings: list[str], chunked: bool,
             trailers: dict[str, str]) -> None:
    """What moto sees: an empty body, the checksum as a header, no streaming encoding.
    The original values stay in ``environ["efsctl.s3.original"]``."""
    original = {k: environ.get(k) for k in ("CONTENT_LENGTH", "HTTP_X_AMZ_CONTENT_SHA256", "HTTP_CONTENT_ENCODING",
                                            "HTTP_X_AMZ_DECODED_CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING")}
    environ["efsctl.s3.original"] = original
    environ["wsgi.input"] = io.BytesIO(b"")
    environ["CONTENT_LENGTH"] = "0"
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("wsgi.input_terminated", None)
    if chunked:
        environ["HTTP_X_AMZ_CONTENT_SHA256"] = "UNSIGNED-PAYLOAD"
        environ.pop("HTTP_X_AMZ_DECODED_CONTENT_LENGTH", None)
        kept = [e for e in encodings if e != "aws-chunked"]
        if kept:
            environ["HTTP_CONTENT_ENCODING"] = ",".join(kept)
        else:
            environ.pop("HTTP_CONTENT_ENCODING", None)
    header = f"HTTP_X_AMZ_CHECKSUM_{algorithm}" if algorithm else ""
    if algorithm and not environ.get(header):
        sent = trailers.get(f"x-amz-checksum-{algorithm.lower()}")
        value = staged.digests.get(algorithm)
        if sent or value is not None:
            environ[header] = sent or base64.b64encode(value).decode()


class Checksummer:
    """An S3 checksum computed incrementally, choosing its function as moto's ``compute_checksum``
    does (CRC32C and CRC64NVME fall back to CRC32 without their optional libraries)."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.value = 0
        self.width = 4
        self._hash: Any = None
        self._update: Callable[[bytes, int], int] = binascii.crc32
        if algorithm == "SHA1":
            self._hash = hashlib.sha1(usedforsecurity=False)
        elif algorithm == "CRC32C":
            try:
                import crc32c

                self._update = lambda data, value: crc32c.crc32c(data, value)
            except ImportError:
                pass
        elif algorithm == "CRC64NVME":
            from moto.s3.utils import HAS_CRT

            if HAS_CRT:
                from awscrt import checksums

                self._update = lambda data, value: checksums.crc64nvme(data, value)
                self.width = 8
        elif algorithm != "CRC32":
            self._hash = hashlib.sha256(usedforsecurity=False)

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)
        else:
            self.value = self._update(data, self.value)

    def digest(self) -> bytes:
        return self._hash.digest() if self._hash is not None else self.value.to_bytes(self.width, "big")

    @property
    def is_crc32(self) -> bool:
        return self._hash is None and self._update is binascii.crc32


def error_response(code: str, message: str, status: str = "400 Bad Request") -> tuple[str, list[tuple[str, str]], bytes]:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{escape(message)}</Message>'
            f"<RequestId>{os.urandom(8).hex().upper()}</RequestId></Error>").encode()
    return status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))], body
