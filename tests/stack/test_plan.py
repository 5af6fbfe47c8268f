"""The planner as a pure function: desired + an in-memory observed state -> actions. No AWS."""

from __future__ import annotations

import json

import pytest

from efsctl.stack.model import KEYS, StackConfig, TAG_REGION, desired_stack, resolve
from efsctl.stack.observed import Observed, ObservedState
from efsctl.stack.plan import plan

CONFIG = StackConfig(stack="demo", region="eu-west-1", account="111122223333", code=b"zip", code_sha256="SHA",
                     zones=("eu-west-1a", "eu-west-1b"))


def _attrs(d) -> dict:
    """What observation reports for a resource that matches ``d`` (refs resolved)."""
    kind = d.kind
    if kind == "vpc":
        return {"cidr": d.cidr, "dns_support": True, "dns_hostnames": True}
    if kind == "subnet":
        return {"vpc": d.vpc, "cidr": d.cidr, "zone": d.zone, "map_public_ip": False}
    if kind == "route-table":
        return {"vpc": d.vpc, "associations": {s: f"rtbassoc-{s}" for s in d.subnets}}
    if kind == "vpc-endpoint":
        return {"vpc": d.vpc, "service_name": d.service_name, "route_tables": sorted(d.route_tables)}
    if kind == "security-group":
        return {"vpc": d.vpc, "group_name": d.group_name, "egress": [], "ingress": [
            {"rule_id": f"sgr-{i}", "protocol": r.protocol, "from_port": r.port, "to_port": r.port,
             "source_group": r.source_group, "cidr_v4": None, "cidr_v6": None, "prefix_list": None}
            for i, r in enumerate(d.ingress)]}
    if kind == "efs":
        return {"encrypted": True, "throughput_mode": d.throughput_mode, "performance_mode": d.performance_mode}
    if kind == "mount-target":
        return {"file_system": d.file_system, "subnet": d.subnet, "security_groups": sorted(d.security_groups)}
    if kind == "access-point":
        return {"file_system": d.file_system, "posix_user": d.posix_user, "root_directory": d.root_directory}
    if kind == "bucket":
        return {"public_access_block": dict(d.public_access_block), "encryption": "AES256", "policy": d.policy}
    if kind == "role":
        return {"trust": d.trust, "policy": d.policy, "inline_policies": [d.policy_name], "attached_policies": []}
    if kind == "log-group":
        return {"retention_days": d.retention_days}
    if kind == "function":
        return {"role": d.role, "handler": d.handler, "runtime": d.runtime, "architecture": d.architecture,
                "memory": d.memory, "timeout": d.timeout, "code_sha256": d.code_sha256,
                "environment": dict(d.environment), "subnets": sorted(d.subnets),
                "security_groups": sorted(d.security_groups), "vpc_id": "vpc-123abc", "file_systems": None,
                "last_update_status": "Successful", "state_reason": ""}
    if kind == "permission":
        return {"function": d.function, "principal": d.principal, "source_arn": d.source_arn,
                "source_account": d.source_account}
    if kind == "bucket-notification":
        return {"function": d.function, "events": sorted(d.events), "prefix": d.prefix, "config_id": d.config_id}
    if kind == "http-api":
        return {"protocol": "HTTP"}
    if kind == "api-integration":
        return {"api": d.api, "function": d.function, "type": "AWS_PROXY", "payload_version": d.payload_version,
                "timeout_ms": d.timeout_ms}
    if kind == "api-routes":
        return {"api": d.api, "routes": {k: {"id": f"r-{i}", "target": d.target, "authorization": d.authorization}
                                         for i, k in enumerate(d.route_keys)}}
    if kind == "api-stage":
        return {"api": d.api, "auto_deploy": d.auto_deploy}
    raise AssertionError(kind)


def in_sync(config: StackConfig = CONFIG, without: tuple[str, ...] = ()) -> ObservedState:
    """An observed state in which every resource (but ``without``) matches the desired stack."""
    desired = desired_stack(config)
    ids = {r.key: f"id-{r.key}" for r in desired}
    names = {r.key: getattr(r, "name", None) or ids[r.key] for r in desired}
    values = {"id": ids, "arn": {k: f"arn:{k}" for k in ids}, "name": names}
    state = ObservedState(config.stack, config.region, config.account, zones=config.zones)
    for resource in desired:
        if resource.key in without:
            continue
        d = resolve(resource, lambda key, attr: values[attr][key])
        state.add(Observed(d.key, d.kind, ids[d.key], arn=f"arn:{d.key}", name=names[d.key],
                           state="Active" if d.kind == "function" else "available", attrs=_attrs(d),
                           tags=dict(d.tags)))
    return state


def verbs(the_plan) -> dict[str, str]:
    return {a.key: a.verb for a in the_plan if a.verb != "skip"}


def test_nothing_observed_means_create_everything_dependencies_first():
    the_plan = plan(desired_stack(CONFIG), ObservedState("demo", "eu-west-1", "111122223333", zones=CONFIG.zones))
    assert sorted(a.key for a in the_plan) == sorted(KEYS)
    assert {a.verb for a in the_plan} == {"create"}
    seen: set[str] = set()
    for action in the_plan:
        assert set(action.depends_on) <= seen, action.key
        seen.add(action.key)
    order = [a.key for a in the_plan]
    for which in ("producer", "consumer"):
        fn = order.index(f"fn-{which}")
        assert max(order.index(k) for k in (f"log-{which}", "mt-a", "mt-b", f"role-{which}", "access-point")) < fn
    assert order.index("s3-permission") < order.index("s3-notification")
    assert order.index("fn-consumer") < order.index("api-integration") < order.index("api-routes")
    assert not the_plan.blockers
    json.dumps(the_plan.to_dict())


def test_everything_in_sync_means_skip_everything():
    the_plan = plan(desired_stack(CONFIG), in_sync())
    assert verbs(the_plan) == {}
    assert the_plan.counts() == {"create": 0, "update": 0, "skip": len(KEYS)}
    assert not the_plan.warnings and not the_plan.blockers


def test_changed_memory_updates_only_that_function():
    observed = in_sync()
    observed.get("fn-producer").attrs["memory"] = 512
    the_plan = plan(desired_stack(CONFIG), observed)
    assert verbs(the_plan) == {"fn-producer": "update"}
    assert the_plan.get("fn-producer").reasons == ("memory: 512 -> 2048",)


def test_changed_code_is_an_update_by_sha():
    observed = in_sync()
    observed.get("fn-consumer").attrs["code_sha256"] = "OLD"
    assert verbs(plan(desired_stack(CONFIG), observed)) == {"fn-consumer": "update"}


def test_a_new_dependency_makes_its_dependents_point_at_it():
    the_plan = plan(desired_stack(CONFIG), in_sync(without=("sg-lambda",)))
    assert verbs(the_plan) == {"sg-lambda": "create", "sg-efs": "update", "fn-producer": "update",
                               "fn-consumer": "update"}
    assert the_plan.get("sg-efs").reasons == ("allow inbound tcp/2049 from <sg-lambda once created>",
                                              "revoke inbound tcp/2049 from id-sg-lambda")


def test_missing_and_extra_inbound_rules():
    observed = in_sync()
    group = observed.get("sg-efs")
    group.attrs["ingress"] = [{"rule_id": "sgr-open", "protocol": "tcp", "from_port": 2049, "to_port": 2049,
                               "source_group": None, "cidr_v4": "0.0.0.0/0", "cidr_v6": None, "prefix_list": None}]
    the_plan = plan(desired_stack(CONFIG), observed)
    assert verbs(the_plan) == {"sg-efs": "update"}
    assert the_plan.get("sg-efs").reasons == ("allow inbound tcp/2049 from id-sg-lambda",
                                              "revoke inbound tcp/2049 from 0.0.0.0/0")


def test_file_system_config_is_compared_only_when_reported():
    observed = in_sync()
    function = observed.get("fn-producer")
    function.attrs["file_systems"] = None  # moto: not reported at all
    assert verbs(plan(desired_stack(CONFIG), observed)) == {}
    function.attrs["file_systems"] = [{"arn": "arn:access-point", "mount_path": "/mnt/efs"}]
    assert verbs(plan(desired_stack(CONFIG), observed)) == {}
    function.attrs["file_systems"] = []  # AWS: reported, and nothing mounted
    assert verbs(plan(desired_stack(CONFIG), observed)) == {"fn-producer": "update"}


def test_removed_notification_route_and_extra_route():
    observed = in_sync(without=("s3-notification",))
    routes = observed.get("api-routes").attrs["routes"]
    del routes["GET /models"]
    routes["$default"] = {"id": "r-open", "target": "integrations/x", "authorization": "NONE"}
    the_plan = plan(desired_stack(CONFIG), observed)
    assert verbs(the_plan) == {"s3-notification": "create", "api-routes": "update"}
    assert the_plan.get("api-routes").reasons == ("add route GET /models", "remove unexpected route $default")


def test_a_route_without_iam_auth_is_updated():
    observed = in_sync()
    observed.get("api-routes").attrs["routes"]["POST /predict"]["authorization"] = "NONE"
    assert verbs(plan(desired_stack(CONFIG), observed)) == {"api-routes": "update"}


def test_missing_tags_are_added():
    observed = in_sync()
    observed.get("vpc").tags.clear()
    the_plan = plan(desired_stack(CONFIG), observed)
    assert verbs(the_plan) == {"vpc": "update"}
    assert the_plan.get("vpc").reasons == ("tags to add: efsctl:resource, efsctl:stack",)


def test_bucket_without_encryption_or_tls_policy_is_updated_but_kms_is_kept():
    observed = in_sync()
    bucket = observed.get("bucket")
    bucket.attrs["encryption"] = "aws:kms"
    assert verbs(plan(desired_stack(CONFIG), observed)) == {}
    bucket.attrs.update(encryption=None, policy={"Version": "2012-10-17", "Statement": []})
    assert plan(desired_stack(CONFIG), observed).get("bucket").reasons == (
        "default encryption: none -> AES256", "bucket policy: deny requests without TLS")


def test_fewer_than_two_zones_blocks_creating_subnets():
    config = StackConfig(stack="demo", region="eu-west-1", account="111122223333", zones=("eu-west-1a",))
    empty = ObservedState("demo", "eu-west-1", "111122223333", zones=("eu-west-1a",))
    blockers = plan(desired_stack(config), empty).blockers
    assert blockers == ("Region eu-west-1 has fewer than two usable Availability Zones (found 1); the stack needs "
                        "two for its subnets. Pick another region with --region.",)
    # Existing subnets do not care how many zones the region offers today.
    assert not plan(desired_stack(config), in_sync(config)).blockers


def test_foreign_bucket_and_role_of_another_region_block():
    observed = in_sync()
    observed.add(Observed("bucket", "bucket", "efsctl-demo-111122223333-eu-west-1", state="foreign"))
    observed.get("role-producer").tags[TAG_REGION] = "us-east-1"
    blockers = plan(desired_stack(CONFIG), observed).blockers
    assert blockers[0] == "The bucket name efsctl-demo-111122223333-eu-west-1 belongs to another AWS account."
    assert blockers[1].startswith("The IAM role efsctl-demo-producer belongs to the same stack name in us-east-1")


def test_immutable_differences_are_warnings_not_updates():
    observed = in_sync()
    observed.get("vpc").attrs["cidr"] = "10.0.0.0/16"
    observed.get("efs").attrs["encrypted"] = False
    the_plan = plan(desired_stack(CONFIG), observed)
    assert verbs(the_plan) == {}
    assert the_plan.warnings[0].startswith("vpc: the VPC uses 10.0.0.0/16, not 10.42.0.0/16")
    assert the_plan.warnings[1].startswith("efs: the file system is not encrypted")


@pytest.mark.parametrize("key,state", [("efs", "creating"), ("mt-a", "creating"), ("fn-producer", "Pending")])
def test_resources_still_settling_are_kept_and_waited_for(key, state):
    observed = in_sync()
    observed.get(key).state = state
    action = plan(desired_stack(CONFIG), observed).get(key)
    assert action.verb == "skip"
    assert action.reasons == (f"{state}: up waits until it is ready",)


def test_a_failed_function_is_updated_to_make_lambda_retry():
    observed = in_sync()
    observed.get("fn-consumer").state = "Failed"
    observed.get("fn-consumer").attrs["state_reason"] = "The role is not allowed to create ENIs"
    action = plan(desired_stack(CONFIG), observed).get("fn-consumer")
    assert action.verb == "update"
    assert action.reasons == ("Failed (The role is not allowed to create ENIs): apply the configuration again",)


def test_resource_being_deleted_blocks():
    observed = in_sync()
    observed.get("efs").state = "deleting"
    assert plan(desired_stack(CONFIG), observed).blockers[0].startswith("efs id-efs is still being deleted")
