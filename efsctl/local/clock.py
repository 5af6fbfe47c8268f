"""Time inside the local cloud.

Real time for what really happens (a handler's duration, a timeout); *simulated AWS time* for
what the local cloud imitates (the delay before Lambda retries an asynchronous event, and, in
the fidelity layer, how long a resource stays ``creating``). Simulated durations are expressed in
AWS seconds and multiplied by ``time_scale``, so one profile runs at full length or compressed.
Everything that waits inside the daemon takes a clock, so tests can pass a fake one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class CloudClock:
    time_scale: float = 1.0
    now: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time

    def scaled(self, aws_seconds: float) -> float:
        """Real seconds that stand for ``aws_seconds`` of simulated AWS time."""
        return aws_seconds * self.time_scale

    def since(self, start: float) -> float:
        """Simulated AWS seconds elapsed since ``start`` (a value of :meth:`now`)."""
        return (self.now() - start) / self.time_scale

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` of real time for ``event``; True if it was set."""
        return event.wait(max(0.0, seconds))


@dataclass
class ManualClock(CloudClock):
    """A clock that moves only when told to (tests)."""

    t: float = 0.0
    t_wall: float = 1_800_000_000.0
    waits: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.now = lambda: self.t
        self.wall = lambda: self.t_wall + self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def wait(self, event: threading.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        if event.is_set():
            return True
        self.t += max(0.0, seconds)
        return event.is_set()
