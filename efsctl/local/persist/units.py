"""The units a snapshot is made of: how each is saved and how it is put back.

========  ==========================  =========================================================
kind      key                         saved as
========  ==========================  =========================================================
backend   module, attribute, account,  one moto backend (every service, account and region the
          region                      cloud served), pickled without the parts below
s3key     bucket uid, key name         the versions of one S3 key (bodies are blobs)
s3keys    bucket uid                   every key of a bucket (checkpoints only)
logev     stream uid                   log events appended since the last save, as a delta
job       request id                   an asynchronous Lambda event still to run (None: done)
extra     name                         state of the fidelity layer (its timeline, sequencers)
========  ==========================  =========================================================

A commit saves only the units touched since the last one, so its cost follows the change, not
the size of the cloud: a PutObject saves the S3 backend without its keys (buckets, their
settings, uploads in progress) and the one key it wrote.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable, Hashable, Iterator

from efsctl.local.persist import pickler

BACKEND, KEY, KEYS, EVENTS, JOB, EXTRA = "backend", "s3key", "s3keys", "logev", "job", "extra"
STREAM_META = ("stored_bytes", "upload_sequence_token", "last_ingestion_time", "first_event_timestamp",
               "last_event_timestamp")


def backend_unit(backend: Any) -> tuple[str, ...]:
    return (BACKEND, *pickler.backend_key(backend))


class Codec:
    """Saves and restores units; remembers how many events of each stream are saved already."""

    def __init__(self, extras: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]]) -> None:
        self.extras = extras
        self.saved_events: dict[str, int] = {}

    # --- saving --------------------------------------------------------------------------------

    def dump(self, key: tuple, ref: Any, *, full: bool = False, collect: set[str] | None = None) -> bytes | None:
        """The unit's bytes (None: it is gone). ``full``: a checkpoint (events from the first);
        ``collect`` gathers the blobs the unit references."""
        kind = key[0]
        if kind == BACKEND:
            module, attr, account, region = key[1:]
            live = dict.get(pickler.backend_dict(module, attr)[account], region)
            return None if live is not ref else pickler.dumps(ref, root=ref, collect=collect)
        if kind == KEY:
            versions = dict.get(ref, key[2])
            return None if versions is None else pickler.dumps(list(versions), collect=collect)
        if kind == KEYS:
            return pickler.dumps({name: list(v) for name, v in dict.items(ref)}, collect=collect)
        if kind == EVENTS:
            return pickle.dumps(self._events(key[1], ref, full=full), protocol=pickler.PROTOCOL)
        if kind == JOB:
            return None if ref is None else pickle.dumps(ref, protocol=pickler.PROTOCOL)
        if kind == EXTRA:
            return pickler.dumps(self.extras[key[1]][0]())
        raise ValueError(f"unknown unit {key!r}")

    def _events(self, uid: str, stream: Any, full: bool) -> tuple[int, list[tuple], dict[str, Any]]:
        events = stream.events
        start = 0 if full else self.saved_events.get(uid, 0)
        if start > len(events):
            start = 0
        self.saved_events[uid] = len(events)
        rows = [(e.ingestion_time, e.timestamp, e.message, e.event_id) for e in events[start:]]
        return start, rows, {name: stream.__dict__.get(name) for name in STREAM_META}

    def everything(self, jobs: Callable[[], dict[str, Any]]) -> Iterator[tuple[tuple, Any]]:
        """Every unit of the live cloud (a checkpoint): backends first, then what they point to."""
        from moto.core.base_backend import BackendDict
        from moto.logs.models import LogsBackend
        from moto.s3.models import S3Backend

        # Copies of moto's dicts: a lookup outside the gate may add a backend meanwhile.
        backends = [backend for bd in list(BackendDict._instances) for account in list(dict.values(bd))
                    for backend in list(dict.values(account))]
        for backend in backends:
            yield backend_unit(backend), backend
        for backend in backends:
            if isinstance(backend, S3Backend):
                for bucket in list(backend.buckets.values()):
                    yield (KEYS, pickler.new_uid(bucket)), bucket.keys
            elif isinstance(backend, LogsBackend):
                for group in list(backend.groups.values()):
                    for stream in list(group.streams.values()):
                        yield (EVENTS, pickler.new_uid(stream)), stream
        for rid, job in jobs().items():
            yield (JOB, rid), job
        for name in self.extras:
            yield (EXTRA, name), None

    # --- restoring -----------------------------------------------------------------------------

    def apply(self, restorer: pickler.Restorer, key: tuple, payload: bytes | None, state: "Restored") -> None:
        kind = key[0]
        if kind == BACKEND:
            if payload is None:
                module, attr, account, region = key[1:]
                dict.pop(pickler.backend_dict(module, attr)[account], region, None)
            else:
                pickler.loads(payload)
        elif kind == KEY:
            store = restorer.key_store(key[1])
            if payload is None:
                dict.pop(store, key[2], None)
            else:
                dict.__setitem__(store, key[2], pickler.loads(payload))
        elif kind == KEYS:
            store = restorer.key_store(key[1])
            dict.clear(store)
            dict.update(store, pickler.loads(payload))
        elif kind == EVENTS:
            self._apply_events(restorer, key[1], pickle.loads(payload))
        elif kind == JOB:
            if payload is None:
                state.jobs.pop(key[1], None)
            else:
                state.jobs[key[1]] = pickle.loads(payload)
        elif kind == EXTRA:
            state.extras[key[1]] = payload
        else:
            raise ValueError(f"unknown unit {key!r}")

    def _apply_events(self, restorer: pickler.Restorer, uid: str, delta: tuple[int, list[tuple], dict]) -> None:
        from moto.logs.models import LogEvent

        start, rows, meta = delta
        events = restorer.events(uid)
        del events[start:]
        for ingestion_time, timestamp, message, event_id in rows:
            event = LogEvent.__new__(LogEvent)
            event.__dict__.update(ingestion_time=ingestion_time, timestamp=timestamp, message=message,
                                  event_id=event_id)
            events.append(event)
        stream = restorer.streams.get(uid)
        if stream is not None:
            stream.__dict__.update(meta)

    def restored(self, restorer: pickler.Restorer) -> None:
        """After a restore: what is saved of each stream, and moto's counters past every restored id."""
        from moto.logs.models import LogEvent

        self.saved_events = {uid: len(events) for uid, events in restorer.event_lists.items()}
        top = max((e.event_id for events in restorer.event_lists.values() for e in events), default=-1)
        LogEvent._event_id = max(LogEvent._event_id, top + 1)


class Restored:
    """What a restore hands back besides moto's backends: queued events, fidelity state, the clock."""

    def __init__(self) -> None:
        self.jobs: dict[str, Any] = {}
        self.extras: dict[str, bytes] = {}
        self.clock: tuple[float, float] | None = None   # (cloud time, wall time) of the last commit
        self.records = 0
        self.torn = False


def unit_label(key: Hashable) -> str:
    return "/".join(str(part) for part in key) if isinstance(key, tuple) else str(key)
