"""The persister: restores the cloud at start, then makes every change durable before it is answered.

Files in ``<data>/state/``: ``manifest.json`` (the current generation and who wrote it),
``checkpoint-<g>.bin`` (every unit, as of the moment the generation began), ``journal-<g>.bin``
(one record per commit since: the units that commit saved) and ``lock`` (one process at a time).

One committer thread does all writing. It waits for touched units, takes the gate exclusive just
long enough to pickle them (no request is mid-change then), lets go, fsyncs the blob directories,
appends one journal record and fdatasyncs it, then wakes every request whose changes that record
carries (group commit: requests that finish while a record is written share the next one). A
record holds every unit of the commit, so a change spanning services (a function and its network
interfaces) is on disk whole or not at all. When the journal passes :data:`JOURNAL_LIMIT` (or
enough S3 bodies were dropped) a checkpoint starts the next generation: a new checkpoint file and
an empty journal, then the manifest switches to them, then the old files and unreferenced blobs
are deleted.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pickle
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable

from efsctl.local.persist import manifest, pickler
from efsctl.local.persist.blobs import BlobStore
from efsctl.local.persist.gate import Gate, Scope, Tracker
from efsctl.local.persist.journal import Journal, fsync_dir, iter_frames, read_frames, write_frames
from efsctl.local.persist.units import EVENTS, EXTRA, JOB, KEY, Codec, Restored, backend_unit, unit_label

log = logging.getLogger("efsctl.local.persist")

JOURNAL_LIMIT = 64 << 20        # bytes of journal before a checkpoint starts the next generation
GARBAGE_LIMIT = 1 << 30         # bytes of dropped S3 bodies before a checkpoint collects them
KEEP_FAILURES = 64              # commits whose failures a late waiter can still see

# Class-level registries some moto backends add themselves to in __init__ (not pickled with them).
REGISTRIES = ("vpc_refs", "vpc_pcx_refs", "backend_refs")


class StateLocked(Exception):
    """Another local cloud process holds this stack's state."""


class Persister:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.dir = manifest.state_dir(self.data_dir)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.blobs = BlobStore(self.data_dir / "s3")
        self.gate = Gate()
        self.tracker = Tracker(wake=self._wake)
        self.extras: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {}
        self.codec = Codec(self.extras)
        self.jobs: Callable[[], dict[str, Any]] = dict
        self._cond = threading.Condition()
        self._committed = 0
        self._failed: dict[int, dict[Any, str]] = {}
        self._journal: Journal | None = None
        self._generation = 0
        self._offset = 0.0
        self._stop = False
        self._thread: threading.Thread | None = None
        self._lock_fd = -1
        self._journal_end: int | None = None
        self.counters = {"commits": 0, "units": 0, "bytes": 0, "seconds": 0.0, "checkpoints": 0, "failures": 0,
                         "waits": 0, "wait_seconds": 0.0}

    # --- opening -------------------------------------------------------------------------------

    def lock(self) -> None:
        self._lock_fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise StateLocked(f"another local cloud process is using {self.dir}") from None

    def incompatible(self) -> manifest.Incompatible | None:
        return manifest.check(self.data_dir)

    def monotonic(self) -> float:
        """The cloud's monotonic clock: it carries on across restarts from where the last commit left it."""
        return time.monotonic() + self._offset

    def register(self, name: str, dump: Callable[[], Any], load: Callable[[Any], None]) -> None:
        """Keep a piece of state beside moto's (the fidelity layer's timeline, say)."""
        self.extras[name] = (dump, load)

    # --- restoring -----------------------------------------------------------------------------

    def restore(self) -> Restored:
        """Load the current generation into moto's backends; return what else it held."""
        restored = Restored()
        doc = manifest.read_manifest(self.dir)
        if doc is None:
            self._journal = None
            return restored
        self._generation = int(doc["generation"])
        restorer = pickler.Restorer()
        pickler.restoring(restorer)
        try:
            for number, payload in enumerate(iter_frames(self.dir / doc["checkpoint"])):
                key, data = pickle.loads(payload)
                if number == 0 and key == "header":
                    restored.clock = data.get("clock")
                    continue
                self.codec.apply(restorer, key, data, restored)
            frames, end, restored.torn = read_frames(self.dir / doc["journal"])
            for payload in frames:
                record = pickle.loads(payload)
                for key, data in record["units"]:
                    self.codec.apply(restorer, key, data, restored)
                restored.clock = record["clock"]   # (epochs number one process's commits: not carried on)
            restored.records = len(frames)
            self._finish(restorer)
            for name, data in restored.extras.items():
                if name in self.extras:
                    self.extras[name][1](pickler.loads(data))
        finally:
            pickler.restoring(None)
        self.codec.restored(restorer)
        self._journal_end = end
        if restored.clock is not None:
            cloud_then, wall_then = restored.clock
            self._offset = cloud_then + max(0.0, time.time() - wall_then) - time.monotonic()
        _forget_tracked_instances()
        return restored

    def _finish(self, restorer: pickler.Restorer) -> None:
        for module, attr, account, region in restorer.unfilled():
            # Reached by a saved reference but never saved itself: start it fresh, in place.
            backend = pickler.backend_dict(module, attr)[account][region]
            log.warning("restore: backend %s.%s %s/%s was referenced but not saved; starting it fresh",
                        module, attr, account, region)
            type(backend).__init__(backend, region, account)
        for key in restorer.filled:
            backend = dict.get(pickler.backend_dict(key[0], key[1])[key[2]], key[3])
            for name in REGISTRIES:
                registry = getattr(type(backend), name, None)
                if isinstance(registry, dict):
                    registry[type(backend)].add(weakref.ref(backend))

    # --- running -------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin a new generation from the restored state, then start committing."""
        if not self.checkpoint("start"):
            doc = manifest.read_manifest(self.dir)
            if doc is None:
                raise RuntimeError("the first snapshot of the local cloud could not be written")
            self._journal = Journal(self.dir / doc["journal"], keep=self._journal_end)
        self._thread = threading.Thread(target=self._run, name="persist-commit", daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self.tracker.pending or self._stop):
                    self._cond.wait()
                if self._stop and not self.tracker.pending:
                    return
            try:
                self._commit()
                assert self._journal is not None
                if self._journal.size > JOURNAL_LIMIT or self.blobs.garbage_bytes > GARBAGE_LIMIT:
                    self.checkpoint("journal full" if self._journal.size > JOURNAL_LIMIT else "bodies dropped")
            except Exception:  # noqa: BLE001 - the committer must outlive one bad commit
                log.exception("persisting the local cloud's state failed")

    def _commit(self) -> None:
        started = time.perf_counter()
        with self.gate.exclusive():
            epoch, units = self.tracker.take()
            saved, failed = [], {}
            for key, ref in units.items():
                try:
                    saved.append((key, self.codec.dump(key, ref)))
                except Exception as exc:  # noqa: BLE001 - reported to the requests that changed it
                    failed[key] = f"{type(exc).__name__}: {exc}"
                    log.error("cannot save %s: %s", unit_label(key), failed[key])
            clock = (self.monotonic(), time.time())
        record = pickle.dumps({"epoch": epoch, "clock": clock, "units": saved}, protocol=pickler.PROTOCOL)
        try:
            self.blobs.sync()
            assert self._journal is not None
            self._journal.append(record)
        except OSError as exc:
            log.error("cannot write the local cloud's journal: %s", exc)
            failed = {key: f"the journal could not be written ({exc})" for key in units}
            for key in units:
                if key[0] == EVENTS:
                    self.codec.saved_events.pop(key[1], None)
        self._done(epoch, failed)
        self.counters["commits"] += 1
        self.counters["units"] += len(saved)
        self.counters["bytes"] += len(record)
        self.counters["seconds"] += time.perf_counter() - started

    def _done(self, epoch: int, failed: dict[Any, str]) -> None:
        with self._cond:
            self._committed = max(self._committed, epoch)
            if failed:
                self.counters["failures"] += len(failed)
                self._failed[epoch] = failed
                for old in sorted(self._failed)[:-KEEP_FAILURES]:
                    del self._failed[old]
            self._cond.notify_all()

    def wait(self, scope: Scope) -> str | None:
        """Block until what ``scope`` changed is on disk; None, or why some of it could not be saved."""
        if not scope.need:
            return None
        started = time.perf_counter()
        with self._cond:
            while self._committed < scope.need and not self._stop:
                self._cond.wait()
            self.counters["waits"] += 1
            self.counters["wait_seconds"] += time.perf_counter() - started
            if self._committed < scope.need:
                return "the local cloud is stopping"
            for epoch in range(scope.first, scope.need + 1):
                for key, why in self._failed.get(epoch, {}).items():
                    if key in scope.units:
                        return f"{unit_label(key)}: {why}"
        return None

    # --- checkpoints ---------------------------------------------------------------------------

    def checkpoint(self, reason: str) -> bool:
        """Start generation g+1 from the whole live state; False (and nothing changed) if it failed."""
        started = time.perf_counter()
        generation = self._generation + 1
        checkpoint_name, journal_name = f"checkpoint-{generation}.bin", f"journal-{generation}.bin"
        try:
            with self.gate.exclusive():
                epoch, _ = self.tracker.take()
                referenced: set[str] = set()
                mark = self.blobs.mark()
                clock = (self.monotonic(), time.time())
                frames = [pickle.dumps(("header", {"clock": clock, "written_by": manifest.writer_tags()}))]
                for key, ref in self.codec.everything(self.jobs):
                    data = self.codec.dump(key, ref, full=True, collect=referenced)
                    frames.append(pickle.dumps((key, data), protocol=pickler.PROTOCOL))
            self.blobs.sync()
            size = write_frames(self.dir / checkpoint_name, frames)
            journal = Journal(self.dir / journal_name)
            fsync_dir(self.dir)
            manifest.write_manifest(self.dir, {"format": manifest.FORMAT, "generation": generation,
                                               "checkpoint": checkpoint_name, "journal": journal_name,
                                               "written_by": manifest.writer_tags(), "written_at": time.time()})
        except Exception:  # noqa: BLE001 - the previous generation stays current
            log.exception("checkpoint %d (%s) failed; the previous generation stays current", generation, reason)
            for name in (checkpoint_name, journal_name):
                try:
                    (self.dir / name).unlink()
                except FileNotFoundError:
                    pass
            return False
        old, self._journal, self._generation = self._journal, journal, generation
        if old is not None:
            old.close()
        for entry in self.dir.iterdir():
            if entry.name.startswith(("checkpoint-", "journal-")) and entry.name not in (checkpoint_name, journal_name):
                entry.unlink(missing_ok=True)
        self._done(epoch, {})
        files, freed = self.blobs.collect(referenced, mark)
        self.counters["checkpoints"] += 1
        log.info("checkpoint %d (%s): %d units, %.1f MiB in %.2f s; %d unreferenced bodies removed (%.1f MiB)",
                 generation, reason, len(frames) - 1, size / 2**20, time.perf_counter() - started, files, freed / 2**20)
        return True

    # --- what the hooks call -------------------------------------------------------------------

    def touch_backend(self, backend: Any) -> None:
        self.tracker.touch(backend_unit(backend), backend)

    def reached_backend(self, backend: Any) -> None:
        if self.tracker.scope() is not None:
            self.tracker.reached(backend_unit(backend), backend)

    def touch_key(self, bucket_uid: str, name: str, store: Any) -> None:
        self.tracker.touch((KEY, bucket_uid, name), store)

    def touch_stream(self, stream: Any) -> None:
        self.tracker.touch((EVENTS, pickler.new_uid(stream)), stream)

    def touch_job(self, request_id: str, state: dict[str, Any] | None) -> None:
        self.tracker.touch((JOB, request_id), state)

    def touch_extra(self, name: str) -> None:
        self.tracker.touch((EXTRA, name), None)

    # --- stopping ------------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is pending, stop the committer, let go of the lock."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._journal is not None:
            self._journal.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def stats(self) -> dict[str, Any]:
        """Counters since the process started: ``ms_per_commit`` (pickling, writing, syncing, and
        waiting for requests in flight), ``wait_ms`` (what a changing request's answer waited)."""
        commits, waits = self.counters["commits"] or 1, self.counters["waits"] or 1
        return {**self.counters, "generation": self._generation,
                "journal_bytes": self._journal.size if self._journal else 0,
                "ms_per_commit": 1000 * self.counters["seconds"] / commits,
                "bytes_per_commit": self.counters["bytes"] / commits,
                "wait_ms": 1000 * self.counters["wait_seconds"] / waits}


def _forget_tracked_instances() -> None:
    """moto keeps every model ever made in a class list (for its /moto-api); after a restore that
    list holds each superseded copy a journal replay made, so it is emptied."""
    from moto.core.model_instances import model_data

    for models in model_data.values():
        for cls in models.values():
            tracked = getattr(cls, "instances_tracked", None)
            if isinstance(tracked, list):
                tracked.clear()
