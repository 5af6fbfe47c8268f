"""The EFS layout and every operation that must be atomic or symlink-safe on it.

::

    <mount>/models/<name>                   complete models only; the producer renames into place
    <mount>/outputs/<unique>.json           one result per prediction
    <mount>/.efsctl/tmp/                    temporary files (same file system: rename is atomic)
    <mount>/.efsctl/meta/<h>.*.json         records about the name (see efs_records)
    <mount>/.efsctl/locks/<h>.lock          fcntl lock serialising installs of one name

Records are keyed by a hash of the name so their paths stay short whatever the name, and carry
the name itself. EFS gives close-to-open consistency, so every visible file is written to a
temporary file first and renamed.

A temporary file names its owner by an ``flock`` its writer holds from creation until the file
is renamed or removed. The lock dies with the writer's process (locally) or its NFS client
(EFS, once the lock's lease lapses), so a temp whose lock can be taken is an orphan: its copy
was killed (kill -9, out of memory, a Lambda timeout). ``sweep_temps`` removes those.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import stat
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

from efs_common import ModelNotFound, ModelUnreadable, NameConflict, UnsafePath, validate_model_name

STATE_DIR = ".efsctl"
# No Lambda invocation lives longer than 900 s (the service's maximum timeout); a minute more
# covers clock skew between the NFS server's mtimes and ours. An older temp has no writer left,
# even if its lock were somehow still held.
TEMP_MAX_AGE_S = 900 + 60
# A writer creates its temp and then locks it; a temp younger than this may be in that instant.
TEMP_LOCK_GRACE_S = 2.0
SWEEP_LIMIT = 1000


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
        return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()

    def model_path(self, name: str) -> str:
        return os.path.join(self.models, validate_model_name(name))

    def meta_file(self, name: str, kind: str) -> str:
        """``.efsctl/meta/<h><kind>.json``: kind "" is the install record."""
        return os.path.join(self.meta, self.name_key(name) + kind + ".json")

    def meta_path(self, name: str) -> str:
        return self.meta_file(name, "")

    def lock_path(self, name: str) -> str:
        return os.path.join(self.locks, self.name_key(name) + ".lock")

    def create_temp(self, tag: str, extra_flags: int = 0) -> Tuple[int, str]:
        """A new, exclusive temporary file under the state directory, locked by this process
        until ``commit_temp`` or ``discard_temp``: (fd, path)."""
        path = os.path.join(self.tmp, f"{tag}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | extra_flags
        fd = os.open(path, flags, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a sweeper's probe holds it an instant
        except BaseException:
            os.close(fd)
            unlink_quietly(path)
            raise
        with _live_guard:
            _live_temps.add(path)
        return fd, path


# --------------------------------------------------------------------------- temporary files

# Temps this process writes. Over NFS, flock is emulated with POSIX record locks, which belong
# to the process: a probe from another thread of the writer's own process would succeed (and
# closing the probe's descriptor would drop the writer's lock), so the sweep skips these.
_live_temps: set = set()
_live_guard = threading.Lock()


def _forget_temp(path: str) -> None:
    with _live_guard:
        _live_temps.discard(path)


def commit_temp(fd: int, path: str, dest: str) -> None:
    """Rename a temp into place, then release it. The lock is held until after the rename,
    so the temp is never unowned while it still has its temporary name. If the rename
    fails, the caller still owns ``fd`` and the temp (and discards them)."""
    os.replace(path, dest)
    _forget_temp(path)
    try:
        os.close(fd)
    except OSError:
        pass  # the bytes were fsynced before the rename; a late NFS close error changes nothing


def discard_temp(fd: Optional[int], path: str) -> None:
    """Remove a temp (rejected, superseded or failed copy), then release it."""
    unlink_quietly(path)
    _forget_temp(path)
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _orphan_size(entry: os.DirEntry, now: float) -> Optional[Tuple[int, Optional[int]]]:
    """(size, fd holding its lock or None) when no live copy owns the temp ``entry``, else None."""
    if entry.path in _live_temps:
        return None
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    age = now - st.st_mtime
    if age > TEMP_MAX_AGE_S:
        return st.st_size, None
    if age < TEMP_LOCK_GRACE_S:
        return None
    flags = os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(entry.path, flags)  # write access: NFS grants exclusive locks only to writers
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None  # a live writer holds it (or the lock cannot be probed: assume live)
    return st.st_size, fd


def _scan_temps(layout: Layout, now: Optional[float], limit: int, remove: bool) -> Tuple[int, int]:
    now = time.time() if now is None else now
    files = total = 0
    try:
        with os.scandir(layout.tmp) as it:
            entries = [entry for _, entry in zip(range(limit), it)]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return 0, 0
    for entry in entries:
        found = _orphan_size(entry, now)
        if found is None:
            continue
        size, fd = found
        try:
            if remove:
                unlink_quietly(entry.path)  # still holding its lock: no writer can appear meanwhile
        except OSError:
            continue
        finally:
            if fd is not None:
                os.close(fd)
        files += 1
        total += size
    return files, total


def sweep_temps(layout: Layout, now: Optional[float] = None, limit: int = SWEEP_LIMIT) -> Tuple[int, int]:
    """Remove temporary files that no live copy owns: (files, bytes) removed."""
    return _scan_temps(layout, now, limit, remove=True)


def orphaned_temps(layout: Layout, now: Optional[float] = None, limit: int = SWEEP_LIMIT) -> Tuple[int, int]:
    """(files, bytes) of temporary files that no live copy owns, left in place."""
    return _scan_temps(layout, now, limit, remove=False)


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
        _write_all(fd, data)
        if fsync:
            os.fsync(fd)
        commit_temp(fd, tmp, dest)
    except BaseException:
        discard_temp(fd, tmp)
        raise


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
        raise UnsafePath(f"models/{os.path.relpath(probe, layout.models)} is a link out of models/")
    if not os.path.isdir(probe):
        raise NameConflict(f"models/{os.path.relpath(probe, layout.models)} is a model, not a folder")
    if os.path.isdir(dest) and not os.path.islink(dest):
        raise NameConflict(f"models/{name} is a folder of other models")
    return dest


def make_install_target(layout: Layout, name: str) -> str:
    """Like check_install_target, then create the parent directories (under the name lock)."""
    dest = check_install_target(layout, name)
    try:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise NameConflict(f"models/{name}: {exc.strerror}") from None
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
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ModelUnreadable(f"model {name!r} exists but the consumer may not read it "
                                  "(its permissions were changed on EFS); upload it again") from None
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
