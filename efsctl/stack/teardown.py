"""Teardown (`efsctl down`): observe what the stack has, plan the deletions as a graph, run them.

The order is the model's dependency graph walked backwards (a resource goes only after every
resource that needs it), plus the steps AWS requires that the model does not show
(DESIGN section 3, AWS-RULES "Teardown order that works"):

- each function is first detached from its VPC (and file system), so Lambda starts releasing
  its network interfaces as early as possible; ``lambda-enis`` then waits until no
  ``AWS Lambda VPC ENI*`` of the stack is left (deleting any left ``available``), and the roles,
  the Lambda security group and the subnets wait for it (Lambda deletes the ENIs with the
  function's role; until they are gone, EC2 answers ``DependencyViolation``);
- ``sg-efs:ingress`` revokes the NFS rule, so the Lambda security group no longer waits for the
  EFS one;
- integration, routes and stage go with the HTTP API.

Everything not blocked runs concurrently while the ENIs drain (API, file system chain, bucket,
log groups once the functions are gone), so the wall time approaches the ENI release time.
Every deletion treats "already gone" as done, and nothing is read from the state file: a
re-run after a crash (of `up` or `down`) observes what is left and finishes the job.

:func:`plan_teardown` is pure; :func:`run_teardown` is the one place that deletes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, TypeVar

from efsctl.aws import s3
from efsctl.aws.session import AwsContext
from efsctl.errors import EfsctlError
from efsctl.stack.graph import CancellableClock, run_graph
from efsctl.stack.model import FUNCTIONS, KEYS, StackConfig, desired_stack
from efsctl.stack.observe import Observed, ObservedState, network_scope, observe_for_teardown
from efsctl.stack.steps import Cancelled
from efsctl.waits import Clock, Outcome, Poll, retry, wait_until

T = TypeVar("T")

DEFAULT_TIMEOUT = 30 * 60.0  # AWS documents up to 20 minutes for Lambda's ENIs; reports of more
# Small floor and fraction: something gone after t seconds is noticed by about t * 1.02 + 0.1,
# so `down` ends close to the moment Lambda releases its last interface (bench/converge.py).
TEARDOWN_POLL = Poll(floor=0.1, ceiling=10.0, fraction=0.02)
RESUME_HINT = "Run `efsctl down` again to finish: it finds what is left by tag and name."

# Model keys whose resources go with another's deletion.
ABSORBED = {"api-integration": "api", "api-routes": "api", "api-stage": "api"}
# Deletion edges the model states one way and AWS needs another. The Lambda security group is
# referenced by the EFS group's NFS rule, so it waits for that rule's revocation, not the group.
# A role's policy naming the file system's ARN does not keep the file system alive (``None``:
# no wait), which keeps the file system off the ENI-bound critical path.
EDGE_OVERRIDES: dict[tuple[str, str], str | None] = {
    ("sg-lambda", "sg-efs"): "sg-efs:ingress",
    **{("efs", f"role-{which}"): None for which in FUNCTIONS},
}
# Steps that are not model resources, and what they wait for.
ENI_TASK = "lambda-enis"
ENI_GATED = ("role-producer", "role-consumer", "sg-lambda", "subnet-a", "subnet-b")


def detach_key(which: str) -> str:
    return f"fn-{which}:detach"


@dataclass
class Task:
    """One deletion step: a kind (its step function) and the resources it removes."""

    key: str
    kind: str
    targets: list[Observed] = field(default_factory=list)
    deps: set[str] = field(default_factory=set)

    @property
    def ids(self) -> str:
        return ", ".join(t.id for t in self.targets)


@dataclass
class TeardownPlan:
    observed: ObservedState
    tasks: dict[str, Task]
    kept: list[Observed] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.tasks

    def resources(self) -> list[Observed]:
        """What will be deleted (each resource once, in DESIGN order, duplicates last)."""
        seen: dict[tuple[str, str], Observed] = {}
        for task in self.tasks.values():
            for target in task.targets:
                seen.setdefault((target.kind, target.id), target)
        order = {o.id: i for i, o in enumerate(self.observed.ordered() + self.observed.duplicates)}
        return sorted(seen.values(), key=lambda o: order.get(o.id, len(order)))


# --- planning (pure) -------------------------------------------------------------------------

Graph = dict[str, tuple[str, set[str]]]
"""``{task: (kind, tasks that must finish before it starts)}``."""


def model_graph(stack: str, region: str, account: str) -> Graph:
    """The model walked backwards: each resource with its kind and the keys that depend on it
    (which must be gone before it can go)."""
    resources = desired_stack(StackConfig(stack=stack, region=region, account=account))
    graph: Graph = {r.key: (r.kind, set()) for r in resources}
    for resource in resources:
        for dep in resource.dependencies():
            graph[dep][1].add(resource.key)
    return graph


def teardown_graph(model: Graph) -> Graph:
    """Every possible task: the reverse model graph plus AWS's extra steps and edges."""
    graph: Graph = {}
    for key, (kind, users) in model.items():
        if key not in ABSORBED:
            graph[key] = (kind, {EDGE_OVERRIDES.get((key, user), ABSORBED.get(user, user)) for user in users}
                          - {key, None})
    for which in FUNCTIONS:
        graph[detach_key(which)] = ("detach", set())
        graph[f"fn-{which}"][1].add(detach_key(which))
    graph[ENI_TASK] = ("enis", {detach_key(which) for which in FUNCTIONS})
    for key in ENI_GATED:
        graph[key][1].add(ENI_TASK)
    graph["sg-efs:ingress"] = ("sg-rule", {f"fn-{which}" for which in FUNCTIONS})
    graph["sg-efs"][1].add("sg-efs:ingress")
    return graph


def _prune(graph: Graph, present: set[str]) -> dict[str, set[str]]:
    """Dependencies among the present tasks, keeping order through the absent ones."""
    memo: dict[str, set[str]] = {}

    def reach(key: str, trail: frozenset[str]) -> set[str]:
        if key in memo:
            return memo[key]
        result: set[str] = set()
        for dep in graph[key][1]:
            if dep in trail:
                raise ValueError(f"teardown cycle through {dep}")
            result |= {dep} if dep in present else reach(dep, trail | {dep})
        memo[key] = result
        return result

    return {key: reach(key, frozenset({key})) for key in present}


def deletion_order(deps: dict[str, set[str]]) -> list[str]:
    """The tasks wave by wave (each wave needs only earlier ones), DESIGN order within a wave."""
    rank = {key: i for i, key in enumerate(KEYS)}
    order: list[str] = []
    left = dict(deps)
    while left:
        wave = sorted((k for k, d in left.items() if d <= set(order)),
                      key=lambda k: (rank.get(k.split(":")[0], len(rank)), k))
        if not wave:
            raise ValueError(f"teardown cycle among {sorted(left)}")
        order += wave
        for key in wave:
            del left[key]
    return order


def _attached(function: Observed) -> bool:
    return bool(function.attrs.get("subnets") or function.attrs.get("security_groups")
                or function.attrs.get("file_systems") or function.attrs.get("last_update_status") == "InProgress"
                or function.state == "Pending")


def plan_teardown(observed: ObservedState, *, keep_bucket: bool = False) -> TeardownPlan:
    """The deletions for what ``observed`` holds. Pure: no AWS calls."""
    graph = teardown_graph(model_graph(observed.stack, observed.region, observed.account))
    targets: dict[str, list[Observed]] = {}
    kept: list[Observed] = []
    for item in observed.ordered() + observed.duplicates:
        if item.key in ABSORBED:  # integration, routes and stage go with the API
            continue
        key = item.key if item.key in graph else "efs"  # extra mount targets: swept before the file system
        if key == "bucket" and (keep_bucket or item.state == "foreign"):
            kept.append(item)
            continue
        targets.setdefault(key, []).append(item)
    efs_group = observed.get("sg-efs")
    if efs_group is not None and efs_group.attrs.get("ingress"):
        targets["sg-efs:ingress"] = [efs_group]
    for which in FUNCTIONS:
        function = observed.get(f"fn-{which}")
        if function is not None and _attached(function):
            targets[detach_key(which)] = [function]
    if observed.lambda_enis or any(network_scope(observed).values()):
        targets[ENI_TASK] = []
    deps = _prune(graph, set(targets))
    tasks = {key: Task(key, graph[key][0], targets[key], deps[key]) for key in deletion_order(deps)}
    return TeardownPlan(observed, tasks, kept)


# --- running ---------------------------------------------------------------------------------

class Reporter(Protocol):
    def task_finished(self, task: Task, detail: str, elapsed: float) -> None: ...

    def task_failed(self, task: Task, error: BaseException, elapsed: float) -> None: ...

    def waiting(self, task: Task, what: str, elapsed: float, detail: str) -> None: ...


class NullReporter:
    def task_finished(self, task: Task, detail: str, elapsed: float) -> None:
        pass

    def task_failed(self, task: Task, error: BaseException, elapsed: float) -> None:
        pass

    def waiting(self, task: Task, what: str, elapsed: float, detail: str) -> None:
        pass


@dataclass
class StepContext:
    """What a step gets: the AWS context, the observation, a clock and the overall deadline."""

    aws: AwsContext
    observed: ObservedState
    clock: Clock
    deadline: float
    task: Task
    report: Callable[[str, float, str], None]
    waits: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock.now())

    def wait(self, check: Callable[[], Outcome[T]], *, what: str, poll: Poll = TEARDOWN_POLL) -> T | None:
        """Poll ``check`` until done or the deadline; the time spent counts as this task's wait."""
        began = self.clock.now()
        try:
            return wait_until(check, what=what, timeout=self.remaining(), clock=self.clock, poll=poll,
                              progress=self.report, hint=RESUME_HINT)
        finally:
            self._waited(began)

    def retry(self, call: Callable[[], T], *, what: str, retryable: Callable[[BaseException], str | None]) -> T:
        """Run ``call``, retrying what ``retryable`` names until the deadline."""
        began = self.clock.now()
        try:
            return retry(call, what=what, retryable=retryable, timeout=self.remaining(), clock=self.clock,
                         poll=TEARDOWN_POLL, progress=self.report)
        finally:
            self._waited(began)

    def _waited(self, began: float) -> None:
        elapsed = self.clock.now() - began
        if elapsed > 0:
            self.waits[self.task.key] = self.waits.get(self.task.key, 0.0) + elapsed


@dataclass
class TaskResult:
    task: Task
    detail: str
    elapsed: float
    started: float


@dataclass
class TeardownResult:
    plan: TeardownPlan
    results: dict[str, TaskResult] = field(default_factory=dict)
    waits: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[str, BaseException]] = field(default_factory=list)  # (task, error), first first
    elapsed: float = 0.0

    @property
    def error(self) -> BaseException | None:
        return self.errors[0][1] if self.errors else None

    @property
    def failed_key(self) -> str | None:
        return self.errors[0][0] if self.errors else None

    @property
    def left(self) -> list[Task]:
        """Tasks that did not finish, in the documented order."""
        return [t for k, t in self.plan.tasks.items() if k not in self.results]

    def remaining(self) -> dict[str, dict[str, Any]]:
        """What is left, as the state file caches resources (``key: Observed.to_dict()``)."""
        left = {(t.kind, t.id): t for task in self.left for t in task.targets}
        return {t.key: t.to_dict() for t in left.values() if t.key in self.plan.observed.resources}

    def raise_for_error(self) -> None:
        """One error saying what failed first, how many more did, and exactly what is left."""
        if self.error is None:
            return
        left = [f"{t.key} ({t.ids})" if t.targets else t.key for t in self.left]
        message = (getattr(self.error, "message", None) or str(self.error) or type(self.error).__name__).rstrip(".")
        others = [key for key, _ in self.errors[1:]]
        if others:
            message += f" (and {len(others)} more failed: {', '.join(others)})"
        own_hint = getattr(self.error, "hint", None)
        if self.failed_key == ENI_TASK or getattr(self.error, "code", "") == "DependencyViolation":
            hint = "AWS releases Lambda's network interfaces asynchronously (up to 20 minutes, sometimes more). "
        else:
            hint = f"{own_hint.rstrip('.')}. " if own_hint else ""
        raise EfsctlError(f"{message}. Still left: {'; '.join(left) or 'nothing'}.", hint + RESUME_HINT) \
            from self.error


def run_teardown(plan: TeardownPlan, aws: AwsContext, *, timeout: float = DEFAULT_TIMEOUT,
                 clock: Clock | None = None, reporter: Reporter | None = None, workers: int = 8) -> TeardownResult:
    """Run every task once its dependencies are done, concurrently, until ``timeout`` seconds.

    A failed task holds back only what depends on it: everything else still goes, so a re-run
    has as little left as possible. A fatal interruption (Ctrl-C, or anything that is not an
    ``Exception``) cancels the waits still running and starts nothing new.
    """
    from efsctl.stack.teardown_steps import STEPS

    clock = clock or Clock()
    reporter = reporter or NullReporter()
    cancelled = threading.Event()
    step_clock = CancellableClock(clock, cancelled)
    start = clock.now()
    deadline = start + timeout
    result = TeardownResult(plan)
    waiting_on = {k: set(t.deps) for k, t in plan.tasks.items()}
    lock = threading.Lock()

    def run(task: Task) -> TaskResult:
        began = clock.now()
        ctx = StepContext(aws, plan.observed, step_clock, deadline, task,
                          lambda what, elapsed, detail: reporter.waiting(task, what, elapsed, detail))
        try:
            detail = STEPS[task.kind](ctx)
        finally:
            with lock:
                for what, seconds in ctx.waits.items():
                    result.waits[what] = round(result.waits.get(what, 0.0) + seconds, 3)
                for name, count in ctx.counts.items():
                    result.counts[name] = result.counts.get(name, 0) + count
        return TaskResult(task, detail, clock.now() - began, began - start)

    def finish(key: str, done: TaskResult) -> None:
        result.results[key] = done
        reporter.task_finished(done.task, done.detail, done.elapsed)

    def fail(key: str, error: BaseException) -> None:
        # Only what depends on the failed task is held back; a fatal error stops everything.
        if isinstance(error, Cancelled):
            return
        result.errors.append((key, error))
        reporter.task_failed(plan.tasks[key], error, clock.now() - start)
        if not isinstance(error, Exception):
            cancelled.set()

    waiting_on = run_graph(waiting_on, run=lambda key: run(plan.tasks[key]), finish=finish, fail=fail,
                           cancelled=cancelled, workers=workers, thread_name="efsctl-down")
    if not result.errors and waiting_on:
        result.errors.append(("", RuntimeError(f"teardown has unsatisfiable dependencies: {sorted(waiting_on)}")))
    result.elapsed = clock.now() - start
    return result


# --- the pipeline ----------------------------------------------------------------------------

def prepare(aws: AwsContext, stack: str, *, keep_bucket: bool = False, account: str | None = None) -> TeardownPlan:
    """Observe (describe calls only) and plan."""
    return plan_teardown(observe_for_teardown(aws, stack, account=account), keep_bucket=keep_bucket)


def teardown(aws: AwsContext, stack: str, *, keep_bucket: bool = False, timeout: float = DEFAULT_TIMEOUT,
             clock: Clock | None = None, reporter: Reporter | None = None) -> TeardownResult:
    """Delete everything the stack owns in the context's account and region. A failure does
    not raise here: call ``result.raise_for_error()``."""
    return run_teardown(prepare(aws, stack, keep_bucket=keep_bucket), aws, timeout=timeout, clock=clock,
                        reporter=reporter)


def summary(result: TeardownResult) -> dict[str, Any]:
    """The ``--json`` document's body: what was deleted, how long each wait took."""
    deleted = [{"key": t.key, "kind": t.kind, "id": t.id}
               for r in sorted(result.results.values(), key=lambda r: r.started)
               for t in r.task.targets if r.task.kind not in ("detach", "sg-rule")]
    steps = [{"step": r.task.key, "detail": r.detail, "started": round(r.started, 3),
              "finished": round(r.started + r.elapsed, 3), "seconds": round(r.elapsed, 3)}
             for r in sorted(result.results.values(), key=lambda r: r.started)]
    return {"deleted": deleted, "kept": [{"key": k.key, "kind": k.kind, "id": k.id} for k in result.plan.kept],
            "steps": steps, "waits": {k: round(v, 3) for k, v in sorted(result.waits.items())},
            "objects_deleted": result.counts.get("objects", 0), "bytes_deleted": result.counts.get("bytes", 0),
            "left": [t.key for t in result.left], "seconds": round(result.elapsed, 3)}


def bucket_contents(aws: AwsContext, plan: TeardownPlan) -> tuple[int, int] | None:
    """``(object versions, bytes)`` in the bucket the plan deletes; ``None`` if it deletes none."""
    bucket = plan.tasks.get("bucket")
    return s3.bucket_contents(aws, bucket.targets[0].id) if bucket and bucket.targets else None


__all__ = ["DEFAULT_TIMEOUT", "Task", "TeardownPlan", "TeardownResult", "bucket_contents", "deletion_order",
           "plan_teardown", "prepare", "run_teardown", "summary", "teardown", "teardown_graph"]
