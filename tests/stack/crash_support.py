"""Crash injection for the stack tests: a call hook that kills a run mid-flight."""

from __future__ import annotations

from efsctl.aws.session import is_mutating


class Killed(BaseException):
    """Raised from inside an AWS call, like a SIGKILL would stop the run there."""


class Killer:
    """A call hook that kills the run once ``n`` mutating calls are issued (``None``: never)."""

    def __init__(self) -> None:
        self.n: int | None = None
        self.issued = 0
        self.fired = False

    def arm(self, n: int | None) -> None:
        self.n, self.issued, self.fired = n, 0, False

    def __call__(self, service: str, operation: str, params: dict) -> None:
        if self.n is not None and self.issued >= self.n:
            self.fired = True
            raise Killed(f"killed after {self.n} mutating calls")
        if is_mutating(operation):
            self.issued += 1
