"""Execute a plan: the one place in efsctl that creates, changes or deletes AWS resources.

The plan is a graph; a small thread pool runs every action whose dependencies are done, so
independent branches proceed together and the wall time approaches the critical path (`up`:
file system, mount targets, function activation; `down`: Lambda's network interfaces). Each
action is dispatched by kind to a step of the given table (:mod:`efsctl.stack.steps`): a
``create``/``update``/``skip`` converges the resource and waits until it is ready, a ``delete``
removes its targets and waits until AWS agrees.

`up` and `down` differ only in the failure policy: `up` stops at the first error (the waits still
running are cancelled through the clock); `down` holds back only what depends on a failed action,
so a re-run has as little left as possible. Either way a failed step does not raise here: the
:class:`Execution` carries the errors with everything finished before them.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from efsctl.aws.session import AwsContext
from efsctl.errors import EfsctlError
from efsctl.stack.drift import diff
from efsctl.stack.graph import Cancelled, CancellableClock, run_graph
from efsctl.stack.model import Names, resolve
from efsctl.stack.observed import Observed
from efsctl.stack.plan import CREATE, DELETE, SKIP, Action, Plan
from efsctl.stack.steps import STEPS
from efsctl.stack.steps.base import Step, StepContext
from efsctl.waits import Clock

STOP_AT_FIRST_ERROR = "stop"       # `up`: nothing new starts after a failure
HOLD_BACK_DEPENDENTS = "hold"      # `down`: only what depends on the failure waits for a re-run


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
    observed: Observed | None
    elapsed: float
    reasons: tuple[str, ...] = ()
    started: float = 0.0  # seconds after execution began
    detail: str = ""      # what a delete did ("deleted", "already gone", "none left")
    targets: tuple[Observed, ...] = ()

    @property
    def id(self) -> str:
        if self.observed is not None:
            return self.observed.id
        return ", ".join(t.id for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        doc = {"key": self.key, "kind": self.kind, "action": self.verb, "id": self.id,
               "elapsed": round(self.elapsed, 3), "reasons": list(self.reasons)}
        if self.detail:
            doc["detail"] = self.detail
        return doc


@dataclass
class Execution:
    plan: Plan
    policy: str = STOP_AT_FIRST_ERROR
    resume_hint: str = ""
    results: dict[str, StepResult] = field(default_factory=dict)
    errors: list[tuple[str, BaseException]] = field(default_factory=list)  # (key, error), first first
    waits: dict[str, float] = field(default_factory=dict)   # seconds each action spent waiting
    counts: dict[str, int] = field(default_factory=dict)    # what steps counted (objects, bytes)
    elapsed: float = 0.0

    @property
    def error(self) -> BaseException | None:
        return self.errors[0][1] if self.errors else None

    @property
    def failed_key(self) -> str | None:
        return self.errors[0][0] if self.errors else None

    @property
    def resources(self) -> dict[str, Observed]:
        return {k: r.observed for k, r in self.results.items() if r.observed is not None}

    @property
    def left(self) -> list[Action]:
        """Actions that did not finish, in plan order."""
        return [a for a in self.plan if a.key not in self.results]

    def remaining(self, known: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """What a failed teardown left, as the state file caches resources (``key: to_dict()``),
        limited to the keys in ``known``."""
        left = {(t.kind, t.id): t for action in self.left for t in action.targets}
        return {t.key: t.to_dict() for t in left.values() if t.key in known}

    def raise_for_error(self) -> None:
        """`up`: the first error as it was. `down`: one error saying what failed first, how many
        more did, and exactly what is left."""
        if self.error is None:
            return
        if self.policy == STOP_AT_FIRST_ERROR:
            raise self.error
        left = [f"{a.key} ({a.id})" if a.targets else a.key for a in self.left]
        message = (getattr(self.error, "message", None) or str(self.error) or type(self.error).__name__).rstrip(".")
        others = [key for key, _ in self.errors[1:]]
        if others:
            message += f" (and {len(others)} more failed: {', '.join(others)})"
        own_hint = getattr(self.error, "hint", None)
        hint = f"{own_hint.rstrip('.')}. " if own_hint else ""
        raise EfsctlError(f"{message}. Still left: {'; '.join(left) or 'nothing'}.", hint + self.resume_hint) \
            from self.error


def run_action(action: Action, ctx: StepContext, done: dict[str, Observed], steps: Mapping[str, Step] = STEPS
               ) -> Observed | str:
    """Do one action: a delete returns its detail; anything else returns the resource, ready.

    A create makes the resource with what the create call takes; a diff against the real ids
    of new dependencies then drives the update for the rest, so creating and repairing drift
    share one path, and a resource found to exist at create time is converged, not duplicated.
    """
    step = steps[action.kind]
    if action.verb == DELETE:
        return step.delete(ctx)
    desired = resolve(action.resource, lambda key, attr: done[key].attr(attr))
    observed = step.create(desired, ctx) if action.verb == CREATE else action.observed
    assert observed is not None
    observed = step.settle(desired, observed, ctx)
    if action.verb != SKIP:
        drift = diff(desired, observed)
        if drift:
            observed = step.settle(desired, step.update(desired, observed, drift, ctx), ctx)
    return observed


Runner = Callable[[Action, StepContext, dict[str, Observed]], "Observed | str"]


def execute(plan: Plan, aws: AwsContext, names: Names, *, steps: Mapping[str, Step] = STEPS,
            policy: str = STOP_AT_FIRST_ERROR, timeout: float | None = None,
            resume_hint: str = "Run `efsctl up` again to resume; nothing is created twice.",
            clock: Clock | None = None, reporter: Reporter | None = None, workers: int = 8,
            runner: Runner | None = None) -> Execution:
    """Run every action of ``plan``, each as soon as the actions it ``depends_on`` are done.

    ``steps`` is the kind -> step table; ``policy`` what a failure means; ``timeout`` bounds the
    whole run (every wait ends by then). Never
    raises for a failed step: the :class:`Execution` holds the errors and every result finished
    before them. Ctrl-C (anything not an ``Exception``) cancels the waits and starts nothing new.
    """
    clock = clock or Clock()
    reporter = reporter or NullReporter()
    runner = runner or (lambda action, ctx, done: run_action(action, ctx, done, steps))
    cancelled = threading.Event()
    step_clock = CancellableClock(clock, cancelled)
    actions = {a.key: a for a in plan.actions}
    waiting_on = {a.key: {d for d in a.depends_on if d in actions} for a in plan.actions}
    done: dict[str, Observed] = {}
    execution = Execution(plan, policy, resume_hint)
    start = clock.now()
    deadline = start + timeout if timeout is not None else math.inf
    submitted: dict[str, float] = {}
    lock = threading.Lock()

    def run(action: Action) -> StepResult:
        began = clock.now()
        reporter.step_started(action)
        ctx = StepContext(aws=aws, names=names, clock=step_clock, action=action, observed=plan.observed,
                          deadline=deadline, hint=resume_hint,
                          progress=lambda what, elapsed, detail: reporter.waiting(action.key, what, elapsed, detail))
        try:
            outcome = runner(action, ctx, done)
        finally:
            with lock:
                for key, seconds in ctx.waits.items():
                    execution.waits[key] = round(execution.waits.get(key, 0.0) + seconds, 3)
                for name, count in ctx.counts.items():
                    execution.counts[name] = execution.counts.get(name, 0) + count
        observed_now, detail = (None, outcome) if isinstance(outcome, str) else (outcome, "")
        return StepResult(action.key, action.kind, action.verb, observed_now, clock.now() - began, action.reasons,
                          began - start, detail, action.targets)

    def inline(key: str) -> StepResult | None:
        action = actions[key]
        if action.verb == SKIP and action.observed is not None and (
                action.kind not in steps or steps[action.kind].ready(action.observed)):
            # Nothing to change or wait for: no thread, no call.
            return StepResult(key, action.kind, SKIP, action.observed, 0.0, action.reasons, clock.now() - start)
        submitted[key] = clock.now()
        return None

    def finish(key: str, result: StepResult) -> None:
        if result.observed is not None:
            done[key] = result.observed
        execution.results[key] = result
        reporter.step_finished(result)

    def fail(key: str, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            return
        if policy == STOP_AT_FIRST_ERROR and execution.errors:
            return
        execution.errors.append((key, error))
        reporter.step_failed(key, error, clock.now() - submitted.get(key, start))
        if policy == STOP_AT_FIRST_ERROR or not isinstance(error, Exception):
            cancelled.set()

    waiting_on = run_graph(waiting_on, run=lambda key: run(actions[key]), finish=finish, fail=fail,
                           cancelled=cancelled, inline=inline, workers=workers, thread_name="efsctl-step")
    if not execution.errors and waiting_on:
        execution.errors.append(("", RuntimeError(f"plan has unsatisfiable dependencies: {sorted(waiting_on)}")))
    execution.elapsed = clock.now() - start
    return execution


__all__ = ["Execution", "HOLD_BACK_DEPENDENTS", "NullReporter", "Reporter", "Runner", "STOP_AT_FIRST_ERROR",
           "StepResult", "execute", "run_action"]
