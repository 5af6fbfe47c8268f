"""The persister's parts on their own: journal frames, the gate, staging of S3 bodies, blobs, pickling."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import pickle
import threading
import zlib
from collections import defaultdict

import pytest

from efsctl.local.persist import ingest, pickler
from efsctl.local.persist.blobs import INLINE_MAX, BlobStore, BodyReader, cut
from efsctl.local.persist.gate import Gate, Tracker
from efsctl.local.persist.journal import Journal, iter_frames, read_frames, write_frames


def test_a_torn_last_record_is_dropped_and_cut_off(tmp_path):
    path = tmp_path / "journal"
    journal = Journal(path)
    for n in range(3):
        journal.append(f"record {n}".encode() * 100)
    journal.close()
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])                       # a crash in the middle of the last write
    frames, end, torn = read_frames(path)
    assert [f[:8] for f in frames] == [b"record 0", b"record 1"] and torn
    journal = Journal(path, keep=end)                  # reopened after a restore: the tail is cut
    journal.append(b"after")
    journal.close()
    frames, _, torn = read_frames(path)
    assert frames[-1] == b"after" and len(frames) == 3 and not torn


def test_a_damaged_checkpoint_is_an_error_not_a_shorter_state(tmp_path):
    path = tmp_path / "checkpoint"
    write_frames(path, [b"a" * 50, b"b" * 50])
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        list(iter_frames(path))


def test_a_commit_waits_for_requests_in_flight_and_new_ones_wait_for_it():
    gate = Gate()
    inside, committed, second_in = threading.Event(), threading.Event(), threading.Event()
    leave = threading.Event()

    def request():
        with gate.shared():
            with gate.shared():        # re-entrant
                inside.set()
                leave.wait(10)

    def commit():
        with gate.exclusive():
            committed.set()

    def later_request():
        with gate.shared():
            second_in.set()

    first = threading.Thread(target=request)
    first.start()
    assert inside.wait(10)
    committer = threading.Thread(target=commit)
    committer.start()
    assert not committed.wait(0.05)    # the request is still inside
    late = threading.Thread(target=later_request)
    late.start()
    leave.set()
    for thread in (first, committer, late):
        thread.join(10)
    assert committed.is_set() and second_in.is_set()


def test_outside_lets_a_blocking_call_release_the_gate():
    gate = Gate()
    with gate.shared():
        with gate.outside():
            with gate.exclusive():     # would deadlock if the shared hold were kept
                pass


def test_a_request_waits_for_the_epoch_that_carries_its_changes():
    woken = []
    tracker = Tracker(wake=lambda: woken.append(1))
    with tracker.request(tracking=False) as scope:
        tracker.reached(("backend", "a"), object())        # a read: not a change
        assert scope.need == 0
        tracker.touch(("s3key", "u", "k"), object())
        tracker.touch(("s3key", "u", "k2"), object())
    assert (scope.first, scope.need) == (1, 1) and woken == [1]
    epoch, units = tracker.take()
    assert epoch == 1 and set(units) == {("s3key", "u", "k"), ("s3key", "u", "k2")}
    with tracker.request(tracking=True) as scope:
        tracker.reached(("backend", "a"), object())
    assert scope.need == 2


def _environ(body: bytes, **headers: str) -> dict:
    environ = {"REQUEST_METHOD": "PUT", "PATH_INFO": "/bucket/key", "QUERY_STRING": "", "HTTP_HOST": "127.0.0.1:1",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
               "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, X"}
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    return environ


def _aws_chunked(data: bytes, size: int, trailer: str = "") -> bytes:
    out = b""
    for start in range(0, len(data), size):
        chunk = data[start:start + size]
        out += f"{len(chunk):x};chunk-signature={'0' * 64}\r\n".encode() + chunk + b"\r\n"
    out += b"0;chunk-signature=" + b"0" * 64 + b"\r\n" + trailer.encode() + b"\r\n"
    return out


def test_a_big_body_goes_to_a_blob_a_small_one_stays_inline(tmp_path):
    store = BlobStore(tmp_path)
    big = os.urandom(INLINE_MAX + 1)
    environ = _environ(big, x_amz_sdk_checksum_algorithm="SHA256")
    assert ingest.is_s3(environ) and ingest.carries_body(environ)
    staged = ingest.stage(environ, store)
    name, offset, length = staged.segment
    assert store.path(name).read_bytes() == big and (offset, length) == (0, len(big))
    assert staged.md5 == hashlib.md5(big).hexdigest() and staged.crc32 == zlib.crc32(big)
    assert environ["CONTENT_LENGTH"] == "0" and environ["wsgi.input"].read() == b""
    assert base64.b64decode(environ["HTTP_X_AMZ_CHECKSUM_SHA256"]) == hashlib.sha256(big).digest()
    small = ingest.stage(_environ(b"tiny"), store)
    assert small.segment == (b"tiny", 0, 4)


def test_aws_chunked_bodies_are_decoded_and_their_trailing_checksum_kept(tmp_path):
    data = os.urandom(200_000)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    body = _aws_chunked(data, 65536, trailer=f"x-amz-checksum-crc32:{crc}\r\n")
    environ = _environ(body, x_amz_content_sha256="STREAMING-UNSIGNED-PAYLOAD-TRAILER", content_encoding="aws-chunked",
                       x_amz_trailer="x-amz-checksum-crc32", x_amz_decoded_content_length=str(len(data)))
    staged = ingest.stage(environ, BlobStore(tmp_path))
    assert BlobStore(tmp_path).read([staged.segment]) == data
    assert environ["HTTP_X_AMZ_CHECKSUM_CRC32"] == crc and environ["HTTP_X_AMZ_CONTENT_SHA256"] == "UNSIGNED-PAYLOAD"
    assert "HTTP_CONTENT_ENCODING" not in environ


def test_a_body_that_does_not_match_its_digest_is_refused_and_not_kept(tmp_path):
    store = BlobStore(tmp_path)
    data = os.urandom(INLINE_MAX * 2)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ingest.BadDigest, match="Content-MD5"):
        ingest.stage(_environ(data, content_md5=wrong), store)
    with pytest.raises(ingest.BadDigest, match="CRC32"):
        ingest.stage(_environ(data, x_amz_checksum_crc32=base64.b64encode(b"\0\0\0\0").decode()), store)
    assert not any(p.is_file() for p in (tmp_path / "blobs").rglob("*"))


def test_only_object_and_part_uploads_are_staged():
    assert not ingest.carries_body(_environ(b"x", x_amz_copy_source="/b/k"))
    assert not ingest.carries_body({**_environ(b"<Tagging/>"), "QUERY_STRING": "tagging"})
    assert not ingest.carries_body({**_environ(b"<CreateBucketConfiguration/>"), "PATH_INFO": "/bucket"})
    assert ingest.carries_body({**_environ(b"x"), "QUERY_STRING": "uploadId=u&partNumber=2"})
    assert not ingest.is_s3({**_environ(b"x"), "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AK/20260101/"
                                                                      "us-east-1/lambda/aws4_request"})


def test_a_body_reader_slices_without_reading(tmp_path):
    store = BlobStore(tmp_path)
    a, b = os.urandom(1000), os.urandom(3000)
    segments = (store.write_bytes(a), (b"inline", 0, 6), store.write_bytes(b))
    whole = a + b"inline" + b
    reader = BodyReader(store, segments)
    assert len(reader) == len(whole)
    assert reader[995:1010].read() == whole[995:1010]
    assert b"".join(reader[2000:]) == whole[2000:]
    assert cut(segments, 1000, 1006) == ((b"inline", 0, 6),)


def test_a_big_body_reads_whole_from_any_offset_and_drops_the_pages_it_read(tmp_path, monkeypatch):
    from efsctl.local.persist import blobs

    store = BlobStore(tmp_path)
    data = os.urandom(3 * blobs.CHUNK + 12345)
    name = store.write_bytes(data)[0]
    monkeypatch.setattr(blobs, "DROP_WINDOW", blobs.CHUNK)
    dropped = []
    real = os.posix_fadvise
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, advice: (
        dropped.append((offset, length, advice)), real(fd, offset, length, advice)))
    start = 777
    reader = BodyReader(store, ((name, start, len(data) - start - 5),))
    assert b"".join(reader) == data[start:-5]
    # every byte read is dropped from the cache once, in order, and nothing else is
    assert all(advice == os.POSIX_FADV_DONTNEED for _, _, advice in dropped)
    assert [(o, o + n) for o, n, _ in dropped] == list(zip([start] + [o + n for o, n, _ in dropped[:-1]],
                                                           [o + n for o, n, _ in dropped]))
    assert dropped[0][0] == start and dropped[-1][0] + dropped[-1][1] == len(data) - 5 and len(dropped) > 2


def test_garbage_collection_spares_what_is_referenced_in_use_or_newer(tmp_path):
    store = BlobStore(tmp_path)
    kept, dropped, reading = (store.write_bytes(os.urandom(10))[0] for _ in range(3))
    mark = store.mark()
    newer = store.write_bytes(os.urandom(10))[0]
    reader = BodyReader(store, ((reading, 0, 10),))
    files, size = store.collect({kept}, mark)
    assert (files, size) == (1, 10)
    assert not store.path(dropped).exists()
    assert all(store.path(n).exists() for n in (kept, reading, newer))
    reader.close()


class _Holder:
    pass


def test_what_plain_pickle_refuses_is_saved_and_rebuilt():
    holder = _Holder()
    target = _Holder()
    holder.lock, holder.rlock, holder.cond = threading.Lock(), threading.RLock(), threading.Condition()
    holder.weak = __import__("weakref").WeakValueDictionary({"t": target})
    holder.ref = __import__("weakref").ref(target)
    holder.aliases = defaultdict(lambda: {})
    holder.aliases["a"]["b"] = 1
    holder.target = target
    copy = pickler.loads(pickler.dumps(holder))
    assert copy.weak["t"] is copy.target and copy.ref() is copy.target
    assert copy.aliases["a"] == {"b": 1} and copy.aliases["new"] == {}
    assert copy.lock.acquire(blocking=False) and copy.rlock.acquire(blocking=False)
    holder.bad = defaultdict(lambda: [1])
    with pytest.raises(pickle.PicklingError):
        pickler.dumps(holder)


def test_after_a_restart_an_answer_still_waits_for_its_commit(tmp_path):
    """Commits are numbered per process: a restored persister must not count the last run's."""
    from efsctl.local.persist.store import Persister

    values = {"x": 0}
    for run in range(2):
        persist = Persister(tmp_path)
        persist.register("x", lambda: values["x"], lambda v: values.update(x=v))
        persist.restore()
        persist.start()
        if run == 1:
            assert values["x"] == 5
            release = threading.Event()
            append = persist._journal.append
            persist._journal.append = lambda payload: (release.wait(10), append(payload))
        for n in range(5):
            with persist.tracker.request(tracking=False) as scope:
                values["x"] = n + 1
                persist.touch_extra("x")
            if run == 0:
                assert persist.wait(scope) is None
        if run == 1:
            answered = threading.Event()
            threading.Thread(target=lambda: (persist.wait(scope), answered.set())).start()
            assert not answered.wait(0.05)           # its commit is not on disk yet
            release.set()
            assert answered.wait(10)
        persist.close()


def test_an_s3_error_answer_keeps_a_message_with_markup_in_it():
    """The text of a failure to save (a pickling error names ``<function <lambda>>``) reaches the
    client as S3 error XML that botocore parses, not as a bare 500."""
    from botocore.parsers import RestXMLParser

    message = "The change could not be saved: Can't pickle <function <lambda> at 0x7f> & more."
    status, headers, body = ingest.error_response("InternalError", message, "500 Internal Server Error")
    parsed = RestXMLParser().parse({"status_code": 500, "headers": dict(headers), "body": body}, None)
    assert parsed["Error"] == {"Code": "InternalError", "Message": message}
