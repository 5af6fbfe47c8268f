"""S3 object bodies on disk, streamed in and out, and one event per upload, as S3 behaves.

moto keeps every object's value in a spooled temporary file, returns it whole to GetObject,
builds a completed multipart object by joining its parts in memory, and copies by reading the
source; a 4 GiB model then needs several times that much RAM. It also sends
``ObjectCreated:Put`` and then ``ObjectCreated:CompleteMultipartUpload`` for one multipart
upload, where S3 sends only the second.

Here a key's body is a tuple of blob segments (``efsctl.local.persist.blobs``): a PUT or a part
adopts the blob its request body was streamed into (``persist.ingest``), a completed upload is
its parts' segments in order (no bytes move; checksums are combined from the parts'), and a copy
shares its source's segments. While moto answers a GET (or copies), a key's ``value`` is a
:class:`~efsctl.local.persist.blobs.BodyReader` that moto slices for ranges and the server
streams from disk; elsewhere it is the bytes, as moto expects.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target
from efsctl.local.persist import ingest
from efsctl.local.persist.blobs import INLINE_MAX, BlobStore, BodyReader, Segment, names
from efsctl.local.persist.pickler import BODY

DIGESTS = "_efsctl_digests"       # raw checksums computed while a part was staged, by algorithm
_local = threading.local()
_store: BlobStore | None = None


def store() -> BlobStore:
    assert _store is not None, "the s3_bodies patch is not installed"
    return _store


@contextmanager
def lazy_bodies() -> Iterator[None]:
    """Within: a key's ``value`` is a reader over its blobs, not its bytes."""
    before = getattr(_local, "lazy", False)
    _local.lazy = True
    try:
        yield
    finally:
        _local.lazy = before


@contextmanager
def staged_body(staged: ingest.Staged | None) -> Iterator[None]:
    """Within: the next key made with an empty value takes ``staged`` as its body."""
    _local.staged = staged
    try:
        yield
    finally:
        _local.staged = None


def segments_of(key: Any) -> tuple[Segment, ...]:
    return key.__dict__.get(BODY, ())


# --- the key's body ------------------------------------------------------------------------------

def _get_value(key: Any) -> Any:
    reader = BodyReader(store(), segments_of(key))
    return reader if getattr(_local, "lazy", False) else reader.read()


def _set_value(key: Any, value: Any) -> None:
    if isinstance(value, str):
        value = value.encode("utf-8")
    digests: dict[str, bytes] = {}
    if isinstance(value, BodyReader):
        segments, size = value.segments, value.length
        value.close()
    elif not len(value) and getattr(_local, "staged", None) is not None:
        staged, _local.staged = _local.staged, None
        staged.adopted = True
        segments, size, digests = (staged.segment,), staged.size, dict(staged.digests)
        if key.__dict__.get("_etag") is None:
            key._etag = staged.md5
    elif not len(value):
        segments, size = (), 0
    elif len(value) <= INLINE_MAX:
        segments, size = ((bytes(value), 0, len(value)),), len(value)
    else:
        segments, size = (store().write_bytes(bytes(value)),), len(value)
    key.__dict__[BODY] = segments
    key.__dict__[DIGESTS] = digests
    key._value_buffer = None
    key.contentsize = size


def _etag(key: Any) -> str:
    if key._etag is None:
        key._etag = store().md5(segments_of(key))
    return f'"{key._etag}"'


def _getstate(key: Any) -> dict[str, Any]:
    state = key.__dict__.copy()
    state.pop("_value_buffer", None)
    state.pop("lock", None)
    return state


def _setstate(key: Any, state: dict[str, Any]) -> None:
    state = dict(state)
    value = state.pop("value", None)     # a state saved by moto's own __getstate__
    key.__dict__.update(state)
    key.lock = threading.Lock()
    key._value_buffer = None
    if BODY not in key.__dict__:
        _set_value(key, value or b"")


def _dispose(key: Any, garbage: bool = False) -> None:
    if not key.__dict__.get("disposed") and not garbage:
        store().garbage_bytes += key.__dict__.get("contentsize") or 0
    key.disposed = True


# --- multipart -------------------------------------------------------------------------------------

def complete(multipart: Any, body: Iterable[tuple[int, str]]) -> tuple[BodyReader, str, tuple[str, str, int]]:
    """moto's ``FakeMultipart.complete`` with the same checks, joining the parts' segments."""
    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
    from moto.s3.models import S3_UPLOAD_PART_MIN_SIZE

    parts, md5s, last = [], bytearray(), None
    for number, etag in body:
        part = multipart.parts.get(number)
        part_etag = part.etag.replace('"', "") if part is not None else None
        if part is None or part_etag != etag.replace('"', ""):
            raise InvalidPart()
        if last is not None and last.contentsize < S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(bytes.fromhex(part_etag))
        parts.append(part)
        last = part
    if not parts:
        raise MalformedXML
    segments = tuple(segment for part in parts for segment in segments_of(part))
    etag = f"{hashlib.md5(bytes(md5s), usedforsecurity=False).hexdigest()}-{len(parts)}"
    checksum = _multipart_checksum(multipart.metadata.get("x-amz-checksum-algorithm"),
                                   multipart.metadata.get("x-amz-checksum-type"), parts)
    return BodyReader(store(), segments), etag, checksum


def _multipart_checksum(algorithm: str | None, kind: str | None, parts: list[Any]) -> tuple[str, str, int]:
    """As moto's ``MultipartChecksumBuilder``: COMPOSITE is the checksum of the parts' checksums,
    FULL_OBJECT the checksum of the whole (CRC32's combined from the parts', not recomputed)."""
    import base64

    algorithm = algorithm or "CRC64NVME"
    kind = kind or ("FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE")
    if kind == "COMPOSITE":
        joined = b"".join(_part_checksum(algorithm, part) for part in parts)
        whole = ingest.Checksummer(algorithm)
        whole.update(joined)
        return kind, base64.b64encode(whole.digest()).decode(), len(parts)
    summer = ingest.Checksummer(algorithm)
    if summer.is_crc32 and all("CRC32" in part.__dict__.get(DIGESTS, {}) for part in parts):
        crc = 0
        for part in parts:
            crc = crc32_combine(crc, int.from_bytes(part.__dict__[DIGESTS]["CRC32"], "big"), part.contentsize)
        return kind, base64.b64encode(crc.to_bytes(4, "big")).decode(), 1
    for part in parts:
        for data in store().chunks(segments_of(part)):
            summer.update(data)
    return kind, base64.b64encode(summer.digest()).decode(), 1


def _part_checksum(algorithm: str, part: Any) -> bytes:
    summer = ingest.Checksummer(algorithm)
    known = part.__dict__.get(DIGESTS, {})
    if algorithm in known:
        return known[algorithm]
    if summer.is_crc32 and "CRC32" in known:
        return known["CRC32"]
    for data in store().chunks(segments_of(part)):
        summer.update(data)
    return summer.digest()


# zlib has crc32_combine, but Python's zlib module does not expose it: this is zlib's own
# method (crc32.c, multmodp/x2nmodp), so a completed upload's CRC32 needs no pass over its data.
_POLY = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


_X2N = [1 << 30]
for _ in range(31):
    _X2N.append(_multmodp(_X2N[-1], _X2N[-1]))


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC32 of A+B from CRC32(A), CRC32(B) and len(B)."""
    p, k, n = 1 << 31, 3, len2
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return _multmodp(p, crc1) ^ crc2


# --- requests -------------------------------------------------------------------------------------

def wrap_wsgi(app: Callable[..., Any]) -> Callable[..., Any]:
    """Stage PutObject and UploadPart bodies before moto (and before the persister's gate); let
    GET and HEAD see bodies as readers."""

    def s3_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not ingest.is_s3(environ):
            return app(environ, start_response)
        staged = None
        if ingest.carries_body(environ):
            try:
                staged = ingest.stage(environ, store())
            except ingest.BadDigest as exc:
                return _refuse(start_response, "BadDigest", str(exc))
            except (ConnectionError, ValueError) as exc:
                return _refuse(start_response, "IncompleteBody", f"The request body was not received whole ({exc}).")
            except OSError as exc:     # the disk is full, say: say so, as S3 says it cannot store
                return _refuse(start_response, "InternalError", f"The local cloud could not store the body ({exc}).",
                               "500 Internal Server Error")
        reading = environ.get("REQUEST_METHOD") in ("GET", "HEAD")
        try:
            with staged_body(staged), (lazy_bodies() if reading else contextlib.nullcontext()):
                return app(environ, start_response)
        finally:
            if staged is not None:
                blobs = names([staged.segment])
                if blobs and not staged.adopted:
                    store().discard(blobs[0])
                store().release(blobs, "staged")

    return s3_app


def _refuse(start_response: Callable[..., Any], code: str, message: str,
            status: str = "400 Bad Request") -> list[bytes]:
    status, headers, body = ingest.error_response(code, message, status)
    start_response(status, headers)
    return [body]


# --- install ---------------------------------------------------------------------------------------

def install(ctx: PatchContext, patcher: Patcher) -> None:
    global _store
    from moto.s3.models import FakeKey, FakeMultipart, S3Backend

    persist = ctx.persist
    _store = persist.blobs if persist is not None else BlobStore(Path(ctx.data_dir) / "s3")

    patcher.replace(FakeKey, "value", property(_get_value, _set_value))
    patcher.replace(FakeKey, "etag", property(_etag))
    patcher.replace(FakeKey, "__getstate__", _getstate)
    patcher.replace(FakeKey, "__setstate__", _setstate)
    patcher.replace(FakeKey, "dispose", _dispose)
    patcher.replace(FakeMultipart, "complete", complete)
    patcher.wrap(S3Backend, "copy_object", _lazily)
    patcher.wrap(S3Backend, "upload_part_copy", _lazily)
    patcher.wrap(S3Backend, "put_object", _one_event_per_upload)


def _lazily(original: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lazy_bodies():
            return original(self, *args, **kwargs)
    return method


def _one_event_per_upload(original: Callable[..., Any]) -> Callable[..., Any]:
    def put_object(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("multipart") is not None:
            # A completed upload (or a copy of one): CompleteMultipartUpload sends its own event.
            kwargs["disable_notification"] = True
        return original(self, *args, **kwargs)
    return put_object


PATCH = Patch(
    name="s3_bodies",
    summary="S3 bodies as blob files: streamed in and out, parts joined without copying; one event per upload",
    targets=(
        Target("moto.s3.models:FakeKey.value"),
        Target("moto.s3.models:FakeKey.etag"),
        Target("moto.s3.models:FakeKey.__getstate__", ("self",)),
        Target("moto.s3.models:FakeKey.__setstate__", ("self", "state")),
        Target("moto.s3.models:FakeKey.dispose", ("self", "garbage")),
        Target("moto.s3.models:FakeKey.__init__",
               ("self", "name", "value", "account_id", "region_name", "storage", "etag", "is_versioned",
                "version_id", "max_buffer_size", "multipart", "bucket_name", "encryption", "kms_key_id",
                "bucket_key_enabled", "lock_mode", "lock_legal_status", "lock_until", "checksum_value",
                "checksum_type", "checksum_parts")),
        Target("moto.s3.models:FakeMultipart.complete", ("self", "body")),
        Target("moto.s3.models:FakeMultipart.set_part", ("self", "part_id", "value")),
        Target("moto.s3.models:S3Backend.complete_multipart_upload", ("self", "bucket_name", "multipart_id", "body")),
        Target("moto.s3.models:S3Backend.copy_object"),
        Target("moto.s3.models:S3Backend.upload_part_copy"),
        Target("moto.s3.models:S3Backend.put_object",
               ("self", "bucket_name", "key_name", "value", "storage", "etag", "multipart", "encryption",
                "kms_key_id", "bucket_key_enabled", "lock_mode", "lock_legal_status", "lock_until",
                "checksum_value", "request_method", "disable_notification")),
        Target("moto.s3.models:S3_UPLOAD_PART_MIN_SIZE"),
        Target("moto.s3.exceptions:InvalidPart"),
        Target("moto.s3.exceptions:EntityTooSmall"),
        Target("moto.s3.models:MultipartChecksumBuilder.addPart", ("self", "part")),
    ),
    install=install,
)
