"""Who may change the cloud's state when, and what a request changed. Standard library only.

:class:`Gate` is a shared/exclusive lock: every moto request (and every other writer of moto's
models: the log sink, warming) holds it shared while it runs, and a commit holds it exclusive for
the moment it pickles, so a snapshot never catches a request half-way through a change. A thread
may re-enter it, and :meth:`Gate.outside` lets go for a blocking call (a synchronous Lambda
invocation runs a handler that calls the cloud back; holding the gate through it would deadlock
against a commit waiting its turn). Waiting commits go first, so requests cannot starve them.

:class:`Tracker` collects the *units* (a backend, an S3 key, a log stream, a queued event, ...)
touched since the last commit and numbers commits (epochs): a request remembers the epoch that
will carry what it touched, and its response waits for that epoch to be on disk.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator


class Gate:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0
        self._local = threading.local()

    def _depth(self) -> int:
        return getattr(self._local, "depth", 0)

    def _enter(self) -> None:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1

    def _leave(self) -> None:
        with self._cond:
            self._shared -= 1
            if not self._shared:
                self._cond.notify_all()

    @contextmanager
    def shared(self) -> Iterator[None]:
        depth = self._depth()
        if not depth:
            self._enter()
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if not depth:
                self._leave()

    @contextmanager
    def outside(self) -> Iterator[None]:
        """Let go of this thread's shared hold for a blocking call, then take it back."""
        depth = self._depth()
        if not depth:
            yield
            return
        self._local.depth = 0
        self._leave()
        try:
            yield
        finally:
            self._enter()
            self._local.depth = depth

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._exclusive or self._shared:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


@dataclass
class Scope:
    """One request (or one piece of background work): whether every backend it reaches counts
    as changed, the epoch that makes its changes durable (0: it changed nothing), and the units."""

    tracking: bool
    need: int = 0
    first: int = 0
    units: set[Hashable] = field(default_factory=set)


class Tracker:
    def __init__(self, wake: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._pending: dict[Hashable, Any] = {}
        self._epoch = 1
        self._local = threading.local()
        self.wake = wake

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def scope(self) -> Scope | None:
        return getattr(self._local, "scope", None)

    @contextmanager
    def request(self, tracking: bool) -> Iterator[Scope]:
        previous = self.scope()
        scope = self._local.scope = Scope(tracking)
        try:
            yield scope
        finally:
            self._local.scope = previous

    @contextmanager
    def tracked(self) -> Iterator[None]:
        """Count every backend reached from here as changed (work that mutates inside a read)."""
        with self._switch(True):
            yield

    @contextmanager
    def untracked(self) -> Iterator[None]:
        """A lookup that changes nothing (a role read to check a trust policy)."""
        with self._switch(False):
            yield

    @contextmanager
    def _switch(self, on: bool) -> Iterator[None]:
        scope = self.scope()
        if scope is None:
            with self.request(on):
                yield
            return
        before, scope.tracking = scope.tracking, on
        try:
            yield
        finally:
            scope.tracking = before

    def touch(self, key: Hashable, ref: Any) -> None:
        """``key`` changed (``ref`` finds it at commit time): the next commit saves it."""
        with self._lock:
            first = not self._pending
            self._pending[key] = ref
            epoch = self._epoch
        scope = self.scope()
        if scope is not None:
            scope.first = scope.first or epoch
            scope.need = max(scope.need, epoch)
            scope.units.add(key)
        if first:
            self.wake()

    def reached(self, key: Hashable, ref: Any) -> None:
        """``key`` was reached by a request: changed if the request is tracking."""
        scope = self.scope()
        if scope is not None and scope.tracking:
            self.touch(key, ref)

    def take(self) -> tuple[int, dict[Hashable, Any]]:
        """What the next commit saves, and its epoch (call with the gate held exclusive)."""
        with self._lock:
            units, self._pending = self._pending, {}
            epoch = self._epoch
            self._epoch += 1
        return epoch, units
