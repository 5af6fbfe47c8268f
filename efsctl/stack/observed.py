"""What AWS reports about the stack, as data: :class:`Observed` and one builder per kind.

Every AWS response that describes a resource becomes an :class:`Observed` through exactly one
builder here, whether it came from a describe call (:mod:`efsctl.stack.observe`) or from the
create call that just made it (the steps' ``create``). So a freshly created resource and the
same resource observed on the next run compare alike, and cannot show false drift.

A create response sometimes says less than a describe (no tags echoed back, no state yet);
:func:`filled` lets a step supply what it asked for where the response is silent. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from efsctl.aws.tags import tag_dict
from efsctl.stack.model import KEYS, Names, Unknown


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


def filled(response: Mapping[str, Any], **asked: Any) -> dict[str, Any]:
    """``response`` with ``asked`` values where it has none (missing, ``None`` or empty)."""
    item = dict(response)
    for name, value in asked.items():
        if item.get(name) in (None, "", [], {}):
            item[name] = value
    return item


# --- network ---------------------------------------------------------------------------------

def vpc_observed(item: Mapping[str, Any], dns: Mapping[str, bool] | None = None) -> Observed:
    attrs: dict[str, Any] = {"cidr": item["CidrBlock"]}
    if dns is not None:
        attrs.update(dns_support=dns["support"], dns_hostnames=dns["hostnames"])
    return Observed("vpc", "vpc", item["VpcId"], state=item.get("State", ""), tags=tag_dict(item.get("Tags")),
                    attrs=attrs)


def subnet_observed(key: str, item: Mapping[str, Any]) -> Observed:
    return Observed(key, "subnet", item["SubnetId"], arn=item.get("SubnetArn"), state=item.get("State", ""),
                    tags=tag_dict(item.get("Tags")),
                    attrs={"vpc": item["VpcId"], "cidr": item["CidrBlock"], "zone": item["AvailabilityZone"],
                           "map_public_ip": bool(item.get("MapPublicIpOnLaunch"))})


def route_table_observed(item: Mapping[str, Any]) -> Observed:
    associations = {a["SubnetId"]: a["RouteTableAssociationId"] for a in item.get("Associations") or []
                    if a.get("SubnetId")}
    return Observed("route-table", "route-table", item["RouteTableId"], tags=tag_dict(item.get("Tags")),
                    attrs={"vpc": item["VpcId"], "associations": associations})


def endpoint_observed(item: Mapping[str, Any]) -> Observed:
    return Observed("s3-endpoint", "vpc-endpoint", item["VpcEndpointId"], state=str(item.get("State", "")),
                    tags=tag_dict(item.get("Tags")),
                    attrs={"vpc": item["VpcId"], "service_name": item["ServiceName"],
                           "route_tables": sorted(item.get("RouteTableIds") or [])})


def sg_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    return {"rule_id": rule["SecurityGroupRuleId"], "protocol": str(rule.get("IpProtocol", "")).lower(),
            "from_port": rule.get("FromPort"), "to_port": rule.get("ToPort"),
            "source_group": (rule.get("ReferencedGroupInfo") or {}).get("GroupId"),
            "cidr_v4": rule.get("CidrIpv4"), "cidr_v6": rule.get("CidrIpv6"), "prefix_list": rule.get("PrefixListId")}


def security_group_observed(key: str, item: Mapping[str, Any], rules: list[Mapping[str, Any]]) -> Observed:
    """``rules``: the group's rules as DescribeSecurityGroupRules lists them."""
    return Observed(key, "security-group", item["GroupId"], arn=item.get("SecurityGroupArn"),
                    name=item["GroupName"], tags=tag_dict(item.get("Tags")),
                    attrs={"vpc": item["VpcId"], "group_name": item["GroupName"],
                           "ingress": [sg_rule(r) for r in rules if not r.get("IsEgress")],
                           "egress": [sg_rule(r) for r in rules if r.get("IsEgress")]})


# --- EFS and S3 ------------------------------------------------------------------------------

def file_system_observed(item: Mapping[str, Any]) -> Observed:
    return Observed("efs", "efs", item["FileSystemId"], arn=item.get("FileSystemArn"),
                    state=item.get("LifeCycleState", ""), tags=tag_dict(item.get("Tags")),
                    attrs={"encrypted": bool(item.get("Encrypted")), "throughput_mode": item.get("ThroughputMode"),
                           "performance_mode": item.get("PerformanceMode")})


def mount_target_observed(item: Mapping[str, Any], security_groups: list[str], key: str = "mt") -> Observed:
    """``key`` is ``mt`` until the subnet it sits in tells which of ``mt-a``/``mt-b`` it is."""
    return Observed(key, "mount-target", item["MountTargetId"], state=item.get("LifeCycleState", ""),
                    attrs={"file_system": item["FileSystemId"], "subnet": item["SubnetId"],
                           "zone": item.get("AvailabilityZoneName"), "security_groups": sorted(security_groups)})


def access_point_observed(item: Mapping[str, Any]) -> Observed:
    return Observed("access-point", "access-point", item["AccessPointId"], arn=item.get("AccessPointArn"),
                    state=item.get("LifeCycleState", ""), tags=tag_dict(item.get("Tags")),
                    attrs={"file_system": item["FileSystemId"], "posix_user": item.get("PosixUser") or {},
                           "root_directory": item.get("RootDirectory") or {}})


def bucket_observed(names: Names, *, tags: Mapping[str, str], public_access_block: Any, encryption: Any,
                    policy: Any) -> Observed:
    return Observed("bucket", "bucket", names.bucket, arn=names.bucket_arn, name=names.bucket, tags=dict(tags),
                    attrs={"public_access_block": public_access_block, "encryption": encryption, "policy": policy})


def _filter_prefix(config: Mapping[str, Any]) -> str:
    rules = ((config.get("Filter") or {}).get("Key") or {}).get("FilterRules") or []
    return next((r.get("Value", "") for r in rules if str(r.get("Name", "")).lower() == "prefix"), "")


def notification_observed(config: Mapping[str, Any], default_id: str) -> Observed:
    """One ``LambdaFunctionConfigurations`` entry of the bucket's notification configuration."""
    return Observed("s3-notification", "bucket-notification", config.get("Id") or default_id,
                    attrs={"function": config.get("LambdaFunctionArn"), "events": sorted(config.get("Events") or []),
                           "prefix": _filter_prefix(config), "config_id": config.get("Id")})


# --- IAM, Lambda, logs -----------------------------------------------------------------------

def role_observed(key: str, role: Mapping[str, Any], *, policy: Any, inline_policies: list[str] = (),
                  attached_policies: list[str] = ()) -> Observed:
    """``role`` as the AWS layer returns it (``Tags`` a dict, the trust policy decoded)."""
    return Observed(key, "role", role["RoleName"], arn=role["Arn"], name=role["RoleName"],
                    tags=dict(role.get("Tags") or {}),
                    attrs={"trust": role["AssumeRolePolicyDocument"], "policy": policy,
                           "inline_policies": sorted(inline_policies), "attached_policies": sorted(attached_policies)})


def log_group_observed(key: str, group: Mapping[str, Any]) -> Observed:
    arn = group.get("logGroupArn") or str(group.get("arn", "")).removesuffix(":*") or None
    return Observed(key, "log-group", group["logGroupName"], arn=arn, name=group["logGroupName"],
                    tags=dict(group.get("tags") or {}), attrs={"retention_days": group.get("retentionInDays")})


# AWS's VPC ids: "vpc-" and 8 (older) or 17 hexadecimal digits.
VPC_ID = re.compile(r"vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?")


def keeps_attachments(vpc: Mapping[str, Any]) -> bool:
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


def function_observed(key: str, config: Mapping[str, Any], tags: Mapping[str, str]) -> Observed:
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


def permission_attrs(statement: Mapping[str, Any]) -> dict[str, Any]:
    principal = statement.get("Principal")
    if isinstance(principal, dict):
        principal = principal.get("Service") or principal.get("AWS")
    condition = statement.get("Condition") or {}
    source_arn = (condition.get("ArnLike") or condition.get("ArnEquals") or {}).get("AWS:SourceArn")
    source_account = (condition.get("StringEquals") or {}).get("AWS:SourceAccount")
    return {"principal": principal, "source_arn": source_arn, "source_account": source_account,
            "action": statement.get("Action")}


def permission_observed(key: str, function: str, statement: Mapping[str, Any]) -> Observed:
    """One statement of a function's resource policy (``Sid`` is the statement id)."""
    return Observed(key, "permission", statement["Sid"], name=statement["Sid"],
                    attrs={"function": function, **permission_attrs(statement)})


# --- the HTTP API ----------------------------------------------------------------------------

def api_observed(item: Mapping[str, Any], arn: str) -> Observed:
    return Observed("api", "http-api", item["ApiId"], arn=arn, name=item.get("Name"), tags=dict(item.get("Tags") or {}),
                    attrs={"protocol": item.get("ProtocolType"), "endpoint": item.get("ApiEndpoint")})


def integration_observed(item: Mapping[str, Any], api_id: str) -> Observed:
    return Observed("api-integration", "api-integration", item["IntegrationId"],
                    attrs={"api": api_id, "function": item.get("IntegrationUri"), "type": item.get("IntegrationType"),
                           "payload_version": item.get("PayloadFormatVersion"),
                           "timeout_ms": item.get("TimeoutInMillis")})


def routes_observed(api_id: str, routes: list[Mapping[str, Any]]) -> Observed:
    """All of the API's routes as one resource (``GetRoutes`` items, or what was just made)."""
    return Observed("api-routes", "api-routes", api_id, attrs={"api": api_id, "routes": {
        r["RouteKey"]: {"id": r["RouteId"], "target": r.get("Target"),
                        "authorization": r.get("AuthorizationType", "NONE")} for r in routes}})


def stage_observed(item: Mapping[str, Any], api_id: str, arn: str) -> Observed:
    return Observed("api-stage", "api-stage", item["StageName"], name=item["StageName"], arn=arn,
                    tags=dict(item.get("Tags") or {}), attrs={"api": api_id, "auto_deploy": bool(item.get("AutoDeploy"))})
