"""One step per resource kind: how to create it, converge it, and wait until it is ready.

A step's ``create`` makes the resource exist with what the create call takes and returns it as
observed (truthfully: a new bucket has no policy yet); the executor then diffs and calls
``update`` for the rest, so "create" and "repair drift" share one code path. ``settle`` waits,
bounded and visibly, for a lifecycle state. Steps only call the AWS layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from efsctl.aws.session import AwsContext
from efsctl.errors import AwsError
from efsctl.stack.drift import Drift
from efsctl.stack.model import Names
from efsctl.stack.observe import Observed
from efsctl.stack.plan import READY_STATES as READY
from efsctl.waits import Clock, Outcome, Poll, ProgressFn, retry, wait_until

T = TypeVar("T")

# Waits poll with a small floor and fraction: a resource ready after t seconds is seen by about
# t * 1.02 + 0.1, which keeps `up` within a few percent of its critical path (measured under the
# local cloud's aws profile by bench/converge.py); a 90 s mount target costs about 150 describes.
WAIT_POLL = Poll(floor=0.1, ceiling=5.0, fraction=0.02)
# Retries repeat a refused (often mutating) call, so they start gentler; the S3 notification's
# retry, while its new invoke permission propagates (about 2 s), is on the critical path.
RETRY_POLL = Poll(floor=0.25, ceiling=5.0, fraction=0.1)


class Cancelled(Exception):
    """Another step failed, so this one stopped waiting."""


@dataclass
class StepContext:
    aws: AwsContext
    names: Names
    clock: Clock
    key: str
    progress: ProgressFn

    def wait(self, check: Callable[[], Outcome[T]], *, what: str, timeout: float) -> T | None:
        return wait_until(check, what=what, timeout=timeout, clock=self.clock, poll=WAIT_POLL,
                          progress=self.progress,
                          hint="Run `efsctl up` again to resume; nothing is created twice.")

    def retry(self, call: Callable[[], T], *, what: str, retryable: Callable[[BaseException], str | None],
              timeout: float) -> T:
        return retry(call, what=what, retryable=retryable, timeout=timeout, clock=self.clock, poll=RETRY_POLL,
                     progress=self.progress)

    def visible(self, call: Callable[[], T], what: str) -> T:
        """Run a call that names resources made moments ago, retrying while AWS cannot see them yet
        (EC2 and S3 are eventually consistent: ``InvalidSubnetID.NotFound``, ``NoSuchBucket``...)."""
        return self.retry(call, what=f"{self.key} {what}", retryable=not_visible_yet, timeout=VISIBILITY_TIMEOUT)


VISIBILITY_TIMEOUT = 60.0
NOT_VISIBLE_CODES = {"SubnetNotFound", "SecurityGroupNotFound", "FileSystemNotFound", "NoSuchBucket",
                     "AccessPointNotFound"}


def not_visible_yet(exc: BaseException) -> str | None:
    if isinstance(exc, AwsError) and (exc.code.endswith(".NotFound") or exc.code in NOT_VISIBLE_CODES):
        return f"{exc.code}: not visible yet"
    return None


def message_retryable(*fragments: str, codes: tuple[str, ...] = ()) -> Callable[[BaseException], str | None]:
    """A ``retryable`` for :func:`efsctl.waits.retry`: AWS errors whose message holds a fragment."""

    def check(exc: BaseException) -> str | None:
        if not isinstance(exc, AwsError):
            return None
        if codes and exc.code not in codes:
            return None
        for fragment in fragments:
            if fragment.lower() in exc.message.lower():
                return fragment
        return None

    return check


class Step:
    """Defaults for a kind with no lifecycle state and nothing to converge after create."""

    timeout: float = 600.0  # how long ``settle`` waits
    failed_states: frozenset[str] = frozenset({"error", "failed", "deleted", "deleting"})

    def ready(self, observed: Observed | None) -> bool:
        return observed is not None and observed.state.lower() in READY

    def create(self, desired: Any, ctx: StepContext) -> Observed:
        raise NotImplementedError

    def update(self, desired: Any, observed: Observed, drift: Drift, ctx: StepContext) -> Observed:
        return observed

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
            return Outcome(done=state.lower() in READY, value=state, detail=state)

        observed.state = ctx.wait(check, what=f"{ctx.key} {observed.id}", timeout=self.timeout) or ""
        return observed


# The dispatch table, kind -> step. Imported last: the step modules build on the classes above.
from efsctl.stack.steps import api, compute, network, storage  # noqa: E402

STEPS: dict[str, Step] = {**network.STEPS, **storage.STEPS, **compute.STEPS, **api.STEPS}

__all__ = ["Cancelled", "Step", "StepContext", "STEPS", "WAIT_POLL", "message_retryable", "not_visible_yet"]
