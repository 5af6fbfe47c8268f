"""Observe what the stack has on AWS: describe/list calls only, never a mutation.

Resources are found by their ``efsctl:stack``/``efsctl:resource`` tags (EC2, EFS access points,
HTTP API) or by deterministic name (IAM roles, functions, log groups, the bucket, the EFS
``CreationToken``), never through the state file. Each is normalised into an
:class:`Observed` whose ``attrs`` hold what the planner compares. Extra copies carrying our tags
(which a correct ``up`` never makes, but a person might) land in ``duplicates`` so ``down`` can
remove them too; Lambda's VPC ENIs are listed for ``down`` to wait on.

Groups of calls (network, EFS, IAM, Lambda, logs, S3, API) run concurrently.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from efsctl.aws import apigw, ec2, efs, iam, lambda_, logs, s3
from efsctl.aws.session import AwsContext
from efsctl.aws.tags import tag_dict
from efsctl.stack.model import (API_STATEMENT_ID, FUNCTIONS, NOTIFICATION_ID, S3_STATEMENT_ID, TAG_RESOURCE, TAG_STACK,
                                Names)
from efsctl.stack.observed import (Observed, ObservedState, access_point_observed, api_observed, bucket_observed,
                                   endpoint_observed, file_system_observed, function_observed, integration_observed,
                                   log_group_observed, mount_target_observed, notification_observed,
                                   permission_observed, role_observed, route_table_observed, routes_observed,
                                   security_group_observed, stage_observed, subnet_observed, vpc_observed)


def _stack_tags(names: Names, key: str | None = None) -> dict[str, str]:
    tags = {TAG_STACK: names.stack}
    if key:
        tags[TAG_RESOURCE] = key
    return tags


def _pick(candidates: list[dict[str, Any]], id_field: str, prefer: Callable[[dict[str, Any]], bool] = lambda _: True
          ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The one to use (preferred first, then lowest id: deterministic) and the rest."""
    ranked = sorted(candidates, key=lambda c: (not prefer(c), c[id_field]))
    return (ranked[0], ranked[1:]) if ranked else (None, [])


# --- network -------------------------------------------------------------------------------

def _by_resource_key(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        grouped.setdefault(tag_dict(item.get("Tags")).get(TAG_RESOURCE, ""), []).append(item)
    return grouped


def _keep(state: ObservedState, items: list[dict[str, Any]], id_field: str, build: Callable[[dict[str, Any]], Observed],
          prefer: Callable[[dict[str, Any]], bool] = lambda _: True) -> None:
    """Record the item to use as the resource and any others as duplicates."""
    chosen, extra = _pick(items, id_field, prefer)
    if chosen is not None:
        state.add(build(chosen))
    state.duplicates.extend(build(item) for item in extra)


def observe_network(aws: AwsContext, names: Names, state: ObservedState, detail: bool = True) -> None:
    if detail:
        state.zones = tuple(ec2.usable_zones(aws))
    vpcs = ec2.find_vpcs(aws, _stack_tags(names, "vpc"))
    vpc_id = _pick(vpcs, "VpcId")[0]["VpcId"] if vpcs else None
    dns = ec2.vpc_dns(aws, vpc_id) if vpc_id and detail else None
    _keep(state, vpcs, "VpcId", lambda v: vpc_observed(v, dns if v["VpcId"] == vpc_id else None))

    def in_vpc(item: dict[str, Any]) -> bool:
        return item.get("VpcId") == vpc_id

    subnets = _by_resource_key(ec2.find_subnets(aws, _stack_tags(names)))
    for key in ("subnet-a", "subnet-b"):
        _keep(state, subnets.get(key, []), "SubnetId", lambda item, key=key: subnet_observed(key, item), in_vpc)
    tables = ec2.find_route_tables(aws, _stack_tags(names, "route-table"))
    _keep(state, tables, "RouteTableId", route_table_observed, in_vpc)
    groups = _by_resource_key(ec2.find_security_groups(aws, _stack_tags(names)))
    rules: dict[str, list[dict[str, Any]]] = {}
    group_ids = [g["GroupId"] for key in ("sg-lambda", "sg-efs") for g in groups.get(key, [])]
    for rule in ec2.security_group_rules(aws, group_ids):
        rules.setdefault(rule["GroupId"], []).append(rule)
    for key in ("sg-lambda", "sg-efs"):
        _keep(state, groups.get(key, []), "GroupId",
              lambda item, key=key: security_group_observed(key, item, rules.get(item["GroupId"], [])), in_vpc)
    if vpc_id:
        # Found by VPC and service (the tagging API misses endpoints): ours is the tagged one.
        _keep(state, ec2.find_vpc_endpoints(aws, vpc_id, names.s3_service), "VpcEndpointId", endpoint_observed,
              lambda e: tag_dict(e.get("Tags")).get(TAG_STACK) == names.stack)
        state.lambda_enis = ec2.lambda_enis(aws, vpc_id)


# --- EFS -----------------------------------------------------------------------------------

def observe_efs(aws: AwsContext, names: Names, state: ObservedState, detail: bool = True) -> list[Observed]:
    """The file system and access point; returns the mount targets for :func:`_assign_mount_targets`."""
    fs = efs.find_file_system(aws, names.creation_token)
    if not fs:
        return []
    fs_id = fs["FileSystemId"]
    state.add(file_system_observed(fs))
    _keep(state, efs.access_points(aws, fs_id), "AccessPointId", access_point_observed,
          lambda p: tag_dict(p.get("Tags")).get(TAG_RESOURCE) == "access-point")
    return [mount_target_observed(item, efs.mount_target_security_groups(aws, item["MountTargetId"]) if detail else [])
            for item in efs.mount_targets(aws, fs_id)]


def _assign_mount_targets(state: ObservedState, targets: list[Observed]) -> None:
    by_subnet = {state.resources[k].id: k for k in ("subnet-a", "subnet-b") if k in state.resources}
    for target in targets:
        subnet_key = by_subnet.get(target.attrs["subnet"])
        if subnet_key and f"mt-{subnet_key[-1]}" not in state.resources:
            target.key = f"mt-{subnet_key[-1]}"
            state.add(target)
        else:
            state.duplicates.append(target)


# --- IAM, Lambda, logs -----------------------------------------------------------------------

def observe_roles(aws: AwsContext, names: Names, state: ObservedState, detail: bool = True) -> None:
    for which in FUNCTIONS:
        role = iam.get_role(aws, names.role(which))
        if role is None:
            continue
        if not detail:
            state.add(role_observed(f"role-{which}", role, policy=None))
            continue
        inline = iam.inline_policy_names(aws, role["RoleName"])
        policy = iam.get_inline_policy(aws, role["RoleName"], "efsctl") if "efsctl" in inline else None
        state.add(role_observed(f"role-{which}", role, policy=policy, inline_policies=inline,
                                attached_policies=iam.attached_policy_arns(aws, role["RoleName"])))


def observe_functions(aws: AwsContext, names: Names, state: ObservedState, detail: bool = True) -> None:
    permission_keys = {"producer": ("s3-permission", S3_STATEMENT_ID), "consumer": ("api-permission", API_STATEMENT_ID)}
    for which in FUNCTIONS:
        found = lambda_.get_function(aws, names.function(which))
        if found is None:
            continue
        config = found["Configuration"]
        state.add(function_observed(f"fn-{which}", config, found["Tags"]))
        key, sid = permission_keys[which]
        statements = lambda_.policy_statements(aws, names.function(which))
        for statement in statements:
            if statement.get("Sid") == sid:
                state.add(permission_observed(key, config["FunctionName"], statement))


def observe_log_groups(aws: AwsContext, names: Names, state: ObservedState, detail: bool = True) -> None:
    for which in FUNCTIONS:
        group = logs.get_log_group(aws, names.log_group(which), tags=detail)
        if group is None:
            continue
        state.add(log_group_observed(f"log-{which}", group))


# --- S3 and the API --------------------------------------------------------------------------

def observe_bucket(aws: AwsContext, names: Names, state: ObservedState, detail: bool = True) -> None:
    status = s3.bucket_status(aws, names.bucket)
    if status == s3.MISSING:
        return
    if status == s3.FOREIGN:
        state.add(Observed("bucket", "bucket", names.bucket, name=names.bucket, state="foreign"))
        return
    if detail:
        state.add(bucket_observed(names, tags=s3.bucket_tags(aws, names.bucket),
                                  public_access_block=s3.public_access_block(aws, names.bucket),
                                  encryption=s3.default_encryption(aws, names.bucket),
                                  policy=s3.bucket_policy(aws, names.bucket)))
    else:
        state.add(bucket_observed(names, tags={}, public_access_block=None, encryption=None, policy=None))
    notification = s3.notification_configuration(aws, names.bucket)
    producer_arn = names.function_arn("producer")
    for config in notification.get("LambdaFunctionConfigurations", []):
        if config.get("Id") == NOTIFICATION_ID or config.get("LambdaFunctionArn") == producer_arn:
            state.add(notification_observed(config, NOTIFICATION_ID))
            break


def observe_api(aws: AwsContext, names: Names, state: ObservedState, detail: bool = True) -> None:
    apis = apigw.find_apis(aws, _stack_tags(names, "api"))
    _keep(state, apis, "ApiId", lambda a: api_observed(a, apigw.api_arn(state.region, a["ApiId"], names.partition)))
    if "api" not in state or not detail:   # its integration, routes and stage go with it
        return
    api_id = state.resources["api"].id
    routes = apigw.routes(aws, api_id)
    targets = {str(r.get("Target", "")).removeprefix("integrations/") for r in routes}
    consumer_arn = names.function_arn("consumer")
    _keep(state, apigw.integrations(aws, api_id), "IntegrationId", lambda i: integration_observed(i, api_id),
          lambda i: i.get("IntegrationUri") == consumer_arn or i["IntegrationId"] in targets)
    if routes:
        state.add(routes_observed(api_id, routes))
    for stage in apigw.stages(aws, api_id):
        if stage.get("StageName") == "$default":
            state.add(stage_observed(stage, api_id, apigw.stage_arn(state.region, api_id, "$default", names.partition)))


# --- everything ------------------------------------------------------------------------------

def observe(aws: AwsContext, stack: str, *, account: str | None = None, workers: int = 7,
            detail: bool = True) -> ObservedState:
    """Everything the stack has in the context's account and region. ``detail=False`` finds the
    same resources without what only drift needs (DNS attributes, policies, bucket settings, tags,
    mount targets' security groups, the API's routes, the region's zones): a teardown deletes them
    whatever they hold, and those reads are a good part of its observation."""
    account = account or aws.account_id()
    state = ObservedState(stack=stack, region=aws.region, account=account)
    names = state.names
    groups = [observe_network, observe_efs, observe_roles, observe_functions, observe_log_groups, observe_bucket,
              observe_api]
    # Each group writes distinct keys; dict assignment is atomic under the GIL.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="efsctl-observe") as pool:
        futures = {group: pool.submit(group, aws, names, state, detail) for group in groups}
        results = {group: future.result() for group, future in futures.items()}
    _assign_mount_targets(state, results[observe_efs] or [])
    return state


# --- teardown (`efsctl down`) ----------------------------------------------------------------
# `down` needs a little more than `up`: Lambda's ENIs wherever the stack's network reaches
# (a half-deleted stack may have lost its VPC, functions or subnets), and endpoints in any extra
# VPC carrying our tags (or that VPC could never be deleted).

def network_scope(state: ObservedState) -> dict[str, list[str]]:
    """Where Lambda's ENIs for this stack can live: the stack's VPCs, plus the security groups
    and subnets (its own, and those the functions still name) that are not inside one of them.
    Usually just the VPC, so one describe call per look."""
    everything = state.ordered() + state.duplicates
    vpcs = {item.id for item in everything if item.kind == "vpc"}
    groups: set[str] = set()
    subnets: set[str] = set()
    known: set[str] = set()
    for item in everything:
        if item.kind in ("security-group", "subnet"):
            known.add(item.id)
            if item.attrs.get("vpc") not in vpcs:
                (groups if item.kind == "security-group" else subnets).add(item.id)
    for item in everything:
        if item.kind == "function":
            groups.update(set(item.attrs.get("security_groups") or []) - known)
            subnets.update(set(item.attrs.get("subnets") or []) - known)
    return {"vpc_ids": sorted(vpcs), "group_ids": sorted(groups), "subnet_ids": sorted(subnets)}


def observe_for_teardown(aws: AwsContext, stack: str, *, account: str | None = None) -> ObservedState:
    """:func:`observe`, plus every Lambda ENI in the stack's network scope and the gateway
    endpoints of duplicate VPCs (as ``s3-endpoint`` duplicates)."""
    state = observe(aws, stack, account=account, detail=False)
    for vpc in [d for d in state.duplicates if d.kind == "vpc"]:
        state.duplicates.extend(endpoint_observed(item) for item in ec2.find_vpc_endpoints(aws, vpc.id))
    scope = network_scope(state)
    state.lambda_enis = ec2.stack_lambda_enis(aws, **scope) if any(scope.values()) else []
    return state
