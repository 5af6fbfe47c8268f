"""The teardown plan, pure: the reverse walk of the model's graph plus AWS's extra steps."""

from __future__ import annotations

import pytest

from efsctl.stack.model import KEYS
from efsctl.stack.observed import Observed, ObservedState
from efsctl.stack.teardown import ENI_TASK, plan_teardown, resources

KINDS = {"vpc": "vpc", "subnet-a": "subnet", "subnet-b": "subnet", "route-table": "route-table",
         "s3-endpoint": "vpc-endpoint", "sg-lambda": "security-group", "sg-efs": "security-group", "efs": "efs",
         "mt-a": "mount-target", "mt-b": "mount-target", "access-point": "access-point", "bucket": "bucket",
         "role-producer": "role", "role-consumer": "role", "log-producer": "log-group", "log-consumer": "log-group",
         "fn-producer": "function", "fn-consumer": "function", "s3-permission": "permission",
         "s3-notification": "bucket-notification", "api": "http-api", "api-integration": "api-integration",
         "api-routes": "api-routes", "api-stage": "api-stage", "api-permission": "permission"}


def observed(*, without: tuple[str, ...] = (), detached: bool = False) -> ObservedState:
    state = ObservedState(stack="s", region="us-east-1", account="123456789012")
    for key in KEYS:
        if key in without:
            continue
        attrs = {}
        if key.startswith("fn-") and not detached:
            attrs = {"subnets": ["subnet-1", "subnet-2"], "security_groups": ["sg-l"]}
        if key == "sg-efs":
            attrs = {"ingress": [{"rule_id": "sgr-1", "source_group": "sg-l"}]}
        if key == "route-table":
            attrs = {"associations": {"subnet-1": "rtbassoc-1", "subnet-2": "rtbassoc-2"}}
        if key.endswith("permission"):
            attrs = {"function": "efsctl-s-producer"}
        state.add(Observed(key, KINDS[key], f"id-{key}", attrs=attrs))
    return state


def closure(plan, key: str) -> set[str]:
    """Every task that must finish before ``key`` starts."""
    seen: set[str] = set()
    stack = list(plan.get(key).depends_on)
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.add(dep)
            stack.extend(plan.get(dep).depends_on)
    return seen


ORDER = [  # (must finish first, before this starts): DESIGN section 3 and AWS-RULES' teardown order
    ("fn-producer:detach", "fn-producer"), ("fn-consumer:detach", "fn-consumer"),
    ("fn-producer:detach", ENI_TASK), ("fn-consumer:detach", ENI_TASK),
    (ENI_TASK, "role-producer"), (ENI_TASK, "role-consumer"), ("fn-producer", "role-producer"),
    (ENI_TASK, "sg-lambda"), (ENI_TASK, "subnet-a"), (ENI_TASK, "subnet-b"),
    ("s3-notification", "fn-producer"), ("s3-permission", "fn-producer"), ("s3-notification", "s3-permission"),
    ("api-permission", "api"), ("api", "fn-consumer"), ("api-permission", "fn-consumer"),
    ("fn-producer", "access-point"), ("fn-consumer", "mt-a"), ("mt-a", "efs"), ("mt-b", "efs"), ("access-point", "efs"),
    ("fn-producer", "sg-efs:ingress"), ("sg-efs:ingress", "sg-efs"), ("sg-efs:ingress", "sg-lambda"),
    ("mt-a", "sg-efs"), ("mt-b", "subnet-b"),
    ("s3-endpoint", "route-table"), ("route-table", "subnet-a"), ("route-table", "subnet-b"),
    ("s3-endpoint", "vpc"), ("subnet-a", "vpc"), ("subnet-b", "vpc"), ("sg-lambda", "vpc"), ("sg-efs", "vpc"),
    ("s3-notification", "bucket"), ("s3-permission", "bucket"),
    ("fn-producer", "log-producer"), ("fn-consumer", "log-consumer"),
]


@pytest.mark.parametrize("first,then", ORDER, ids=[f"{a}<{b}" for a, b in ORDER])
def test_full_stack_order(first, then):
    plan = plan_teardown(observed())
    assert first in closure(plan, then)


def test_independent_work_is_not_held_behind_the_enis():
    """While Lambda releases its ENIs, the API, the file system chain, the bucket and the log
    groups proceed: none of them waits for the ENI drain."""
    plan = plan_teardown(observed())
    for key in ("api", "access-point", "mt-a", "mt-b", "efs", "sg-efs", "s3-endpoint", "route-table", "bucket",
                "log-producer", "log-consumer", "fn-producer", "fn-consumer"):
        assert ENI_TASK not in closure(plan, key), key
    assert plan.get("fn-producer:detach").depends_on == () and plan.get("fn-consumer:detach").depends_on == ()


def test_integration_routes_and_stage_go_with_the_api():
    plan = plan_teardown(observed())
    assert {"api-integration", "api-routes", "api-stage"}.isdisjoint(a.key for a in plan)
    assert [t.key for t in plan.get("api").targets] == ["api"]


def test_order_is_kept_through_resources_already_gone():
    # A crashed `down` removed the functions and what used them: the roles still wait for the
    # ENI drain; the log groups wait for nothing left.
    plan = plan_teardown(observed(without=("fn-producer", "fn-consumer", "s3-permission", "api-permission",
                                           "s3-notification", "api")))
    assert "fn-producer:detach" not in plan
    assert ENI_TASK in closure(plan, "role-producer")
    assert plan.get("log-producer").depends_on == ()
    assert closure(plan, "vpc") >= {"subnet-a", "subnet-b", ENI_TASK, "sg-lambda", "sg-efs", "route-table"}


def test_detached_functions_skip_the_detach_step():
    plan = plan_teardown(observed(detached=True))
    assert "fn-producer:detach" not in plan and "fn-producer" in plan
    assert ENI_TASK in plan


def test_keep_bucket_keeps_bucket_but_not_its_notification():
    plan = plan_teardown(observed(), keep_bucket=True)
    assert "bucket" not in plan and [k.key for k in plan.kept] == ["bucket"]
    assert {"s3-notification", "s3-permission"} <= {a.key for a in plan}


def test_a_bucket_owned_by_another_account_is_never_touched():
    state = observed(without=("bucket",))
    state.add(Observed("bucket", "bucket", "efsctl-s-123456789012-us-east-1", state="foreign"))
    plan = plan_teardown(state)
    assert "bucket" not in plan and plan.kept[0].state == "foreign"


def test_duplicates_are_deleted_with_their_key_and_extra_mount_targets_before_the_file_system():
    state = observed()
    state.duplicates += [Observed("subnet-a", "subnet", "subnet-dup"), Observed("mt", "mount-target", "fsmt-dup")]
    plan = plan_teardown(state)
    assert [t.id for t in plan.get("subnet-a").targets] == ["id-subnet-a", "subnet-dup"]
    assert "fsmt-dup" in [t.id for t in plan.get("efs").targets]


def test_nothing_observed_plans_nothing():
    plan = plan_teardown(ObservedState(stack="s", region="us-east-1", account="123456789012"))
    assert plan.empty and resources(plan) == []


def test_resources_lists_each_resource_once_in_design_order():
    keys = [r.key for r in resources(plan_teardown(observed()))]
    assert keys == [k for k in KEYS if k not in ("api-integration", "api-routes", "api-stage")]


def test_enis_are_looked_for_by_vpc_and_only_outside_it_by_group_or_subnet():
    from efsctl.stack.observe import network_scope

    state = ObservedState(stack="s", region="us-east-1", account="123456789012")
    state.add(Observed("vpc", "vpc", "vpc-1"))
    state.add(Observed("subnet-a", "subnet", "subnet-1", attrs={"vpc": "vpc-1"}))
    state.add(Observed("sg-lambda", "security-group", "sg-1", attrs={"vpc": "vpc-1"}))
    state.add(Observed("fn-producer", "function", "f", attrs={"subnets": ["subnet-1", "subnet-9"],
                                                               "security_groups": ["sg-1"]}))
    state.duplicates.append(Observed("sg-efs", "security-group", "sg-2", attrs={"vpc": "vpc-gone"}))
    assert network_scope(state) == {"vpc_ids": ["vpc-1"], "group_ids": ["sg-2"], "subnet_ids": ["subnet-9"]}
