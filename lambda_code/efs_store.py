"""The EFS layout and every operation that must be atomic or symlink-safe on it.

::

    <mount>/models/<name>                   complete models only; the producer renames into place
    <mount>/outputs/<unique>.json           one result per prediction
    <mount>/.efsctl/tmp/                    temporary files (same file system: rename is atomic)
    <mount>/.efsctl/meta/<h>.json           record of the installed model (h = sha256 of the name)
    <mount>/.efsctl/meta/<h>.rejected.json  the latest upload of <name>, rejected on checksum
    <mount>/.efsctl/locks/<h>.lock          fcntl lock serialising installs of one name

Records are keyed by a hash of the name so their paths stay short whatever the name, and carry
the name itself. EFS gives close-to-open consistency, so every visible file is written to a
temporary file first and renamed.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import secrets
import stat
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterator, Optional, Tuple

from efs_common import ModelNotFound, NameConflict, UnsafePath, validate_model_name

STATE_DIR = ".efsctl"
TEMP_MAX_AGE_S = 3600  # Lambda runs at most 900 s: an hour-old temp file has no writer left


class Layout:
    """Paths of one mounted file system."""

    def __init__(self, mount: str):
        self.root = os.path.abspath(mount)
        self.models = os.path.join(self.root, "models")
        self.outputs = os.path.join(self.root, "outputs")
        self.state = os.path.join(self.root, STATE_DIR)
        self.tmp = os.path.join(self.state, "tmp")
        self.meta = os.path.join(self.state, "meta")
        self.locks = os.path.join(self.state, "locks")

    def ensure(self) -> None:
        for path in (self.models, self.outputs, self.tmp, self.meta, self.locks):
            os.makedirs(path, exist_ok=True)

    @staticmethod
    def name_key(name: str) -> str:
        return hashlib.sha256(name.encode("utf-8")).hexdigest()

    def model_path(self, name: str) -> str:
        return os.path.join(self.models, validate_model_name(name))

    def meta_path(self, name: str) -> str:
        return os.path.join(self.meta, self.name_key(name) + ".json")

    def rejected_path(self, name: str) -> str:
        return os.path.join(self.meta, self.name_key(name) + ".rejected.json")

    def lock_path(self, name: str) -> str:
        return os.path.join(self.locks, self.name_key(name) + ".lock")

    def create_temp(self, tag: str, extra_flags: int = 0) -> Tuple[int, str]:
        """A new, exclusive temporary file under the state directory: (fd, path)."""
        path = os.path.join(self.tmp, f"{tag}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | extra_flags
        return os.open(path, flags, 0o644), path


# --------------------------------------------------------------------------- atomic writes


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def fsync_dir(path: str) -> None:
    """Make a rename durable on a local file system (NFS renames are synchronous anyway)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(layout: Layout, dest: str, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``dest`` so readers see the old file or the new one, never a part."""
    fd, tmp = layout.create_temp("w")
    try:
        try:
            _write_all(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except BaseException:
        unlink_quietly(tmp)
        raise


def sweep_temps(layout: Layout, now: Optional[float] = None, max_age_s: float = TEMP_MAX_AGE_S,
                limit: int = 1000) -> int:
    """Delete temporary files left by killed invocations; returns how many were removed."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(layout.tmp))[:limit]
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > max_age_s:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


# --------------------------------------------------------------------------- per-name lock

_thread_locks: dict = {}
_thread_locks_guard = threading.Lock()


@contextmanager
def name_lock(layout: Layout, name: str) -> Iterator[None]:
    """Serialise installs of one name across processes (fcntl) and threads of one process.

    POSIX record locks work across NFS clients (EFS supports them) but are per process, so a
    thread lock is taken first.
    """
    with _thread_locks_guard:
        thread_lock = _thread_locks.setdefault(name, threading.Lock())
    with thread_lock:
        fd = os.open(layout.lock_path(name), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the record lock


# --------------------------------------------------------------------------- records


@dataclass
class ModelRecord:
    """What the producer installed under a name."""

    name: str
    key: str
    size: int
    sha256: str
    etag: Optional[str]
    sequencer: Optional[str]
    mtime_ns: int
    installed_at: str


@dataclass
class Rejection:
    """The latest upload of a name whose bytes did not match its x-amz-meta-sha256."""

    name: str
    key: str
    etag: Optional[str]
    sequencer: Optional[str]
    expected_sha256: str
    actual_sha256: str
    size: int
    rejected_at: str


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(1 << 20))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError):
        return None  # a damaged record is treated as absent: the model gets re-hashed
    return data if isinstance(data, dict) else None


def _load(cls, data: Optional[dict], name: str):
    if data is None or data.get("name") != name:
        return None
    try:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})
    except (KeyError, TypeError):
        return None


def read_record(layout: Layout, name: str) -> Optional[ModelRecord]:
    record = _load(ModelRecord, _read_json(layout.meta_path(name)), name)
    if record is not None and not (isinstance(record.size, int) and isinstance(record.mtime_ns, int)
                                   and isinstance(record.sha256, str)):
        return None
    return record


def write_record(layout: Layout, record: ModelRecord) -> None:
    write_atomic(layout, layout.meta_path(record.name), json.dumps(asdict(record)).encode())


def read_rejection(layout: Layout, name: str) -> Optional[Rejection]:
    return _load(Rejection, _read_json(layout.rejected_path(name)), name)


def write_rejection(layout: Layout, rejection: Rejection) -> None:
    write_atomic(layout, layout.rejected_path(rejection.name), json.dumps(asdict(rejection)).encode())


def clear_rejection(layout: Layout, name: str) -> None:
    unlink_quietly(layout.rejected_path(name))


def record_matches(record: Optional[ModelRecord], st: os.stat_result) -> bool:
    """A record describes a file only while its size and mtime (ns) are unchanged."""
    return record is not None and record.size == st.st_size and record.mtime_ns == st.st_mtime_ns


# --------------------------------------------------------------------------- safe paths


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def check_install_target(layout: Layout, name: str) -> str:
    """The path to install ``name`` at, after checking the tree allows it (nothing is created).

    Raises NameConflict when an existing file stands where a directory must go (or a directory
    where the model must go), and UnsafePath when an existing parent resolves outside models/.
    """
    dest = layout.model_path(name)
    models_real = os.path.realpath(layout.models)
    parent = os.path.dirname(dest)
    probe = parent
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not _inside(os.path.realpath(probe), models_real):
        raise UnsafePath(f"{name!r} resolves outside models/")
    if not os.path.isdir(probe):
        raise NameConflict(f"{name!r}: {os.path.relpath(probe, layout.models)!r} is a file, not a directory")
    if os.path.isdir(dest) and not os.path.islink(dest):
        raise NameConflict(f"{name!r} is a directory of other models")
    return dest


def make_install_target(layout: Layout, name: str) -> str:
    """Like check_install_target, then create the parent directories (under the name lock)."""
    dest = check_install_target(layout, name)
    try:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise NameConflict(f"{name!r}: {exc.strerror}") from None
    return check_install_target(layout, name)


def open_model(layout: Layout, name: str) -> Tuple[int, os.stat_result]:
    """Open a model for reading, refusing anything that resolves outside models/.

    Returns (fd, fstat of fd). The final component is opened with O_NOFOLLOW after resolving,
    and O_NONBLOCK keeps a FIFO planted under models/ from hanging the call.
    """
    validate_model_name(name)
    models_real = os.path.realpath(layout.models)
    real = os.path.realpath(os.path.join(layout.models, name))
    if not _inside(real, models_real) or real == models_real:
        raise UnsafePath(f"model {name!r} resolves outside models/")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EISDIR):
            raise ModelNotFound(f"model {name!r} not found") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ModelNotFound(f"model {name!r} not found (not a regular file)")
    return fd, st


def iter_models(layout: Layout, limit: int) -> Iterator[Tuple[str, os.stat_result]]:
    """(name, stat) of every model, sorted by name; invalid names, dot entries, links that
    leave models/ and non-regular files are skipped. Directory symlinks are not followed."""
    models_real = os.path.realpath(layout.models)
    found = []
    stack = [""]
    while stack and len(found) < limit:
        rel_dir = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(layout.models, rel_dir)))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(rel)
                    continue
                validate_model_name(rel)
                if entry.is_symlink() and not _inside(os.path.realpath(entry.path), models_real):
                    continue
                st = entry.stat(follow_symlinks=True)
            except (OSError, ValueError):
                continue
            if stat.S_ISREG(st.st_mode):
                found.append((rel, st))
    found.sort(key=lambda item: item[0])
    return iter(found[:limit])
