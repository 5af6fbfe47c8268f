"""Simulated AWS time for the fidelity patches: how long things take, and what is due.

AWS makes resources ready after a while (a file system is ``creating`` for seconds, a mount
target for a minute or two, a new function is ``Pending``); moto makes them ready at once. The
``aws`` realism profile restores the delays, each multiplied by the cloud's ``time_scale``; the
``instant`` profile keeps every delay at zero, so the same code answers as moto does.

A resource's state is a function of when it was born and of now (``state = f(born, now)``), so
describes are consistent and cost nothing. What must *happen* when a delay ends (an interface
released by a deleted function disappears, a ``deleting`` mount target is gone) is registered
with :meth:`Timeline.after` and applied, lazily, before the next API call is served
(:meth:`Timeline.sweep`): no timers, no threads. Registered work should be a module function
(or a ``functools.partial`` of one) so the persister can save what is still due; work it cannot
pickle is kept in memory only, and lost if the cloud restarts.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import pickle
import threading
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, ContextManager

from efsctl.local.clock import CloudClock

log = logging.getLogger("efsctl.local.fidelity")


@dataclass(frozen=True)
class Delays:
    """AWS seconds, before ``time_scale``."""

    file_system_creating: float = 0.0
    mount_target_creating: float = 0.0
    mount_target_deleting: float = 0.0
    access_point_creating: float = 0.0
    endpoint_pending: float = 0.0
    role_propagation: float = 0.0      # a new role cannot be assumed by Lambda yet
    function_pending: float = 0.0
    function_updating: float = 0.0     # LastUpdateStatus InProgress
    permission_propagation: float = 0.0  # S3 cannot validate a notification to the function yet
    eni_linger: float = 0.0            # a function's interfaces after it is deleted or leaves its VPC


INSTANT = Delays()
AWS = Delays(file_system_creating=10.0, mount_target_creating=90.0, mount_target_deleting=30.0,
             access_point_creating=2.0, endpoint_pending=5.0, role_propagation=8.0, function_pending=60.0,
             function_updating=10.0, permission_propagation=2.0, eni_linger=120.0)
PROFILES = {"instant": INSTANT, "aws": AWS}


def delays_for(profile: str, extra: dict[str, Any] | None = None) -> Delays:
    """The profile's delays; ``delay.<name>=<seconds>`` options override single ones (tests)."""
    delays = PROFILES.get(profile, INSTANT)
    names = {f.name for f in fields(Delays)}
    overrides = {k.removeprefix("delay."): float(v) for k, v in (extra or {}).items()
                 if k.startswith("delay.") and k.removeprefix("delay.") in names}
    return replace(delays, **overrides) if overrides else delays


class Timeline:
    def __init__(self, clock: CloudClock, delays: Delays) -> None:
        self.clock = clock
        self.delays = delays
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._lock = threading.RLock()
        self.on_change: Callable[[], None] = lambda: None
        self.around_work: Callable[[], ContextManager[Any]] = contextlib.nullcontext

    def now(self) -> float:
        return self.clock.now()

    def delay(self, name: str) -> float:
        """Real seconds the named delay lasts (its AWS seconds times the scale)."""
        return self.clock.scaled(getattr(self.delays, name))

    def done(self, born: float | None, name: str) -> bool:
        """True once the named delay, started at ``born`` (a :meth:`now`), is over."""
        if born is None:
            return True
        return self.clock.now() - born >= self.delay(name)

    def left(self, born: float | None, name: str) -> float:
        """Real seconds until the named delay started at ``born`` is over (0 when it is)."""
        if born is None:
            return 0.0
        return max(0.0, born + self.delay(name) - self.clock.now())

    def after(self, name: str, work: Callable[[], None], start: float | None = None) -> None:
        """Run ``work`` once the named delay (from ``start``, default now) is over; at once if it is zero."""
        due = (self.clock.now() if start is None else start) + self.delay(name)
        if due <= self.clock.now():
            work()
            return
        with self._lock:
            heapq.heappush(self._due, (due, next(self._seq), work))
        self.on_change()

    def sweep(self) -> None:
        """Apply every transition that is due (called before each API call is served)."""
        if not self._due:
            return
        with self._lock, self.around_work():
            now = self.clock.now()
            ran = False
            while self._due and self._due[0][0] <= now:
                _, _, work = heapq.heappop(self._due)
                ran = True
                try:
                    work()
                except Exception:  # noqa: BLE001 - one failed transition must not stop the others
                    log.exception("a due lifecycle transition failed")
            if ran:
                self.on_change()

    def saved(self) -> list[tuple[float, Callable[[], None]]]:
        """What is still due, as the persister keeps it (work that cannot be pickled is left out)."""
        kept = []
        with self._lock:
            for due, _, work in sorted(self._due):
                try:
                    pickle.dumps(work)
                except Exception:  # noqa: BLE001 - a closure: it stays in memory only
                    log.warning("a due transition (%r) cannot be saved; it is lost if the cloud restarts", work)
                    continue
                kept.append((due, work))
        return kept

    def restore(self, saved: list[tuple[float, Callable[[], None]]]) -> None:
        with self._lock:
            for due, work in saved:
                heapq.heappush(self._due, (due, next(self._seq), work))

    @property
    def pending(self) -> int:
        return len(self._due)


def timeline(ctx: Any) -> Timeline:
    """The one timeline of a patch context (made on first use, shared by every patch)."""
    found = ctx.extra.get("_timeline")
    if found is None:
        clock = ctx.clock if ctx.clock is not None else CloudClock()
        found = ctx.extra["_timeline"] = Timeline(clock, delays_for(ctx.profile, ctx.extra))
    return found
