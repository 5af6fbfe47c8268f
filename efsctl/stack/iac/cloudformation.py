"""The stack as a CloudFormation template: one mapping per model kind (:data:`TABLE`).

Refs become ``!Ref`` / ``!GetAtt``; strings the model builds from refs or deploy-time values
become ``!Sub``; the account, region and partition are CloudFormation's pseudo parameters and
the zones ``Fn::GetAZs``. The handlers' code is a local path in ``Code``, which
``aws cloudformation package`` uploads and rewrites. Every resource carries the model key it
comes from in ``Metadata`` (``efsctl:resource``).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable

from efsctl import __version__
from efsctl.stack import model
from efsctl.stack.iac import mapping as m
from efsctl.stack.iac import yaml_out
from efsctl.stack.model import Ref, Resource

TEMPLATE_FILE = "template.yaml"
META_KEY = "efsctl:resource"

PARAMETERS = {m.STACK: "StackName", m.MEMORY: "Memory", m.ARCHITECTURE: "Architecture", m.VPC_CIDR: "VpcCidr"}
PSEUDO_PARAMETERS = {m.ACCOUNT: "AWS::AccountId", m.REGION: "AWS::Region", m.PARTITION: "AWS::Partition"}


def logical_id(key: str) -> str:
    return "".join(word.capitalize() for word in m.words(key))


class Context:
    """What a mapping needs: the whole model (to resolve refs) and the parameters' defaults."""

    def __init__(self, resources: list[Resource], defaults: m.Defaults, code_uri: str) -> None:
        self.index = model.by_key(resources)
        self.defaults = defaults
        self.code_uri = code_uri
        # The template computes the subnets' blocks from the VpcCidr parameter as the model does
        # (its first two equal blocks): Fn::Cidr needs the subnets' host bits as a number, so the
        # parameter keeps the default's prefix length (regenerate for another one).
        self.vpc_prefix = ipaddress.ip_network(defaults.vpc_cidr).prefixlen
        self.subnet_bits = 32 - ipaddress.ip_network(model.subnet_cidrs(defaults.vpc_cidr)[0]).prefixlen

    # values
    def v(self, value: Any) -> Any:
        return m.convert(value, self._leaf)

    def _leaf(self, parts: tuple[Any, ...]) -> Any:
        if len(parts) == 1 and not isinstance(parts[0], str):
            return self._expr(parts[0])
        return {"Fn::Sub": "".join(self._sub(p) for p in parts)}

    def _expr(self, part: Any) -> Any:
        if isinstance(part, Ref):
            target, attr = self._attr(part)
            return {"Ref": target} if attr == "Ref" else {"Fn::GetAtt": [target, attr]}
        if part in PARAMETERS:
            return {"Ref": PARAMETERS[part]}
        if part in PSEUDO_PARAMETERS:
            return {"Ref": PSEUDO_PARAMETERS[part]}
        if part in m.ZONES:
            # `up` takes the region's first two available zones; so does this.
            return {"Fn::Select": [m.ZONES.index(part), {"Fn::GetAZs": ""}]}
        if part in m.SUBNET_CIDRS:
            return {"Fn::Select": [m.SUBNET_CIDRS.index(part),
                                   {"Fn::Cidr": [{"Ref": "VpcCidr"}, 2, self.subnet_bits]}]}
        raise LookupError(f"no CloudFormation value for {part}")

    def _sub(self, part: Any) -> str:
        if isinstance(part, str):
            return part.replace("${", "${!")
        if isinstance(part, Ref):
            target, attr = self._attr(part)
            return f"${{{target}}}" if attr == "Ref" else f"${{{target}.{attr}}}"
        name = PARAMETERS.get(part) or PSEUDO_PARAMETERS.get(part)
        if name is None:
            raise LookupError(f"{part} cannot be part of a string in CloudFormation")
        return f"${{{name}}}"

    def _attr(self, ref: Ref) -> tuple[str, str]:
        kind = self.index[ref.key].kind
        return logical_id(ref.key), TABLE[kind].refs[ref.attr]

    def tags(self, r: Resource) -> list[dict[str, Any]]:
        return [{"Key": k, "Value": self.v(v)} for k, v in r.tags.items()]

    def tag_map(self, r: Resource) -> dict[str, Any]:
        return {k: self.v(v) for k, v in r.tags.items()}

    def native(self, r: Resource, type_: str, properties: dict[str, Any], *, suffix: str = "", comment: str = "",
               after: bool = True) -> m.Native:
        depends = [(logical_id(key), why) for key, why in m.ordering(r, self.index)] if after else []
        return m.Native(r.key, type_, logical_id(r.key) + suffix, properties, depends, comment)


# --- one mapping per kind --------------------------------------------------------------------

def _vpc(r: model.Vpc, c: Context) -> list[m.Native]:
    return [c.native(r, "AWS::EC2::VPC", {"CidrBlock": c.v(r.cidr), "EnableDnsSupport": r.dns_support,
                                          "EnableDnsHostnames": r.dns_hostnames, "Tags": c.tags(r)})]


def _subnet(r: model.Subnet, c: Context) -> list[m.Native]:
    return [c.native(r, "AWS::EC2::Subnet", {"VpcId": c.v(r.vpc), "CidrBlock": c.v(r.cidr),
                                             "AvailabilityZone": c.v(r.zone), "MapPublicIpOnLaunch": r.map_public_ip,
                                             "Tags": c.tags(r)})]


def _route_table(r: model.RouteTable, c: Context) -> list[m.Native]:
    natives = [c.native(r, "AWS::EC2::RouteTable", {"VpcId": c.v(r.vpc), "Tags": c.tags(r)})]
    for subnet in r.subnets:
        natives.append(c.native(r, "AWS::EC2::SubnetRouteTableAssociation",
                                {"RouteTableId": {"Ref": logical_id(r.key)}, "SubnetId": c.v(subnet)},
                                suffix=logical_id(subnet.key), after=False))
    return natives


def _endpoint(r: model.GatewayEndpoint, c: Context) -> list[m.Native]:
    return [c.native(r, "AWS::EC2::VPCEndpoint", {
        "VpcEndpointType": "Gateway", "VpcId": c.v(r.vpc), "ServiceName": c.v(r.service_name),
        "RouteTableIds": c.v(r.route_tables), "Tags": c.tags(r)})]


def _security_group(r: model.SecurityGroup, c: Context) -> list[m.Native]:
    ingress = [{"IpProtocol": rule.protocol, "FromPort": rule.port, "ToPort": rule.port,
                "SourceSecurityGroupId": c.v(rule.source_group), "Description": rule.description}
               for rule in r.ingress]
    properties = {"GroupName": c.v(r.group_name), "GroupDescription": c.v(r.description), "VpcId": c.v(r.vpc),
                  **({"SecurityGroupIngress": ingress} if ingress else {}), "Tags": c.tags(r)}
    return [c.native(r, "AWS::EC2::SecurityGroup", properties,
                     comment="No SecurityGroupEgress: the group keeps AWS's default open egress, as `up`'s does "
                             "(the functions reach EFS and S3 through it).")]


def _file_system(r: model.FileSystem, c: Context) -> list[m.Native]:
    return [c.native(r, "AWS::EFS::FileSystem", {
        "Encrypted": r.encrypted, "ThroughputMode": r.throughput_mode, "PerformanceMode": r.performance_mode,
        "FileSystemTags": c.tags(r)},
        comment=f"`up` also sets the creation token {_display(r.creation_token)}; CloudFormation sets its own, "
                "so the file system is known by its tags.")]


def _mount_target(r: model.MountTarget, c: Context) -> list[m.Native]:
    return [c.native(r, "AWS::EFS::MountTarget", {"FileSystemId": c.v(r.file_system), "SubnetId": c.v(r.subnet),
                                                  "SecurityGroups": c.v(r.security_groups)})]


def _access_point(r: model.AccessPoint, c: Context) -> list[m.Native]:
    root = r.root_directory
    return [c.native(r, "AWS::EFS::AccessPoint", {
        "FileSystemId": c.v(r.file_system), "PosixUser": {"Uid": str(r.uid), "Gid": str(r.gid)},
        "RootDirectory": {"Path": root["Path"], "CreationInfo": {k: str(v) for k, v in root["CreationInfo"].items()}},
        "AccessPointTags": c.tags(r)})]


def _bucket(r: model.Bucket, c: Context) -> list[m.Native]:
    return [
        c.native(r, "AWS::S3::Bucket", {
            "BucketName": c.v(r.name), "PublicAccessBlockConfiguration": dict(r.public_access_block),
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": r.encryption}}]},
            "Tags": c.tags(r)}),
        c.native(r, "AWS::S3::BucketPolicy", {"Bucket": {"Ref": logical_id(r.key)}, "PolicyDocument": c.v(r.policy)},
                 suffix="Policy", after=False),
    ]


def _role(r: model.Role, c: Context) -> list[m.Native]:
    return [c.native(r, "AWS::IAM::Role", {
        "RoleName": c.v(r.name), "Description": c.v(r.description), "AssumeRolePolicyDocument": c.v(r.trust),
        "Policies": [{"PolicyName": r.policy_name, "PolicyDocument": c.v(r.policy)}], "Tags": c.tags(r)})]


def _log_group(r: model.LogGroup, c: Context) -> list[m.Native]:
    return [c.native(r, "AWS::Logs::LogGroup", {"LogGroupName": c.v(r.name), "RetentionInDays": r.retention_days,
                                                "Tags": c.tags(r)})]


def _function(r: model.Function, c: Context) -> list[m.Native]:
    from efsctl.stack.steps.compute import function_config  # what `up` passes to CreateFunction

    properties = {"FunctionName": c.v(r.name), "PackageType": "Zip", "Code": c.code_uri,
                  "Architectures": [c.v(r.architecture)], **c.v(function_config(r)), "Tags": c.tags(r)}
    return [c.native(r, "AWS::Lambda::Function", properties,
                     comment=f"Code: the handlers' zip, CodeSha256 {r.code_sha256} (`aws cloudformation package` "
                             "uploads it).")]


def _permission(r: model.Permission, c: Context) -> list[m.Native]:
    properties = {"Action": "lambda:InvokeFunction", "FunctionName": c.v(r.function), "Principal": r.principal,
                  "SourceArn": c.v(r.source_arn)}
    if r.source_account is not None:
        properties["SourceAccount"] = c.v(r.source_account)
    native = c.native(r, "AWS::Lambda::Permission", properties, after=False,
                      comment=f"`up` names this statement {r.statement_id}; CloudFormation names its own.")
    # The model puts the permission after the bucket; here the bucket carries the notification
    # and so comes after the permission (the permission only names the bucket, by ARN).
    native.depends_on = [(logical_id(key), why) for key, why in m.ordering(r, c.index)
                         if c.index[key].kind != "bucket"]
    return [native]


def _notification(r: model.BucketNotification, c: Context) -> list[m.Native]:
    configurations = [{"Event": event, "Function": c.v(r.function),
                       "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": r.prefix}]}}} for event in r.events]
    # In CloudFormation the notification is a property of the bucket: merged into it.
    native = c.native(r, "AWS::S3::Bucket", {"NotificationConfiguration": {"LambdaConfigurations": configurations}})
    native.name, native.merge_into = logical_id("bucket"), logical_id("bucket")
    native.depends_on = [(name, why) for name, why in native.depends_on if name != native.name]
    return [native]


def _api(r: model.HttpApi, c: Context) -> list[m.Native]:
    return [c.native(r, "AWS::ApiGatewayV2::Api", {"Name": c.v(r.name), "ProtocolType": "HTTP",
                                                   "Description": c.v(r.description), "Tags": c.tag_map(r)},
                     comment="No Target (quick create): it would add an open $default route.")]


def _integration(r: model.ApiIntegration, c: Context) -> list[m.Native]:
    return [c.native(r, "AWS::ApiGatewayV2::Integration", {
        "ApiId": c.v(r.api), "IntegrationType": "AWS_PROXY", "IntegrationMethod": "POST",
        "IntegrationUri": c.v(r.function), "PayloadFormatVersion": r.payload_version,
        "TimeoutInMillis": r.timeout_ms})]


def _routes(r: model.ApiRoutes, c: Context) -> list[m.Native]:
    return [c.native(r, "AWS::ApiGatewayV2::Route", {"ApiId": c.v(r.api), "RouteKey": key, "Target": c.v(r.target),
                                                     "AuthorizationType": r.authorization},
                     suffix=_route_suffix(key)) for key in r.route_keys]


def _stage(r: model.ApiStage, c: Context) -> list[m.Native]:
    return [c.native(r, "AWS::ApiGatewayV2::Stage", {"ApiId": c.v(r.api), "StageName": r.name,
                                                     "AutoDeploy": r.auto_deploy, "Tags": c.tag_map(r)})]


def _route_suffix(route_key: str) -> str:
    method, path = route_key.split(" ", 1)
    words = [w.strip("{}+") for w in path.split("/") if w]
    return method.capitalize() + "".join(w.capitalize() for w in words)


def _display(value: str) -> str:
    return "".join(p if isinstance(p, str) else f"<{p.name}>" for p in m.split(value))


_ID, _ARN = {"id": "Ref"}, {"arn": "Arn"}
TABLE: dict[str, m.KindMapping] = {
    "vpc": m.KindMapping(_vpc, _ID),
    "subnet": m.KindMapping(_subnet, _ID),
    "route-table": m.KindMapping(_route_table, _ID),
    "vpc-endpoint": m.KindMapping(_endpoint, _ID),
    "security-group": m.KindMapping(_security_group, {"id": "GroupId"}),
    "efs": m.KindMapping(_file_system, {**_ID, **_ARN}),
    "mount-target": m.KindMapping(_mount_target, _ID),
    "access-point": m.KindMapping(_access_point, {**_ID, **_ARN}),
    "bucket": m.KindMapping(_bucket, {"id": "Ref", "name": "Ref", **_ARN}),
    "role": m.KindMapping(_role, {"id": "Ref", "name": "Ref", **_ARN}),
    "log-group": m.KindMapping(_log_group, {"name": "Ref", **_ARN}),
    "function": m.KindMapping(_function, {"name": "Ref", **_ARN}),
    "permission": m.KindMapping(_permission, _ID),
    "bucket-notification": m.KindMapping(_notification, {}),
    "http-api": m.KindMapping(_api, {**_ID, "endpoint": "ApiEndpoint"}),
    "api-integration": m.KindMapping(_integration, _ID),
    "api-routes": m.KindMapping(_routes, {}),
    "api-stage": m.KindMapping(_stage, _ID),
}


# --- the template ----------------------------------------------------------------------------

def natives(resources: list[Resource], c: Context) -> list[m.Native]:
    m.check_table(TABLE, resources, "CloudFormation")
    out: list[m.Native] = []
    for r in resources:
        render: Callable[..., list[m.Native]] = TABLE[r.kind].render
        out.extend(render(r, c))
    return out


def _parameters(c: Context) -> dict[str, Any]:
    d = c.defaults
    return {
        "StackName": {"Type": "String", "Default": d.stack, "AllowedPattern": "^[a-z][a-z0-9-]{0,20}$",
                      "Description": "efsctl stack name (not the CloudFormation stack's): in every name and in the "
                                     "efsctl:stack tag"},
        "VpcCidr": {"Type": "String", "Default": d.vpc_cidr,
                    "AllowedPattern": rf"^(\d{{1,3}}\.){{3}}\d{{1,3}}/{c.vpc_prefix}$",
                    "Description": f"IPv4 block of the VPC, a /{c.vpc_prefix}; the two subnets are its first two "
                                   f"/{32 - c.subnet_bits} blocks"},
        "Memory": {"Type": "Number", "Default": d.memory, "MinValue": 128, "MaxValue": 10240,
                   "Description": "Memory of both functions, MB"},
        "Architecture": {"Type": "String", "Default": d.architecture, "AllowedValues": ["arm64", "x86_64"],
                         "Description": "Instruction set of both functions"},
    }


def _outputs(c: Context) -> dict[str, Any]:
    return {"".join(w.capitalize() for w in o.name.split("_")): {"Description": o.description, "Value": c.v(o.ref)}
            for o in m.OUTPUTS}


def template(defaults: m.Defaults, *, code_uri: str, code: bytes = b"", code_sha256: str = "",
             resources: list[Resource] | None = None) -> tuple[dict[str, Any], yaml_out.Comments]:
    """The template (JSON form) and its comments. ``resources`` defaults to the model."""
    resources = resources if resources is not None else m.parameterised_stack(defaults, code, code_sha256)
    c = Context(resources, defaults, code_uri)
    comments = yaml_out.Comments()
    body: dict[str, dict[str, Any]] = {}
    for native in natives(resources, c):
        if native.merge_into:
            target = body[native.merge_into]
            target["Properties"].update(native.body)
            keys = target["Metadata"][META_KEY]
            target["Metadata"][META_KEY] = [*(keys if isinstance(keys, list) else [keys]), native.key]
        else:
            body[native.name] = {"Type": native.type, "Metadata": {META_KEY: native.key}, "Properties": native.body}
            target = body[native.name]
            if native.comment:
                comments.before[("Resources", native.name)] = [native.comment]
        if native.depends_on:
            depends = target.setdefault("DependsOn", [])
            for name, why in native.depends_on:
                comments.after[("Resources", native.merge_into or native.name, "DependsOn", len(depends))] = why
                depends.append(name)
    for name, item in body.items():  # Type, Metadata, DependsOn, Properties: the usual reading order
        body[name] = {k: item[k] for k in ("Type", "Metadata", "DependsOn", "Properties") if k in item}
    document = {"AWSTemplateFormatVersion": "2010-09-09",
                "Description": f"efsctl stack {defaults.stack}: two Lambda functions sharing one EFS file system "
                               f"(generated by efsctl {__version__} package)",
                "Parameters": _parameters(c), "Resources": body, "Outputs": _outputs(c)}
    comments.before[("AWSTemplateFormatVersion",)] = HEADER
    comments.before[("Resources",)] = [""]
    comments.before[("Outputs",)] = [""]
    return document, comments


HEADER = [
    "Generated by `efsctl package` from the stack model `efsctl up` deploys: the same resources,",
    "properties, tags and policies. Deploy with `aws cloudformation package` then `deploy` (README.md).",
    "",
    "Names are efsctl's deterministic ones, with CloudFormation supplying what `up` looks up:",
    "  bucket          efsctl-${StackName}-${AWS::AccountId}-${AWS::Region}",
    "  functions/roles efsctl-${StackName}-producer | -consumer; log groups /aws/lambda/<function>",
    "  security groups efsctl-${StackName}-lambda | -efs; HTTP API efsctl-${StackName}",
    "  zones           the region's first two (Fn::GetAZs), as `up` takes the first two available",
    "ARNs take ${AWS::Partition}.",
    "",
]


def render(defaults: m.Defaults, *, code_uri: str, code: bytes = b"", code_sha256: str = "") -> str:
    document, comments = template(defaults, code_uri=code_uri, code=code, code_sha256=code_sha256)
    return yaml_out.dump(document, comments)
