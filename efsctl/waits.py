"""Bounded waits and retries with an injected clock.

Every wait in efsctl goes through :func:`wait_until` or :func:`retry`: each has a deadline,
reports progress through a callback, and takes a :class:`Clock` so tests run without sleeping.

Polling adapts to how long we have waited: the interval is a fraction of the time elapsed,
clamped between a floor and a ceiling. A resource that becomes ready after ``t`` seconds is
therefore noticed by about ``t * (1 + fraction)``: short waits stay snappy, long waits
(mount targets, ENI release) do not hammer the API, and no wait overshoots by more than
``fraction`` of itself (plus the floor).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

from efsctl.errors import WaitTimeout

T = TypeVar("T")

ProgressFn = Callable[[str, float, str], None]
"""``progress(what, elapsed_seconds, detail)``."""


@dataclass
class Clock:
    """Monotonic time and sleep; tests pass a :class:`FakeClock`."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass
class FakeClock(Clock):
    """A clock whose sleep advances time instantly; records every sleep."""

    t: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.now = lambda: self.t
        self.sleep = self._sleep

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@dataclass(frozen=True)
class Poll:
    """How to poll: interval = clamp(elapsed * fraction, floor, ceiling)."""

    floor: float = 0.25
    ceiling: float = 10.0
    fraction: float = 0.1

    def interval(self, elapsed: float) -> float:
        return min(self.ceiling, max(self.floor, elapsed * self.fraction))


DEFAULT_POLL = Poll()


@dataclass
class Outcome(Generic[T]):
    """What a wait's check returns: done or not, a value, and a short state for progress."""

    done: bool
    value: T | None = None
    detail: str = ""


def wait_until(
    check: Callable[[], Outcome[T]],
    *,
    what: str,
    timeout: float,
    clock: Clock | None = None,
    poll: Poll = DEFAULT_POLL,
    progress: ProgressFn | None = None,
    hint: str = "Run the command again to resume waiting.",
) -> T | None:
    """Call ``check`` until it reports done; raise :class:`WaitTimeout` after ``timeout`` s."""
    clock = clock or Clock()
    start = clock.now()
    while True:
        outcome = check()
        elapsed = clock.now() - start
        if outcome.done:
            return outcome.value
        if progress:
            progress(what, elapsed, outcome.detail)
        if elapsed >= timeout:
            detail = f" (last state: {outcome.detail})" if outcome.detail else ""
            raise WaitTimeout(f"Gave up waiting for {what} after {elapsed:.0f} s{detail}.", hint)
        clock.sleep(min(poll.interval(elapsed), max(0.0, timeout - elapsed) or poll.floor))


def retry(
    call: Callable[[], T],
    *,
    what: str,
    retryable: Callable[[BaseException], str | None],
    timeout: float,
    clock: Clock | None = None,
    poll: Poll = DEFAULT_POLL,
    progress: ProgressFn | None = None,
) -> T:
    """Run ``call``; while it raises an error that ``retryable`` names (returns a reason for),
    wait and try again until ``timeout``; then let the last error propagate."""
    clock = clock or Clock()
    start = clock.now()
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - filtered by retryable
            reason = retryable(exc)
            elapsed = clock.now() - start
            if reason is None or elapsed >= timeout:
                raise
            if progress:
                progress(what, elapsed, reason)
            clock.sleep(min(poll.interval(elapsed), max(poll.floor, timeout - elapsed)))
