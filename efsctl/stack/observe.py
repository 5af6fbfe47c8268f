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

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from efsctl.aws import apigw, ec2, efs, iam, lambda_, logs, s3
from efsctl.aws.session import AwsContext
from efsctl.aws.tags import tag_dict
from efsctl.stack.model import (API_STATEMENT_ID, FUNCTIONS, KEYS, NOTIFICATION_ID, S3_STATEMENT_ID, TAG_RESOURCE,
                                TAG_STACK, Names, Unknown)


@dataclass
class Observed:
    """One resource as AWS reports it."""

    key: str
    kind: str
    id: str
    arn: str | None = None
    name: str | None = None
    state: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def attr(self, name: str) -> Any:
        if name in ("id", "arn", "name"):
            value = getattr(self, name)
            return value if value is not None else self.id
        return self.attrs[name]

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "id": self.id}
        if self.arn:
            doc["arn"] = self.arn
        if self.name and self.name != self.id:
            doc["name"] = self.name
        if self.state:
            doc["state"] = self.state
        return doc


@dataclass
class ObservedState:
    stack: str
    region: str
    account: str
    resources: dict[str, Observed] = field(default_factory=dict)
    duplicates: list[Observed] = field(default_factory=list)
    zones: tuple[str, ...] = ()
    lambda_enis: list[dict[str, Any]] = field(default_factory=list)

    @property
    def names(self) -> Names:
        return Names(self.stack, self.account, self.region)

    def get(self, key: str) -> Observed | None:
        return self.resources.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.resources

    def lookup(self, key: str, attr: str) -> Any:
        found = self.resources.get(key)
        return found.attr(attr) if found is not None else Unknown(key)

    def add(self, observed: Observed) -> None:
        self.resources[observed.key] = observed

    def ordered(self) -> list[Observed]:
        """Observed resources in DESIGN order."""
        return [self.resources[k] for k in KEYS if k in self.resources]

    @property
    def empty(self) -> bool:
        return not self.resources and not self.duplicates


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


def sg_rule(rule: dict[str, Any]) -> dict[str, Any]:
    return {"rule_id": rule["SecurityGroupRuleId"], "protocol": str(rule.get("IpProtocol", "")).lower(),
            "from_port": rule.get("FromPort"), "to_port": rule.get("ToPort"),
            "source_group": (rule.get("ReferencedGroupInfo") or {}).get("GroupId"),
            "cidr_v4": rule.get("CidrIpv4"), "cidr_v6": rule.get("CidrIpv6"), "prefix_list": rule.get("PrefixListId")}


def _keep(state: ObservedState, items: list[dict[str, Any]], id_field: str, build: Callable[[dict[str, Any]], Observed],
          prefer: Callable[[dict[str, Any]], bool] = lambda _: True) -> None:
    """Record the item to use as the resource and any others as duplicates."""
    chosen, extra = _pick(items, id_field, prefer)
    if chosen is not None:
        state.add(build(chosen))
    state.duplicates.extend(build(item) for item in extra)


def _subnet(key: str) -> Callable[[dict[str, Any]], Observed]:
    return lambda item: Observed(key, "subnet", item["SubnetId"], arn=item.get("SubnetArn"),
                                 state=item.get("State", ""), tags=tag_dict(item.get("Tags")),
                                 attrs={"vpc": item["VpcId"], "cidr": item["CidrBlock"],
                                        "zone": item["AvailabilityZone"],
                                        "map_public_ip": bool(item.get("MapPublicIpOnLaunch"))})


def _route_table(item: dict[str, Any]) -> Observed:
    associations = {a["SubnetId"]: a["RouteTableAssociationId"] for a in item.get("Associations", [])
                    if a.get("SubnetId")}
    return Observed("route-table", "route-table", item["RouteTableId"], tags=tag_dict(item.get("Tags")),
                    attrs={"vpc": item["VpcId"], "associations": associations})


def _endpoint(item: dict[str, Any]) -> Observed:
    return Observed("s3-endpoint", "vpc-endpoint", item["VpcEndpointId"], state=str(item.get("State", "")),
                    tags=tag_dict(item.get("Tags")),
                    attrs={"vpc": item["VpcId"], "service_name": item["ServiceName"],
                           "route_tables": sorted(item.get("RouteTableIds", []))})


def _security_group(key: str, rules: dict[str, list[dict[str, Any]]]) -> Callable[[dict[str, Any]], Observed]:
    def build(item: dict[str, Any]) -> Observed:
        group_rules = rules.get(item["GroupId"], [])
        return Observed(key, "security-group", item["GroupId"], arn=item.get("SecurityGroupArn"),
                        name=item["GroupName"], tags=tag_dict(item.get("Tags")),
                        attrs={"vpc": item["VpcId"], "group_name": item["GroupName"],
                               "ingress": [sg_rule(r) for r in group_rules if not r.get("IsEgress")],
                               "egress": [sg_rule(r) for r in group_rules if r.get("IsEgress")]})

    return build


def observe_network(aws: AwsContext, names: Names, state: ObservedState) -> None:
    state.zones = tuple(ec2.usable_zones(aws))
    vpcs = ec2.find_vpcs(aws, _stack_tags(names, "vpc"))
    vpc_id = _pick(vpcs, "VpcId")[0]["VpcId"] if vpcs else None
    dns = ec2.vpc_dns(aws, vpc_id) if vpc_id else {}
    _keep(state, vpcs, "VpcId", lambda v: Observed(
        "vpc", "vpc", v["VpcId"], state=v.get("State", ""), tags=tag_dict(v.get("Tags")),
        attrs={"cidr": v["CidrBlock"], **({"dns_support": dns["support"], "dns_hostnames": dns["hostnames"]}
                                          if v["VpcId"] == vpc_id else {})}))

    def in_vpc(item: dict[str, Any]) -> bool:
        return item.get("VpcId") == vpc_id

    subnets = _by_resource_key(ec2.find_subnets(aws, _stack_tags(names)))
    for key in ("subnet-a", "subnet-b"):
        _keep(state, subnets.get(key, []), "SubnetId", _subnet(key), in_vpc)
    tables = ec2.find_route_tables(aws, _stack_tags(names, "route-table"))
    _keep(state, tables, "RouteTableId", _route_table, in_vpc)
    groups = _by_resource_key(ec2.find_security_groups(aws, _stack_tags(names)))
    rules: dict[str, list[dict[str, Any]]] = {}
    group_ids = [g["GroupId"] for key in ("sg-lambda", "sg-efs") for g in groups.get(key, [])]
    for rule in ec2.security_group_rules(aws, group_ids):
        rules.setdefault(rule["GroupId"], []).append(rule)
    for key in ("sg-lambda", "sg-efs"):
        _keep(state, groups.get(key, []), "GroupId", _security_group(key, rules), in_vpc)
    if vpc_id:
        # Found by VPC and service (the tagging API misses endpoints): ours is the tagged one.
        _keep(state, ec2.find_vpc_endpoints(aws, vpc_id, names.s3_service), "VpcEndpointId", _endpoint,
              lambda e: tag_dict(e.get("Tags")).get(TAG_STACK) == names.stack)
        state.lambda_enis = ec2.lambda_enis(aws, vpc_id)


# --- EFS -----------------------------------------------------------------------------------

def observe_efs(aws: AwsContext, names: Names, state: ObservedState) -> list[Observed]:
    """The file system and access point; returns the mount targets for :func:`_assign_mount_targets`."""
    fs = efs.find_file_system(aws, names.creation_token)
    if not fs:
        return []
    fs_id = fs["FileSystemId"]
    state.add(Observed("efs", "efs", fs_id, arn=fs.get("FileSystemArn"), state=fs.get("LifeCycleState", ""),
                       tags=tag_dict(fs.get("Tags")),
                       attrs={"encrypted": bool(fs.get("Encrypted")), "throughput_mode": fs.get("ThroughputMode"),
                              "performance_mode": fs.get("PerformanceMode")}))
    _keep(state, efs.access_points(aws, fs_id), "AccessPointId", lambda p: Observed(
        "access-point", "access-point", p["AccessPointId"], arn=p.get("AccessPointArn"),
        state=p.get("LifeCycleState", ""), tags=tag_dict(p.get("Tags")),
        attrs={"file_system": fs_id, "posix_user": p.get("PosixUser") or {},
               "root_directory": p.get("RootDirectory") or {}}),
          lambda p: tag_dict(p.get("Tags")).get(TAG_RESOURCE) == "access-point")
    targets = []
    for item in efs.mount_targets(aws, fs_id):
        targets.append(Observed("mt", "mount-target", item["MountTargetId"], state=item.get("LifeCycleState", ""),
                                attrs={"file_system": fs_id, "subnet": item["SubnetId"],
                                       "zone": item.get("AvailabilityZoneName"),
                                       "security_groups": sorted(efs.mount_target_security_groups(
                                           aws, item["MountTargetId"]))}))
    return targets


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

def observe_roles(aws: AwsContext, names: Names, state: ObservedState) -> None:
    for which in FUNCTIONS:
        role = iam.get_role(aws, names.role(which))
        if role is None:
            continue
        inline = iam.inline_policy_names(aws, role["RoleName"])
        policy = iam.get_inline_policy(aws, role["RoleName"], "efsctl") if "efsctl" in inline else None
        state.add(Observed(f"role-{which}", "role", role["RoleName"], arn=role["Arn"], name=role["RoleName"],
                           tags=role["Tags"],
                           attrs={"trust": role["AssumeRolePolicyDocument"], "policy": policy,
                                  "inline_policies": sorted(inline),
                                  "attached_policies": sorted(iam.attached_policy_arns(aws, role["RoleName"]))}))


def permission_attrs(statement: dict[str, Any]) -> dict[str, Any]:
    principal = statement.get("Principal")
    if isinstance(principal, dict):
        principal = principal.get("Service") or principal.get("AWS")
    condition = statement.get("Condition") or {}
    source_arn = (condition.get("ArnLike") or condition.get("ArnEquals") or {}).get("AWS:SourceArn")
    source_account = (condition.get("StringEquals") or {}).get("AWS:SourceAccount")
    return {"principal": principal, "source_arn": source_arn, "source_account": source_account,
            "action": statement.get("Action")}


# AWS's VPC ids: "vpc-" and 8 (older) or 17 hexadecimal digits.
VPC_ID = re.compile(r"vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?")


def keeps_attachments(vpc: dict[str, Any]) -> bool:
    """False when the answer shows an endpoint that keeps no record of the function's attachments.

    Telling "no file systems" from "this endpoint does not keep them" needs evidence, and the
    answer carries it: moto makes up the function's VpcId (the constant ``vpc-123abc``, which is
    no VPC id) and drops FileSystemConfigs alike (AWS-RULES 32); AWS, the local cloud and a
    faithful emulator report the VPC of the function's subnets, or no VpcId (or "") outside one.
    The target's kind would not do: in-process moto has no endpoint URL, and an emulator behind
    ``--endpoint-url`` may keep the field. On moto a removed mount stays unseen: it never held one.
    """
    vpc_id = vpc.get("VpcId")
    return not vpc_id or VPC_ID.fullmatch(str(vpc_id)) is not None


def function_observed(key: str, config: dict[str, Any], tags: dict[str, str]) -> Observed:
    """An :class:`Observed` from GetFunction(Configuration)/CreateFunction/Update* output.

    AWS omits what is empty: FileSystemConfigs without file systems, VpcConfig's lists (or the
    whole VpcConfig) outside a VPC, Environment without variables. So absent means empty, and a
    file system or VPC removed behind efsctl's back is drift that ``up`` repairs. The one
    exception is an endpoint that cannot report FileSystemConfigs at all (see
    :func:`keeps_attachments`): there its absence says nothing, and ``file_systems`` is None
    ("not reported", never drift) so that a second ``up`` on plain moto still makes no call.
    """
    vpc = config.get("VpcConfig") or {}
    file_systems = config.get("FileSystemConfigs")
    if file_systems is None and keeps_attachments(vpc):
        file_systems = []
    return Observed(
        key, "function", config["FunctionName"], arn=config["FunctionArn"], name=config["FunctionName"],
        state=config.get("State", ""), tags=dict(tags),
        attrs={"role": config.get("Role"), "handler": config.get("Handler"), "runtime": config.get("Runtime"),
               "architecture": (config.get("Architectures") or ["x86_64"])[0],
               "memory": config.get("MemorySize"), "timeout": config.get("Timeout"),
               "code_sha256": config.get("CodeSha256"),
               "environment": (config.get("Environment") or {}).get("Variables") or {},
               "subnets": sorted(vpc.get("SubnetIds") or []),
               "security_groups": sorted(vpc.get("SecurityGroupIds") or []),
               "vpc_id": vpc.get("VpcId") or None,
               "file_systems": None if file_systems is None else
               [{"arn": f.get("Arn"), "mount_path": f.get("LocalMountPath")} for f in file_systems],
               "last_update_status": config.get("LastUpdateStatus", ""),
               "state_reason": config.get("StateReason") or config.get("LastUpdateStatusReason") or ""})


def observe_functions(aws: AwsContext, names: Names, state: ObservedState) -> None:
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
                state.add(Observed(key, "permission", sid, name=sid,
                                   attrs={"function": config["FunctionName"], **permission_attrs(statement)}))


def observe_log_groups(aws: AwsContext, names: Names, state: ObservedState) -> None:
    for which in FUNCTIONS:
        group = logs.get_log_group(aws, names.log_group(which))
        if group is None:
            continue
        arn = group.get("logGroupArn") or str(group.get("arn", "")).removesuffix(":*")
        state.add(Observed(f"log-{which}", "log-group", group["logGroupName"], arn=arn, name=group["logGroupName"],
                           tags=dict(group.get("tags") or {}), attrs={"retention_days": group.get("retentionInDays")}))


# --- S3 and the API --------------------------------------------------------------------------

def _filter_prefix(config: dict[str, Any]) -> str:
    rules = ((config.get("Filter") or {}).get("Key") or {}).get("FilterRules") or []
    return next((r.get("Value", "") for r in rules if str(r.get("Name", "")).lower() == "prefix"), "")


def observe_bucket(aws: AwsContext, names: Names, state: ObservedState) -> None:
    status = s3.bucket_status(aws, names.bucket)
    if status == s3.MISSING:
        return
    if status == s3.FOREIGN:
        state.add(Observed("bucket", "bucket", names.bucket, name=names.bucket, state="foreign"))
        return
    state.add(Observed("bucket", "bucket", names.bucket, arn=names.bucket_arn, name=names.bucket,
                       tags=s3.bucket_tags(aws, names.bucket),
                       attrs={"public_access_block": s3.public_access_block(aws, names.bucket),
                              "encryption": s3.default_encryption(aws, names.bucket),
                              "policy": s3.bucket_policy(aws, names.bucket)}))
    notification = s3.notification_configuration(aws, names.bucket)
    producer_arn = names.function_arn("producer")
    for config in notification.get("LambdaFunctionConfigurations", []):
        if config.get("Id") == NOTIFICATION_ID or config.get("LambdaFunctionArn") == producer_arn:
            state.add(Observed("s3-notification", "bucket-notification", config.get("Id") or NOTIFICATION_ID,
                               attrs={"function": config.get("LambdaFunctionArn"),
                                      "events": sorted(config.get("Events", [])), "prefix": _filter_prefix(config),
                                      "config_id": config.get("Id")}))
            break


def observe_api(aws: AwsContext, names: Names, state: ObservedState) -> None:
    apis = apigw.find_apis(aws, _stack_tags(names, "api"))
    _keep(state, apis, "ApiId", lambda a: Observed(
        "api", "http-api", a["ApiId"], arn=apigw.api_arn(state.region, a["ApiId"], names.partition),
        name=a.get("Name"), tags=dict(a.get("Tags") or {}),
        attrs={"protocol": a.get("ProtocolType"), "endpoint": a.get("ApiEndpoint")}))
    if "api" not in state:
        return
    api_id = state.resources["api"].id
    routes = apigw.routes(aws, api_id)
    targets = {str(r.get("Target", "")).removeprefix("integrations/") for r in routes}
    consumer_arn = names.function_arn("consumer")
    _keep(state, apigw.integrations(aws, api_id), "IntegrationId", lambda i: Observed(
        "api-integration", "api-integration", i["IntegrationId"],
        attrs={"api": api_id, "function": i.get("IntegrationUri"), "type": i.get("IntegrationType"),
               "payload_version": i.get("PayloadFormatVersion"), "timeout_ms": i.get("TimeoutInMillis")}),
          lambda i: i.get("IntegrationUri") == consumer_arn or i["IntegrationId"] in targets)
    if routes:
        state.add(Observed("api-routes", "api-routes", api_id, attrs={"api": api_id, "routes": {
            r["RouteKey"]: {"id": r["RouteId"], "target": r.get("Target"),
                            "authorization": r.get("AuthorizationType", "NONE")} for r in routes}}))
    for stage in apigw.stages(aws, api_id):
        if stage.get("StageName") == "$default":
            state.add(Observed("api-stage", "api-stage", "$default", name="$default",
                               arn=apigw.stage_arn(state.region, api_id, "$default", names.partition),
                               tags=dict(stage.get("Tags") or {}),
                               attrs={"api": api_id, "auto_deploy": bool(stage.get("AutoDeploy"))}))


# --- everything ------------------------------------------------------------------------------

def observe(aws: AwsContext, stack: str, *, account: str | None = None, workers: int = 7) -> ObservedState:
    """Everything the stack has in the context's account and region."""
    account = account or aws.account_id()
    state = ObservedState(stack=stack, region=aws.region, account=account)
    names = state.names
    groups = [observe_network, observe_efs, observe_roles, observe_functions, observe_log_groups, observe_bucket,
              observe_api]
    # Each group writes distinct keys; dict assignment is atomic under the GIL.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="efsctl-observe") as pool:
        futures = {group: pool.submit(group, aws, names, state) for group in groups}
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
    state = observe(aws, stack, account=account)
    for vpc in [d for d in state.duplicates if d.kind == "vpc"]:
        for item in ec2.find_vpc_endpoints(aws, vpc.id):
            state.duplicates.append(Observed("s3-endpoint", "vpc-endpoint", item["VpcEndpointId"],
                                             state=str(item.get("State", "")), tags=tag_dict(item.get("Tags")),
                                             attrs={"vpc": item["VpcId"], "service_name": item["ServiceName"],
                                                    "route_tables": sorted(item.get("RouteTableIds", []))}))
    scope = network_scope(state)
    state.lambda_enis = ec2.stack_lambda_enis(aws, **scope) if any(scope.values()) else []
    return state
