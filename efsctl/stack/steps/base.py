"""What every step shares: the :class:`Step` protocol and the one :class:`StepContext`.

A step knows one resource kind. ``create`` makes the resource with what the create call takes
and returns it as observed (through the same builder observation uses); the executor then diffs
and calls ``update`` for the rest, so "create" and "repair drift" share one code path.
``settle`` waits, bounded and visibly, for a lifecycle state. ``delete`` removes every target of
a teardown action, treats "already gone" as done, and returns a short detail for its line.
Steps only call the AWS layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from efsctl.aws.session import AwsContext
from efsctl.errors import AwsError
from efsctl.stack.model import Names
from efsctl.stack.observed import Observed, ObservedState
from efsctl.stack.plan import READY_STATES as READY
from efsctl.stack.plan import Action
from efsctl.waits import Clock, Outcome, Poll, ProgressFn, retry, wait_until

if TYPE_CHECKING:
    from efsctl.stack.drift import Drift

T = TypeVar("T")

# Waits poll with a small floor and fraction: a resource ready (or gone) after t seconds is seen
# by about t * 1.02 + 0.1, which keeps `up` and `down` within a few percent of their critical
# paths (measured under the local cloud's aws profile by bench/converge.py); a 90 s mount target
# costs about 150 describes, a 20 minute ENI drain about 250.
WAIT_POLL = Poll(floor=0.1, ceiling=10.0, fraction=0.02)
# Retries repeat a refused (often mutating) call, so they start gentler; the S3 notification's
# retry, while its new invoke permission propagates (about 2 s), is on `up`'s critical path.
RETRY_POLL = Poll(floor=0.25, ceiling=5.0, fraction=0.1)
# A wait nobody bounded (no step timeout, no overall deadline) still ends.
FALLBACK_TIMEOUT = 30 * 60.0


@dataclass
class StepContext:
    """What a step gets: where to call, the observation, a clock, its action and the deadline."""

    aws: AwsContext
    names: Names
    clock: Clock
    action: Action
    progress: ProgressFn
    observed: ObservedState | None = None
    deadline: float = math.inf
    hint: str = "Run the command again to resume."
    waits: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.action.key

    @property
    def targets(self) -> tuple[Observed, ...]:
        return self.action.targets

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock.now())

    def _bound(self, timeout: float) -> float:
        bound = min(timeout, self.remaining())
        return FALLBACK_TIMEOUT if math.isinf(bound) else bound

    def wait(self, check: Callable[[], Outcome[T]], *, what: str, timeout: float = math.inf,
             poll: Poll = WAIT_POLL) -> T | None:
        """Poll ``check`` until done, ``timeout`` or the overall deadline; the time counts as a wait."""
        began = self.clock.now()
        try:
            return wait_until(check, what=what, timeout=self._bound(timeout), clock=self.clock, poll=poll,
                              progress=self.progress, hint=self.hint)
        finally:
            self._waited(began)

    def retry(self, call: Callable[[], T], *, what: str, retryable: Callable[[BaseException], str | None],
              timeout: float = math.inf) -> T:
        """Run ``call``, retrying what ``retryable`` names until ``timeout`` or the deadline."""
        began = self.clock.now()
        try:
            return retry(call, what=what, retryable=retryable, timeout=self._bound(timeout), clock=self.clock,
                         poll=RETRY_POLL, progress=self.progress)
        finally:
            self._waited(began)

    def visible(self, call: Callable[[], T], what: str) -> T:
        """Run a call that names resources made moments ago, retrying while AWS cannot see them yet
        (EC2 and S3 are eventually consistent: ``InvalidSubnetID.NotFound``, ``NoSuchBucket``...)."""
        return self.retry(call, what=f"{self.key} {what}", retryable=not_visible_yet, timeout=VISIBILITY_TIMEOUT)

    def _waited(self, began: float) -> None:
        elapsed = self.clock.now() - began
        if elapsed > 0:
            self.waits[self.key] = self.waits.get(self.key, 0.0) + elapsed


VISIBILITY_TIMEOUT = 60.0
NOT_VISIBLE_CODES = {"SubnetNotFound", "SecurityGroupNotFound", "FileSystemNotFound", "NoSuchBucket",
                     "AccessPointNotFound"}


def not_visible_yet(exc: BaseException) -> str | None:
    if isinstance(exc, AwsError) and (exc.code.endswith(".NotFound") or exc.code in NOT_VISIBLE_CODES):
        return f"AWS does not list what it just created yet ({exc.code})"
    return None


def message_retryable(meanings: dict[str, str], codes: tuple[str, ...] = ()) -> Callable[[BaseException], str | None]:
    """A ``retryable`` for :func:`efsctl.waits.retry`: AWS errors whose message holds one of the
    fragments ``meanings`` maps; the reason given (what progress shows) is what it means."""

    def check(exc: BaseException) -> str | None:
        if not isinstance(exc, AwsError):
            return None
        if codes and exc.code not in codes:
            return None
        for fragment, meaning in meanings.items():
            if fragment.lower() in exc.message.lower():
                return meaning
        return None

    return check


def error_code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, AwsError) else ""


def said(done: list[bool], verb: str = "deleted") -> str:
    """A delete's detail: what it did, or that there was nothing left to do."""
    return verb if any(done) else "already gone"


class Step:
    """Defaults for a kind with no lifecycle state and nothing to converge after create."""

    timeout: float = 600.0  # how long ``settle`` waits
    failed_states: frozenset[str] = frozenset({"error", "failed", "deleted", "deleting"})

    def ready(self, observed: Observed | None) -> bool:
        return observed is not None and observed.state.lower() in READY

    def create(self, desired: Any, ctx: StepContext) -> Observed:
        raise NotImplementedError(f"{type(self).__name__} creates nothing")

    def update(self, desired: Any, observed: Observed, drift: "Drift", ctx: StepContext) -> Observed:
        return observed

    def delete(self, ctx: StepContext) -> str:
        raise NotImplementedError(f"{type(self).__name__} deletes nothing")

    def poll_state(self, desired: Any, observed: Observed, ctx: StepContext) -> str | None:
        """The resource's current lifecycle state, or ``None`` if it is gone."""
        return observed.state

    def settle(self, desired: Any, observed: Observed, ctx: StepContext) -> Observed:
        if self.ready(observed):
            return observed

        def check() -> Outcome[str]:
            state = self.poll_state(desired, observed, ctx)
            if state is None:  # just created and not listed yet (eventual consistency)
                return Outcome(done=False, detail="not visible yet")
            if state.lower() in self.failed_states:
                raise AwsError(f"{ctx.key} {observed.id} went to {state} while efsctl waited for it.",
                               "Check it in the AWS console, then run `efsctl up` again.")
            return Outcome(done=state.lower() in READY, value=state, detail=f"{observed.id} {state}")

        observed.state = ctx.wait(check, what=f"{ctx.key} {observed.id}", timeout=self.timeout) or ""
        return observed
