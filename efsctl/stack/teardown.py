"""Teardown (`efsctl down`): observe what the stack has, plan the deletions, run them.

The plan is the same :class:`~efsctl.stack.plan.Plan` `up` runs, with ``delete`` actions, and
the same executor runs it with the other failure policy (hold back only what depends on a
failure). The order is the model's dependency graph walked backwards (a resource goes only
after every resource that needs it), plus the steps AWS requires that the model does not show
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

:func:`plan_teardown` is pure; :func:`teardown` observes, plans and runs.
"""

from __future__ import annotations

from typing import Any, Mapping

from efsctl.aws import s3
from efsctl.aws.session import AwsContext
from efsctl.stack.execute import HOLD_BACK_DEPENDENTS, Execution, Reporter, execute
from efsctl.stack.model import FUNCTIONS, KEYS, StackConfig, desired_stack
from efsctl.stack.observe import network_scope, observe_for_teardown
from efsctl.stack.observed import Observed, ObservedState
from efsctl.stack.plan import DELETE, Action, Plan
from efsctl.stack.steps import STEPS, Step
from efsctl.waits import Clock

DEFAULT_TIMEOUT = 30 * 60.0  # AWS documents up to 20 minutes for Lambda's ENIs; reports of more
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


def plan_teardown(observed: ObservedState, *, keep_bucket: bool = False) -> Plan:
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
    actions = tuple(Action(key, graph[key][0], DELETE, depends_on=tuple(sorted(deps[key])),
                           targets=tuple(targets[key])) for key in deletion_order(deps))
    return Plan(actions, kept=tuple(kept), observed=observed)


def resources(plan: Plan) -> list[Observed]:
    """What a teardown plan deletes (each resource once, in DESIGN order, duplicates last)."""
    seen: dict[tuple[str, str], Observed] = {}
    for action in plan:
        for target in action.targets:
            seen.setdefault((target.kind, target.id), target)
    observed = plan.observed or ObservedState("", "", "")
    order = {o.id: i for i, o in enumerate(observed.ordered() + observed.duplicates)}
    return sorted(seen.values(), key=lambda o: order.get(o.id, len(order)))


# --- the pipeline ----------------------------------------------------------------------------

def prepare(aws: AwsContext, stack: str, *, keep_bucket: bool = False, account: str | None = None) -> Plan:
    """Observe (describe calls only) and plan."""
    return plan_teardown(observe_for_teardown(aws, stack, account=account), keep_bucket=keep_bucket)


def run_teardown(plan: Plan, aws: AwsContext, *, timeout: float = DEFAULT_TIMEOUT, clock: Clock | None = None,
                 reporter: Reporter | None = None, steps: Mapping[str, Step] = STEPS, workers: int = 8) -> Execution:
    """Run a teardown plan within ``timeout`` seconds. A failed action holds back only what
    depends on it; ``execution.raise_for_error()`` says what failed and what is left."""
    assert plan.observed is not None, "a teardown plan is made from an observation"
    return execute(plan, aws, plan.observed.names, steps=steps, policy=HOLD_BACK_DEPENDENTS, timeout=timeout,
                   resume_hint=RESUME_HINT, clock=clock, reporter=reporter, workers=workers)


def teardown(aws: AwsContext, stack: str, *, keep_bucket: bool = False, timeout: float = DEFAULT_TIMEOUT,
             clock: Clock | None = None, reporter: Reporter | None = None) -> Execution:
    """Delete everything the stack owns in the context's account and region. A failure does
    not raise here: call ``execution.raise_for_error()``."""
    return run_teardown(prepare(aws, stack, keep_bucket=keep_bucket), aws, timeout=timeout, clock=clock,
                        reporter=reporter)


def summary(execution: Execution) -> dict[str, Any]:
    """The ``--json`` document's body: what was deleted, how long each wait took."""
    results = sorted(execution.results.values(), key=lambda r: r.started)
    deleted = [{"key": t.key, "kind": t.kind, "id": t.id} for r in results for t in r.targets
               if r.kind not in ("detach", "sg-rule")]
    steps = [{"step": r.key, "detail": r.detail, "started": round(r.started, 3),
              "finished": round(r.started + r.elapsed, 3), "seconds": round(r.elapsed, 3)} for r in results]
    return {"deleted": deleted, "kept": [{"key": k.key, "kind": k.kind, "id": k.id} for k in execution.plan.kept],
            "steps": steps, "waits": {k: round(v, 3) for k, v in sorted(execution.waits.items())},
            "objects_deleted": execution.counts.get("objects", 0), "bytes_deleted": execution.counts.get("bytes", 0),
            "left": [a.key for a in execution.left], "seconds": round(execution.elapsed, 3)}


def bucket_contents(aws: AwsContext, plan: Plan) -> tuple[int, int] | None:
    """``(object versions, bytes)`` in the bucket the plan deletes; ``None`` if it deletes none."""
    bucket = plan.get("bucket") if "bucket" in plan else None
    return s3.bucket_contents(aws, bucket.targets[0].id) if bucket and bucket.targets else None


__all__ = ["DEFAULT_TIMEOUT", "ENI_TASK", "RESUME_HINT", "bucket_contents", "deletion_order", "plan_teardown",
           "prepare", "resources", "run_teardown", "summary", "teardown", "teardown_graph"]
