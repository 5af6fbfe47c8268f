"""Execute a plan: the one place in efsctl that creates or changes AWS resources.

The plan is a graph; a small thread pool runs every action whose dependencies are done, so
independent branches proceed together (roles, log groups and the bucket while EFS settles; both
mount targets; both functions) and the wall time approaches the critical path: file system,
then mount targets, then function activation. Each action is dispatched by kind to a step
(:mod:`efsctl.stack.steps`) that creates or updates, then waits until the resource is ready.
The first failure cancels the waits still running (through the clock) and is returned with
everything finished so far, so the caller can save what exists and report the error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from efsctl.aws.session import AwsContext
from efsctl.stack.drift import diff
from efsctl.stack.graph import CancellableClock, run_graph
from efsctl.stack.model import Names, resolve
from efsctl.stack.observe import Observed
from efsctl.stack.plan import CREATE, SKIP, Action, Plan
from efsctl.stack.steps import STEPS, Cancelled, StepContext
from efsctl.waits import Clock


class Reporter(Protocol):
    """Where execution reports progress (the CLI prints it; tests collect it)."""

    def step_started(self, action: Action) -> None: ...

    def step_finished(self, result: "StepResult") -> None: ...

    def step_failed(self, key: str, error: BaseException, elapsed: float) -> None: ...

    def waiting(self, key: str, what: str, elapsed: float, detail: str) -> None: ...


class NullReporter:
    def step_started(self, action: Action) -> None:
        pass

    def step_finished(self, result: "StepResult") -> None:
        pass

    def step_failed(self, key: str, error: BaseException, elapsed: float) -> None:
        pass

    def waiting(self, key: str, what: str, elapsed: float, detail: str) -> None:
        pass


@dataclass
class StepResult:
    key: str
    kind: str
    verb: str
    observed: Observed
    elapsed: float
    reasons: tuple[str, ...] = ()
    started: float = 0.0  # seconds after execution began

    @property
    def id(self) -> str:
        return self.observed.id

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "action": self.verb, "id": self.id,
                "elapsed": round(self.elapsed, 3), "reasons": list(self.reasons)}


@dataclass
class Execution:
    results: dict[str, StepResult] = field(default_factory=dict)
    error: BaseException | None = None
    failed_key: str | None = None
    elapsed: float = 0.0

    @property
    def resources(self) -> dict[str, Observed]:
        return {k: r.observed for k, r in self.results.items()}

    def raise_for_error(self) -> None:
        if self.error is not None:
            raise self.error


def run_action(action: Action, ctx: StepContext, done: dict[str, Observed]) -> Observed:
    """Create, converge or keep one resource; return it ready for its dependents.

    A create makes the resource with what the create call takes; a diff against the real ids
    of new dependencies then drives the update for the rest, so creating and repairing drift
    share one path, and a resource found to exist at create time is converged, not duplicated.
    """
    step = STEPS[action.kind]
    desired = resolve(action.resource, lambda key, attr: done[key].attr(attr))
    observed = step.create(desired, ctx) if action.verb == CREATE else action.observed
    assert observed is not None
    observed = step.settle(desired, observed, ctx)
    if action.verb != SKIP:
        drift = diff(desired, observed)
        if drift:
            observed = step.settle(desired, step.update(desired, observed, drift, ctx), ctx)
    return observed


Runner = Callable[[Action, StepContext, dict[str, Observed]], Observed]


def execute(plan: Plan, aws: AwsContext, names: Names, *, clock: Clock | None = None,
            reporter: Reporter | None = None, workers: int = 8, runner: Runner = run_action) -> Execution:
    """Run every action of ``plan``, each as soon as the actions it ``depends_on`` are done.

    Never raises for a failed step: the returned :class:`Execution` holds the first error and
    every result finished before it (``raise_for_error`` re-raises). Ctrl-C cancels the waits
    and propagates. ``runner`` does one action (default: :func:`run_action`); another runner
    with other verbs (a teardown's deletes, edges reversed) reuses the same scheduling.
    """
    clock = clock or Clock()
    reporter = reporter or NullReporter()
    cancelled = threading.Event()
    step_clock = CancellableClock(clock, cancelled)
    actions = {a.key: a for a in plan.actions}
    waiting_on = {a.key: {d for d in a.depends_on if d in actions} for a in plan.actions}
    done: dict[str, Observed] = {}
    execution = Execution()
    start = clock.now()

    def run(action: Action) -> StepResult:
        began = clock.now()
        reporter.step_started(action)
        ctx = StepContext(aws=aws, names=names, clock=step_clock, key=action.key,
                          progress=lambda what, elapsed, detail: reporter.waiting(action.key, what, elapsed, detail))
        observed = runner(action, ctx, done)
        return StepResult(action.key, action.kind, action.verb, observed, clock.now() - began, action.reasons,
                          began - start)

    def inline(key: str) -> StepResult | None:
        action = actions[key]
        if action.verb == SKIP and action.observed is not None and (
                action.kind not in STEPS or STEPS[action.kind].ready(action.observed)):
            # Nothing to change or wait for: no thread, no call.
            return StepResult(key, action.kind, SKIP, action.observed, 0.0, action.reasons, clock.now() - start)
        submitted[key] = clock.now()
        return None

    def finish(key: str, result: StepResult) -> None:
        done[key] = result.observed
        execution.results[key] = result
        reporter.step_finished(result)

    def fail(key: str, error: BaseException) -> None:
        if execution.error is None and not isinstance(error, Cancelled):
            execution.error, execution.failed_key = error, key
            cancelled.set()
            reporter.step_failed(key, error, clock.now() - submitted[key])

    submitted: dict[str, float] = {}
    waiting_on = run_graph(waiting_on, run=lambda key: run(actions[key]), finish=finish, fail=fail,
                           cancelled=cancelled, inline=inline, workers=workers, thread_name="efsctl-step")
    if execution.error is None and waiting_on:
        execution.error = RuntimeError(f"plan has unsatisfiable dependencies: {sorted(waiting_on)}")
    execution.elapsed = clock.now() - start
    return execution


__all__ = ["Execution", "NullReporter", "Reporter", "Runner", "StepResult", "execute", "run_action"]
