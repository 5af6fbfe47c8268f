"""What the handlers record about a model name, beside the models, in ``.efsctl/meta/``.

::

    <h>.json           ModelRecord: what the producer installed (size, sha256, etag, inode...)
    <h>.rejected.json  Refusal: the producer refused the latest upload of the name, and why
    <h>.corrupt.json   Corruption: the consumer found the installed bytes changed

``h`` is the sha256 of the name; each record carries the name itself, and one whose name
differs (a hash collision, a damaged file) is treated as absent. Every record is written
atomically, so a reader sees a whole one or none.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass
from typing import Optional, Set

import efs_store as store

MAX_RECORD_BYTES = 1 << 20

# Why the producer refused an upload (``Refusal.reason``).
CHECKSUM_MISMATCH = "checksum_mismatch"
NAME_CONFLICT = "name_conflict"
UNSAFE_PATH = "unsafe_path"
INVALID_NAME = "invalid_name"
TOO_LARGE = "too_large"
NO_SPACE = "no_space"
ACCESS_DENIED = "access_denied"


@dataclass
class ModelRecord:
    """What the producer installed under a name. ``ino`` tells whether the file at the path is
    still the one installed (a later install is a new inode; an in-place edit keeps it)."""

    name: str
    key: str
    size: int
    sha256: str
    etag: Optional[str]
    sequencer: Optional[str]
    mtime_ns: int
    installed_at: str
    ino: Optional[int] = None
    declared_sha256: Optional[str] = None  # the uploader's x-amz-meta-sha256, when it sent one


@dataclass
class Refusal:
    """The latest upload of a name, which the producer did not install."""

    name: str
    key: str
    etag: Optional[str]
    sequencer: Optional[str]
    reason: str
    message: str
    refused_at: str
    expected_sha256: Optional[str] = None
    actual_sha256: Optional[str] = None
    size: Optional[int] = None

    def public(self) -> dict:
        """The fields the API shows (the key and sequencer are internal)."""
        doc = {"reason": self.reason, "detail": self.message, "etag": self.etag, "refused_at": self.refused_at}
        for field in ("expected_sha256", "actual_sha256", "size"):
            if getattr(self, field) is not None:
                doc[field] = getattr(self, field)
        return doc


@dataclass
class Corruption:
    """The consumer hashed the file installed under a name and got another sha256 than the
    producer recorded. It applies while the file keeps this identity (inode, size, mtime)."""

    name: str
    ino: int
    size: int
    mtime_ns: int
    expected_sha256: str
    actual_sha256: str
    detected_at: str

    def matches(self, st: os.stat_result) -> bool:
        return (self.ino, self.size, self.mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)

    def public(self) -> dict:
        return {"expected_sha256": self.expected_sha256, "actual_sha256": self.actual_sha256,
                "detected_at": self.detected_at}


_KINDS = {ModelRecord: "", Refusal: ".rejected", Corruption: ".corrupt"}
KINDS = tuple(_KINDS.values())   # the suffixes of a model's records, for whoever removes them all


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(MAX_RECORD_BYTES))
    except (OSError, ValueError, RecursionError):
        return None  # absent or damaged: treated as absent (a model is then re-hashed)
    return data if isinstance(data, dict) else None


_TYPES = {"str": str, "int": int, "Optional[str]": (str, type(None)), "Optional[int]": (int, type(None))}


def _load(cls, data: Optional[dict], name: str):
    """A ``cls`` from ``data`` if it is about ``name`` and every field has its declared type."""
    if data is None or data.get("name") != name:
        return None
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in data:
            value = data[field.name]
        elif field.default is not dataclasses.MISSING:
            value = field.default
        else:
            return None
        if not isinstance(value, _TYPES[field.type]) or isinstance(value, bool):
            return None
        values[field.name] = value
    return cls(**values)


def _read(layout: store.Layout, cls, name: str):
    return _load(cls, _read_json(layout.meta_file(name, _KINDS[cls])), name)


def _write(layout: store.Layout, record) -> None:
    store.write_atomic(layout, layout.meta_file(record.name, _KINDS[type(record)]),
                       json.dumps(asdict(record)).encode())


def _clear(layout: store.Layout, cls, name: str) -> None:
    store.unlink_quietly(layout.meta_file(name, _KINDS[cls]))


def read_record(layout: store.Layout, name: str) -> Optional[ModelRecord]:
    return _read(layout, ModelRecord, name)


def write_record(layout: store.Layout, record: ModelRecord) -> None:
    _write(layout, record)


def read_refusal(layout: store.Layout, name: str) -> Optional[Refusal]:
    data = _read_json(layout.meta_file(name, _KINDS[Refusal]))
    if data is not None and "reason" not in data and "expected_sha256" in data:
        # written before refusals had reasons: every one of those was a checksum mismatch
        data = dict(data, reason=CHECKSUM_MISMATCH, refused_at=data.get("rejected_at", ""),
                    message=f"x-amz-meta-sha256 was {data.get('expected_sha256')} but the object's "
                            f"sha256 is {data.get('actual_sha256')}")
    return _load(Refusal, data, name)


def write_refusal(layout: store.Layout, refusal: Refusal) -> None:
    _write(layout, refusal)


def clear_refusal(layout: store.Layout, name: str) -> None:
    _clear(layout, Refusal, name)


def read_corruption(layout: store.Layout, name: str) -> Optional[Corruption]:
    return _read(layout, Corruption, name)


def write_corruption(layout: store.Layout, corruption: Corruption) -> None:
    _write(layout, corruption)


def clear_corruption(layout: store.Layout, name: str) -> None:
    _clear(layout, Corruption, name)


def record_matches(record: Optional[ModelRecord], st: os.stat_result) -> bool:
    """A record vouches for a file's checksum only while its size and mtime (ns) are unchanged."""
    return record is not None and record.size == st.st_size and record.mtime_ns == st.st_mtime_ns


def record_is_for(record: Optional[ModelRecord], st: os.stat_result) -> bool:
    """Whether ``record`` describes the file ``st`` (the same inode), changed since or not.
    Records written before inodes were kept are taken to describe the file in place."""
    return record is not None and (record.ino is None or record.ino == st.st_ino)


def meta_index(layout: store.Layout) -> Set[str]:
    """Names of the files in the meta directory, read once: a listing of many models then opens
    only the records that exist (each open is a network round trip on EFS)."""
    try:
        with os.scandir(layout.meta) as it:
            return {entry.name for entry in it}
    except OSError:
        return set()


def has(index: Set[str], layout: store.Layout, name: str, cls) -> bool:
    return layout.name_key(name) + _KINDS[cls] + ".json" in index
