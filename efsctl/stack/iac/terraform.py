"""The stack as a Terraform configuration for the hashicorp/aws provider: one mapping per model
kind (:data:`TABLE`).

Refs become attribute references (``aws_vpc.vpc.id``); strings the model builds from refs or
deploy-time values become interpolations; the account, region, partition and zones come from
data sources. Every resource is named after the model key it comes from (``subnet-a`` ->
``aws_subnet.subnet_a``; a kind that needs several Terraform resources gives them all that name).
"""

from __future__ import annotations

from typing import Any, Callable

from efsctl import __version__
from efsctl.stack import model
from efsctl.stack.iac import hcl_out as h
from efsctl.stack.iac import mapping as m
from efsctl.stack.model import Ref, Resource

PROVIDER_VERSION = "~> 5.0"  # data.aws_region's `name` is deprecated from 6.0

PSEUDOS = {
    m.STACK: "var.stack_name", m.MEMORY: "var.memory", m.ARCHITECTURE: "var.architecture",
    m.VPC_CIDR: "var.vpc_cidr", m.ACCOUNT: "data.aws_caller_identity.current.account_id",
    m.REGION: "data.aws_region.current.name", m.PARTITION: "data.aws_partition.current.partition",
    **{zone: f"data.aws_availability_zones.available.names[{i}]" for i, zone in enumerate(m.ZONES)},
    **{cidr: f"cidrsubnet(var.vpc_cidr, local.subnet_newbits, {i})" for i, cidr in enumerate(m.SUBNET_CIDRS)},
}


def resource_name(key: str) -> str:
    return "_".join(m.words(key))


class Context:
    def __init__(self, resources: list[Resource], zip_path: str) -> None:
        self.index = model.by_key(resources)
        self.zip_path = zip_path

    def v(self, value: Any) -> Any:
        return m.convert(value, self._leaf)

    def _leaf(self, parts: tuple[Any, ...]) -> Any:
        exprs = tuple(p if isinstance(p, str) else h.Raw(self._expr(p)) for p in parts)
        return exprs[0] if len(exprs) == 1 and isinstance(exprs[0], h.Raw) else h.Template(exprs)

    def _expr(self, part: Any) -> str:
        if isinstance(part, Ref):
            return self.address(part.key) + "." + TABLE[self.index[part.key].kind].refs[part.attr]
        return PSEUDOS[part]

    def address(self, key: str, type_: str | None = None) -> str:
        return f"{type_ or TABLE[self.index[key].kind].type}.{resource_name(key)}"

    def tags(self, r: Resource) -> dict[str, Any]:
        return {k: self.v(v) for k, v in r.tags.items()}

    def native(self, r: Resource, type_: str, body: dict[str, Any], *, comment: str = "",
               after: bool = True) -> m.Native:
        depends = [(self.address(key), why) for key, why in m.ordering(r, self.index)] if after else []
        return m.Native(r.key, type_, resource_name(r.key), body, depends, comment)


def nested(type_: str, **attrs: Any) -> h.Block:
    return h.Block(type_, (), [a if isinstance(a, h.Block) else h.Attr(k, a) for k, a in attrs.items()])


# --- one mapping per kind --------------------------------------------------------------------

def _vpc(r: model.Vpc, c: Context) -> list[m.Native]:
    return [c.native(r, "aws_vpc", {"cidr_block": c.v(r.cidr), "enable_dns_support": r.dns_support,
                                    "enable_dns_hostnames": r.dns_hostnames, "tags": c.tags(r)})]


def _subnet(r: model.Subnet, c: Context) -> list[m.Native]:
    return [c.native(r, "aws_subnet", {
        "vpc_id": c.v(r.vpc), "cidr_block": c.v(r.cidr), "availability_zone": c.v(r.zone),
        "map_public_ip_on_launch": r.map_public_ip, "tags": c.tags(r),
        # As with `up`, the zone is the one chosen when the subnet is made: a later change in
        # the region's list of zones moves nothing.
        "lifecycle": nested("lifecycle", ignore_changes=[h.Raw("availability_zone")])})]


def _route_table(r: model.RouteTable, c: Context) -> list[m.Native]:
    subnets = {resource_name(s.key): c.v(s) for s in r.subnets}
    return [c.native(r, "aws_route_table", {"vpc_id": c.v(r.vpc), "tags": c.tags(r)}),
            c.native(r, "aws_route_table_association", {
                "for_each": subnets, "route_table_id": h.Raw(c.address(r.key) + ".id"),
                "subnet_id": h.Raw("each.value")}, after=False)]


def _endpoint(r: model.GatewayEndpoint, c: Context) -> list[m.Native]:
    return [c.native(r, "aws_vpc_endpoint", {
        "vpc_id": c.v(r.vpc), "service_name": c.v(r.service_name), "vpc_endpoint_type": "Gateway",
        "route_table_ids": c.v(r.route_tables), "tags": c.tags(r)})]


def _security_group(r: model.SecurityGroup, c: Context) -> list[m.Native]:
    group_id = h.Raw(c.address(r.key) + ".id")
    natives = [
        c.native(r, "aws_security_group", {"name": c.v(r.group_name), "description": c.v(r.description),
                                           "vpc_id": c.v(r.vpc), "tags": c.tags(r)}),
        c.native(r, "aws_vpc_security_group_egress_rule", {
            "security_group_id": group_id, "ip_protocol": "-1", "cidr_ipv4": "0.0.0.0/0",
            "description": "All outbound, as AWS gives every new group"}, after=False,
            comment="AWS gives every new group this rule and `up` keeps it (the functions reach EFS and S3 "
                    "through it); Terraform removes it unless it is stated."),
    ]
    if len(r.ingress) > 1:
        raise LookupError(f"the Terraform mapping writes one inbound rule per group; {r.key} has {len(r.ingress)}")
    for rule in r.ingress:
        natives.append(c.native(r, "aws_vpc_security_group_ingress_rule", {
            "security_group_id": group_id, "ip_protocol": rule.protocol, "from_port": rule.port,
            "to_port": rule.port, "referenced_security_group_id": c.v(rule.source_group),
            "description": rule.description, "tags": c.tags(r)}, after=False))
    return natives


def _file_system(r: model.FileSystem, c: Context) -> list[m.Native]:
    return [c.native(r, "aws_efs_file_system", {
        "creation_token": c.v(r.creation_token), "encrypted": r.encrypted, "throughput_mode": r.throughput_mode,
        "performance_mode": r.performance_mode, "tags": c.tags(r)})]


def _mount_target(r: model.MountTarget, c: Context) -> list[m.Native]:
    return [c.native(r, "aws_efs_mount_target", {"file_system_id": c.v(r.file_system), "subnet_id": c.v(r.subnet),
                                                 "security_groups": c.v(r.security_groups)})]


def _access_point(r: model.AccessPoint, c: Context) -> list[m.Native]:
    info = r.root_directory["CreationInfo"]
    return [c.native(r, "aws_efs_access_point", {
        "file_system_id": c.v(r.file_system), "posix_user": nested("posix_user", uid=r.uid, gid=r.gid),
        "root_directory": nested("root_directory", path=r.path, creation_info=nested(
            "creation_info", owner_uid=info["OwnerUid"], owner_gid=info["OwnerGid"], permissions=info["Permissions"])),
        "tags": c.tags(r)})]


def _bucket(r: model.Bucket, c: Context) -> list[m.Native]:
    bucket = h.Raw(c.address(r.key) + ".id")
    block = {_snake(k): v for k, v in r.public_access_block.items()}
    policy = c.native(r, "aws_s3_bucket_policy", {"bucket": bucket, "policy": h.Call("jsonencode", (c.v(r.policy),))},
                      after=False)
    policy.depends_on = [(c.address(r.key, "aws_s3_bucket_public_access_block"),
                          "one change to the bucket at a time: S3 answers concurrent ones with OperationAborted")]
    return [
        c.native(r, "aws_s3_bucket", {"bucket": c.v(r.name), "tags": c.tags(r)}),
        c.native(r, "aws_s3_bucket_public_access_block", {"bucket": bucket, **block}, after=False),
        c.native(r, "aws_s3_bucket_server_side_encryption_configuration", {"bucket": bucket, "rule": nested(
            "rule", apply_server_side_encryption_by_default=nested(
                "apply_server_side_encryption_by_default", sse_algorithm=r.encryption))}, after=False),
        policy,
    ]


def _role(r: model.Role, c: Context) -> list[m.Native]:
    return [
        c.native(r, "aws_iam_role", {"name": c.v(r.name), "description": c.v(r.description),
                                     "assume_role_policy": h.Call("jsonencode", (c.v(r.trust),)), "tags": c.tags(r)}),
        c.native(r, "aws_iam_role_policy", {"name": r.policy_name, "role": h.Raw(c.address(r.key) + ".id"),
                                            "policy": h.Call("jsonencode", (c.v(r.policy),))}, after=False),
    ]


def _log_group(r: model.LogGroup, c: Context) -> list[m.Native]:
    return [c.native(r, "aws_cloudwatch_log_group", {"name": c.v(r.name), "retention_in_days": r.retention_days,
                                                     "tags": c.tags(r)})]


# What `up` passes to CreateFunction (``function_config``), in this provider's words.
_FUNCTION_ARGS: dict[str, Callable[[Any], tuple[str, Any]]] = {
    "Role": lambda v: ("role", v), "Handler": lambda v: ("handler", v), "Runtime": lambda v: ("runtime", v),
    "MemorySize": lambda v: ("memory_size", v), "Timeout": lambda v: ("timeout", v),
    "Description": lambda v: ("description", v),
    "Environment": lambda v: ("environment", nested("environment", variables=v["Variables"])),
    "VpcConfig": lambda v: ("vpc_config", nested("vpc_config", subnet_ids=v["SubnetIds"],
                                                 security_group_ids=v["SecurityGroupIds"])),
    "FileSystemConfigs": lambda v: ("file_system_config", [
        nested("file_system_config", arn=fs["Arn"], local_mount_path=fs["LocalMountPath"]) for fs in v]),
}


def _function(r: model.Function, c: Context) -> list[m.Native]:
    from efsctl.stack.steps.compute import function_config

    zip_path = h.Template((h.Raw("path.module"), f"/{c.zip_path}"))
    body: dict[str, Any] = {"function_name": c.v(r.name), "package_type": "Zip", "architectures": [c.v(r.architecture)]}
    body.update(dict(_FUNCTION_ARGS[name](value) for name, value in c.v(function_config(r)).items()))
    body.update({"filename": zip_path, "source_code_hash": h.Call("filebase64sha256", (zip_path,)), "tags": c.tags(r)})
    native = c.native(r, "aws_lambda_function", body,
                      comment=f"The handlers' zip, as `up` deploys it (CodeSha256 {r.code_sha256}).")
    # In the model the role's inline policy is part of the role; here it is its own resource,
    # and Lambda checks the role's ENI permissions when the function is created.
    role_key = r.role.key if isinstance(r.role, Ref) else None
    if role_key:
        native.depends_on.append((c.address(role_key, "aws_iam_role_policy"),
                                  "the role's policy first: Lambda checks its network-interface permissions"))
    return [native]


def _permission(r: model.Permission, c: Context) -> list[m.Native]:
    body = {"statement_id": r.statement_id, "action": "lambda:InvokeFunction", "function_name": c.v(r.function),
            "principal": r.principal, "source_arn": c.v(r.source_arn)}
    if r.source_account is not None:
        body["source_account"] = c.v(r.source_account)
    return [c.native(r, "aws_lambda_permission", body)]


def _notification(r: model.BucketNotification, c: Context) -> list[m.Native]:
    return [c.native(r, "aws_s3_bucket_notification", {"bucket": c.v(r.bucket), "lambda_function": nested(
        "lambda_function", id=r.config_id, lambda_function_arn=c.v(r.function), events=list(r.events),
        filter_prefix=r.prefix)})]


def _api(r: model.HttpApi, c: Context) -> list[m.Native]:
    return [c.native(r, "aws_apigatewayv2_api", {"name": c.v(r.name), "protocol_type": "HTTP",
                                                 "description": c.v(r.description), "tags": c.tags(r)},
                     comment="No target (quick create): it would add an open $default route.")]


def _integration(r: model.ApiIntegration, c: Context) -> list[m.Native]:
    return [c.native(r, "aws_apigatewayv2_integration", {
        "api_id": c.v(r.api), "integration_type": "AWS_PROXY", "integration_method": "POST",
        "integration_uri": c.v(r.function), "payload_format_version": r.payload_version,
        "timeout_milliseconds": r.timeout_ms})]


def _routes(r: model.ApiRoutes, c: Context) -> list[m.Native]:
    return [c.native(r, "aws_apigatewayv2_route", {
        "for_each": h.Call("toset", (list(r.route_keys),)), "api_id": c.v(r.api), "route_key": h.Raw("each.key"),
        "target": c.v(r.target), "authorization_type": r.authorization})]


def _stage(r: model.ApiStage, c: Context) -> list[m.Native]:
    return [c.native(r, "aws_apigatewayv2_stage", {"api_id": c.v(r.api), "name": r.name,
                                                   "auto_deploy": r.auto_deploy, "tags": c.tags(r)})]


def _snake(name: str) -> str:
    return "".join(f"_{ch.lower()}" if ch.isupper() else ch for ch in name).lstrip("_")


TABLE: dict[str, m.KindMapping] = {
    "vpc": m.KindMapping(_vpc, {"id": "id"}, "aws_vpc"),
    "subnet": m.KindMapping(_subnet, {"id": "id"}, "aws_subnet"),
    "route-table": m.KindMapping(_route_table, {"id": "id"}, "aws_route_table"),
    "vpc-endpoint": m.KindMapping(_endpoint, {"id": "id"}, "aws_vpc_endpoint"),
    "security-group": m.KindMapping(_security_group, {"id": "id"}, "aws_security_group"),
    "efs": m.KindMapping(_file_system, {"id": "id", "arn": "arn"}, "aws_efs_file_system"),
    "mount-target": m.KindMapping(_mount_target, {"id": "id"}, "aws_efs_mount_target"),
    "access-point": m.KindMapping(_access_point, {"id": "id", "arn": "arn"}, "aws_efs_access_point"),
    "bucket": m.KindMapping(_bucket, {"id": "id", "name": "bucket", "arn": "arn"}, "aws_s3_bucket"),
    "role": m.KindMapping(_role, {"id": "id", "name": "name", "arn": "arn"}, "aws_iam_role"),
    "log-group": m.KindMapping(_log_group, {"name": "name", "arn": "arn"}, "aws_cloudwatch_log_group"),
    "function": m.KindMapping(_function, {"name": "function_name", "arn": "arn"}, "aws_lambda_function"),
    "permission": m.KindMapping(_permission, {"id": "statement_id"}, "aws_lambda_permission"),
    "bucket-notification": m.KindMapping(_notification, {}, "aws_s3_bucket_notification"),
    "http-api": m.KindMapping(_api, {"id": "id", "endpoint": "api_endpoint"}, "aws_apigatewayv2_api"),
    "api-integration": m.KindMapping(_integration, {"id": "id"}, "aws_apigatewayv2_integration"),
    "api-routes": m.KindMapping(_routes, {}, "aws_apigatewayv2_route"),
    "api-stage": m.KindMapping(_stage, {"id": "id"}, "aws_apigatewayv2_stage"),
}


# --- the configuration -----------------------------------------------------------------------

def natives(resources: list[Resource], c: Context) -> list[m.Native]:
    m.check_table(TABLE, resources, "Terraform")
    out: list[m.Native] = []
    for r in resources:
        out.extend(TABLE[r.kind].render(r, c))
    return out


def _body(native: m.Native) -> list[Any]:
    items: list[Any] = []
    meta = {k: native.body[k] for k in ("for_each",) if k in native.body}
    for name, value in {**meta, **native.body}.items():
        if isinstance(value, h.Block):
            items.append(value)
        elif isinstance(value, list) and value and all(isinstance(v, h.Block) for v in value):
            items.extend(value)
        else:
            items.append(h.Attr(name, value))
    if native.depends_on:
        items += [h.BLANK, h.Attr("depends_on", h.Commented(tuple((h.Raw(a), why) for a, why in native.depends_on)))]
    return items


HEADER = [
    f"Generated by `efsctl package` (efsctl {__version__}) from the stack model `efsctl up` deploys:",
    "the same resources, properties, tags and policies. Deploy with `terraform init` and `terraform apply` (README.md).",
    "",
    "Names are efsctl's deterministic ones, with data sources supplying what `up` looks up:",
    "  bucket          efsctl-<stack_name>-<account (aws_caller_identity)>-<region (aws_region)>",
    "  functions/roles efsctl-<stack_name>-producer | -consumer; log groups /aws/lambda/<function>",
    "  security groups efsctl-<stack_name>-lambda | -efs; HTTP API efsctl-<stack_name>",
    "  EFS             creation token efsctl-<stack_name>-<region>",
    "  zones           the region's first two available (aws_availability_zones), as `up` takes them",
    "ARNs take the partition from aws_partition.",
]


def main_tf(resources: list[Resource], c: Context) -> str:
    items: list[Any] = [h.Comment(line) if line else h.BLANK for line in HEADER]
    items += [
        h.Block("terraform", (), [h.Attr("required_version", ">= 1.5"), h.Block("required_providers", (), [
            h.Attr("aws", {"source": "hashicorp/aws", "version": PROVIDER_VERSION})])]),
        h.Block("data", ("aws_caller_identity", "current")),
        h.Block("data", ("aws_region", "current")),
        h.Block("data", ("aws_partition", "current")),
        h.Block("data", ("aws_availability_zones", "available"), [h.Attr("state", "available"), h.Block(
            "filter", (), [h.Attr("name", "zone-type"), h.Attr("values", ["availability-zone"])])],
            comment=["The zones `up` picks from: available ones, without Local or Wavelength Zones or opt-in."]),
        h.Block("locals", (), [
            h.Attr("vpc_prefix", h.Raw('tonumber(split("/", var.vpc_cidr)[1])')),
            h.Attr("subnet_newbits", h.Raw(SUBNET_NEWBITS),
                   comment="as `up`: two equal subnets first in the VPC block"),
        ]),
    ]
    for native in natives(resources, c):
        comment = [native.comment] if native.comment else []
        items.append(h.Block("resource", (native.type, native.name), _body(native), comment=comment))
    return h.dump(items)


# The model's rule (``subnet_cidrs``): prefix + 4, at most /24, at least one more than the VPC's.
SUBNET_NEWBITS = "max(local.vpc_prefix + 1, min(local.vpc_prefix + 4, 24)) - local.vpc_prefix"


def variables_tf(defaults: m.Defaults) -> str:
    def variable(name: str, type_: str, default: Any, description: str, condition: str, message: str) -> h.Block:
        return h.Block("variable", (name,), [
            h.Attr("type", h.Raw(type_)), h.Attr("default", default), h.Attr("description", description),
            h.Block("validation", (), [h.Attr("condition", h.Raw(condition)), h.Attr("error_message", message)])])

    return h.dump([
        h.Comment("Defaults: the settings `efsctl up` remembered for this stack when `efsctl package` ran."),
        variable("stack_name", "string", defaults.stack,
                 "efsctl stack name: in every name and in the efsctl:stack tag",
                 'can(regex("^[a-z][a-z0-9-]{0,20}$", var.stack_name))',
                 "1-21 lower-case letters, digits and '-', starting with a letter."),
        variable("vpc_cidr", "string", defaults.vpc_cidr,
                 "IPv4 block of the VPC, /16 to /24; the two subnets are its first two equal blocks",
                 'can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && '
                 'tonumber(split("/", var.vpc_cidr)[1]) <= 24',
                 "An IPv4 block from /16 to /24, such as 10.42.0.0/16."),
        variable("memory", "number", defaults.memory, "Memory of both functions, MB",
                 "var.memory >= 128 && var.memory <= 10240", "Lambda takes 128-10240 MB."),
        variable("architecture", "string", defaults.architecture, "Instruction set of both functions",
                 'contains(["arm64", "x86_64"], var.architecture)', "arm64 or x86_64."),
    ])


def outputs_tf(c: Context) -> str:
    return h.dump([h.Block("output", (o.name,), [h.Attr("description", o.description), h.Attr("value", c.v(o.ref))])
                   for o in m.OUTPUTS])


def render(defaults: m.Defaults, *, zip_path: str, code: bytes = b"", code_sha256: str = "",
           resources: list[Resource] | None = None) -> dict[str, str]:
    """``{file name: text}`` for the configuration's files."""
    resources = resources if resources is not None else m.parameterised_stack(defaults, code, code_sha256)
    c = Context(resources, zip_path)
    return {"main.tf": main_tf(resources, c), "variables.tf": variables_tf(defaults),
            "outputs.tf": outputs_tf(c)}

