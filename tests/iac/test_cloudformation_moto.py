"""The template deployed into moto's CloudFormation creates what `efsctl up` creates.

One in-process moto holds two stacks: one made by `efsctl up` (the stack engine), one by
CloudFormation from the generated template, after what `aws cloudformation package` does (the
zip uploaded, ``Code`` pointed at it). Both are described straight from the service APIs, their
ids and stack names replaced by the model's keys, and compared. moto's CloudFormation takes
neither ``AWS::S3::BucketPolicy`` nor the ``AWS::ApiGatewayV2`` types: those are left out (and
what names them given a stand-in), and the comparison says exactly what that, and what
CloudFormation itself names differently, changes.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from efsctl.stack.deploy import UpSettings, deploy
from efsctl.stack.iac import cloudformation
from efsctl.stack.iac.mapping import Defaults
from efsctl.stack.model import KEYS
from efsctl.waits import FakeClock

from iac_support import load_template

REGION = "us-east-1"
ACCOUNT = "123456789012"
UP, CFN = "upstk", "cfnstk"
MOTO_CANNOT = {"AWS::S3::BucketPolicy", "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Integration",
               "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Stage"}
API_STAND_IN = "apistandin"

# (key, field): why the CloudFormation stack differs there from `up`'s. Nothing else may differ.
DIFFERENCES = {
    # CloudFormation's own choices (the template's comments say so too).
    ("efs", "creation_token"): "CloudFormation sets the file system's creation token itself",
    ("s3-permission", "sid"): "CloudFormation names the permission statement itself",
    ("api-permission", "sid"): "CloudFormation names the permission statement itself",
    # What moto 5.2's CloudFormation leaves out of a type it does take (read in its source).
    ("bucket", "policy"): "moto's CloudFormation cannot take AWS::S3::BucketPolicy",
    ("bucket", "public_access_block"): "moto's AWS::S3::Bucket ignores PublicAccessBlockConfiguration",
    ("fn-producer", "architectures"): "moto's AWS::Lambda::Function ignores Architectures",
    ("fn-consumer", "architectures"): "moto's AWS::Lambda::Function ignores Architectures",
    ("fn-producer", "tags"): "moto's AWS::Lambda::Function ignores Tags",
    ("fn-consumer", "tags"): "moto's AWS::Lambda::Function ignores Tags",
    ("route-table", "tags"): "moto's AWS::EC2::RouteTable ignores Tags",
    ("route-table", "subnets"): "moto's AWS::EC2::SubnetRouteTableAssociation is not listed by DescribeRouteTables",
    ("s3-endpoint", "tags"): "moto's AWS::EC2::VPCEndpoint ignores Tags",
    ("sg-efs", "ingress"): "moto's AWS::EC2::SecurityGroup drops an inline rule's Description",
    ("vpc", "dns_hostnames"): "moto's AWS::EC2::VPC ignores EnableDnsHostnames",
}
NOT_CREATED = {
    "api", "api-integration", "api-routes", "api-stage",  # AWS::ApiGatewayV2::*: moto cannot
    "s3-notification",  # moto's AWS::S3::Bucket ignores NotificationConfiguration
}


@pytest.fixture
def moto(aws_credentials, monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)
    _fill_moto_gaps(monkeypatch)
    with mock_aws():
        yield


def _fill_moto_gaps(patch: pytest.MonkeyPatch) -> None:
    """What AWS documents and moto 5.2's CloudFormation lacks, for the types it does take:
    ``Fn::Cidr``, and ``Fn::GetAtt`` ``Arn`` of an EFS file system and access point."""
    from moto.cloudformation import parsing
    from moto.efs import models as efs

    original = parsing.clean_json

    def clean_json(value, resources_map):
        if isinstance(value, dict) and list(value) == ["Fn::Cidr"]:
            block, count, bits = (original(v, resources_map) for v in value["Fn::Cidr"])
            blocks = ipaddress.ip_network(block).subnets(new_prefix=32 - int(bits))
            return [str(b) for _, b in zip(range(int(count)), blocks)]
        return original(value, resources_map)

    def arn(field):
        def get_cfn_attribute(self, name):
            if name == "Arn":
                return getattr(self, field)
            raise NotImplementedError(name)
        return get_cfn_attribute

    patch.setattr(parsing, "clean_json", clean_json)
    for cls, field in ((efs.FileSystem, "file_system_arn"), (efs.AccessPoint, "access_point_arn")):
        patch.setattr(cls, "get_cfn_attribute", arn(field), raising=False)
        patch.setattr(cls, "has_cfn_attr", classmethod(lambda cls, attr: attr == "Arn"), raising=False)


def _client(service: str):
    import boto3

    return boto3.client(service, region_name=REGION)


def deploy_template(code) -> dict[str, Any]:
    """`aws cloudformation package` and `deploy`, for the types moto takes; returns the stack."""
    text = cloudformation.render(Defaults(CFN), code_uri="handlers.zip", code=code.zip_bytes, code_sha256=code.sha256)
    template = load_template(text)
    s3 = _client("s3")
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="handlers.zip", Body=code.zip_bytes)
    left_out = {n for n, r in template["Resources"].items() if r["Type"] in MOTO_CANNOT}
    resources = {}
    for name, resource in template["Resources"].items():
        if name in left_out:
            continue
        properties = resource["Properties"]
        if properties.get("Code") == "handlers.zip":
            properties["Code"] = {"S3Bucket": "artifacts", "S3Key": "handlers.zip"}
        resources[name] = resource
    template["Resources"] = resources
    template["Outputs"] = {k: o for k, o in template["Outputs"].items()
                           if not any(n in json.dumps(o) for n in left_out)}
    body = json.dumps(template).replace("${Api}", API_STAND_IN)
    assert not any(f'"{n}"' in body or "${" + n in body for n in left_out)
    cfn = _client("cloudformation")
    cfn.create_stack(StackName=f"efsctl-{CFN}", TemplateBody=body, Capabilities=["CAPABILITY_NAMED_IAM"])
    return cfn.describe_stacks(StackName=f"efsctl-{CFN}")["Stacks"][0]


def test_the_template_creates_what_up_creates(moto, code):
    from efsctl.aws.session import AwsContext

    aws = AwsContext(region=REGION, credentials={"aws_access_key_id": "testing", "aws_secret_access_key": "testing"})
    deployment = deploy(aws, UP, UpSettings(), code=code, clock=FakeClock())
    deployment.execution.raise_for_error()
    stack = deploy_template(code)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert {o["OutputKey"] for o in stack["Outputs"]} == {"Bucket", "ProducerFunction", "ConsumerFunction"}

    by_up = describe(UP, {deployment.resources["api"].id: "api"})
    by_template = describe(CFN, {API_STAND_IN: "api"})
    assert set(by_up) == set(KEYS)
    assert set(by_up) - set(by_template) == NOT_CREATED
    assert set(by_template) <= set(by_up)
    differences = {(key, field) for key in by_template for field in by_up[key] | by_template[key]
                   if by_up[key].get(field) != by_template[key].get(field)}
    unexplained = {d: (by_up[d[0]].get(d[1]), by_template[d[0]].get(d[1])) for d in differences ^ set(DIFFERENCES)}
    assert not unexplained
    # The code deployed is the package's zip, byte for byte.
    assert by_template["fn-producer"]["code_sha256"] == code.sha256


# --- describing a stack from the APIs ----------------------------------------------------------

def describe(stack: str, known: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each resource's properties by model key, every id, ARN and the stack name replaced by
    ``<key>`` / ``<stack>`` so two stacks compare. ``known`` names ids seen elsewhere."""
    found: dict[str, dict[str, Any]] = {}
    ids = dict(known)
    _network(stack, found, ids)
    _storage(stack, found, ids)
    _compute(stack, found, ids)
    _api(stack, found, ids)
    text = json.dumps(found, sort_keys=True, default=str)
    for physical in sorted(ids, key=len, reverse=True):
        text = text.replace(physical, f"<{ids[physical]}>")
    described = json.loads(text.replace(f"efsctl-{stack}", "efsctl-<stack>").replace(f'"{stack}"', '"<stack>"')
                           .replace(f"efsctl {stack}:", "efsctl <stack>:"))
    for properties in described.values():  # sets of ids, in no order once they are keys
        for field in ("subnets", "security_groups", "route_tables"):
            if isinstance(properties.get(field), list):
                properties[field].sort()
    return described


def _document(value):
    """A policy document as data: moto's CloudFormation stores an inline policy as the Python
    repr of its dict (AWS returns JSON), so read both."""
    import ast

    return ast.literal_eval(value) if isinstance(value, str) else value


def _or_none(call):
    from botocore.exceptions import ClientError

    try:
        return call()
    except ClientError:
        return None


def _tags(items) -> dict[str, str]:
    # CloudFormation adds its own (aws:cloudformation:stack-name...), as it does on AWS.
    return {t["Key"]: t["Value"] for t in items or [] if not t["Key"].startswith("aws:")}


def _network(stack: str, found: dict, ids: dict) -> None:
    ec2 = _client("ec2")
    tagged = [{"Name": "tag:efsctl:stack", "Values": [stack]}]
    for vpc in ec2.describe_vpcs(Filters=tagged)["Vpcs"]:
        ids[vpc["VpcId"]] = "vpc"
        support = ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute="enableDnsSupport")
        hostnames = ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute="enableDnsHostnames")
        found["vpc"] = {"cidr": vpc["CidrBlock"], "tags": _tags(vpc.get("Tags")),
                        "dns_support": support["EnableDnsSupport"]["Value"],
                        "dns_hostnames": hostnames["EnableDnsHostnames"]["Value"]}
    for subnet in ec2.describe_subnets(Filters=tagged)["Subnets"]:
        key = _tags(subnet["Tags"])["efsctl:resource"]
        ids[subnet["SubnetId"]] = key
        found[key] = {"vpc": subnet["VpcId"], "cidr": subnet["CidrBlock"], "zone": subnet["AvailabilityZone"],
                      "public_ips": subnet["MapPublicIpOnLaunch"], "tags": _tags(subnet["Tags"])}
    vpc_ids = [v for v, k in ids.items() if k == "vpc"]
    for table in ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": vpc_ids}])["RouteTables"]:
        if any(a.get("Main") for a in table["Associations"]):
            continue  # the VPC's own main table
        ids[table["RouteTableId"]] = "route-table"
        found["route-table"] = {"vpc": table["VpcId"], "tags": _tags(table["Tags"]),
                                "subnets": [a["SubnetId"] for a in table["Associations"] if a.get("SubnetId")]}
    for endpoint in ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": vpc_ids}])["VpcEndpoints"]:
        found["s3-endpoint"] = {"service": endpoint["ServiceName"], "type": endpoint["VpcEndpointType"],
                                "route_tables": endpoint["RouteTableIds"], "tags": _tags(endpoint.get("Tags"))}
    groups = ec2.describe_security_groups(Filters=tagged)["SecurityGroups"]
    for group in groups:
        ids[group["GroupId"]] = _tags(group["Tags"])["efsctl:resource"]
    for group in groups:
        found[ids[group["GroupId"]]] = {
            "name": group["GroupName"], "description": group["Description"], "vpc": group["VpcId"],
            "tags": _tags(group["Tags"]),
            "ingress": sorted([p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), pair["GroupId"],
                               pair.get("Description")]
                              for p in group["IpPermissions"] for pair in p["UserIdGroupPairs"]),
            "ingress_open": [r["CidrIp"] for p in group["IpPermissions"] for r in p.get("IpRanges", [])],
            "egress": sorted([p["IpProtocol"], r["CidrIp"]] for p in group["IpPermissionsEgress"]
                             for r in p.get("IpRanges", []))}


def _storage(stack: str, found: dict, ids: dict) -> None:
    efs, s3 = _client("efs"), _client("s3")
    for fs in efs.describe_file_systems()["FileSystems"]:
        if _tags(fs["Tags"]).get("efsctl:stack") != stack:
            continue
        ids[fs["FileSystemArn"]], ids[fs["FileSystemId"]] = "efs.arn", "efs"
        found["efs"] = {"encrypted": fs["Encrypted"], "throughput": fs["ThroughputMode"],
                        "performance": fs["PerformanceMode"], "tags": _tags(fs["Tags"]),
                        "creation_token": fs["CreationToken"]}
        for target in efs.describe_mount_targets(FileSystemId=fs["FileSystemId"])["MountTargets"]:
            key = "mt-" + ids[target["SubnetId"]][-1]
            groups = efs.describe_mount_target_security_groups(MountTargetId=target["MountTargetId"])
            found[key] = {"subnet": target["SubnetId"], "file_system": target["FileSystemId"],
                          "security_groups": groups["SecurityGroups"]}
        for point in efs.describe_access_points(FileSystemId=fs["FileSystemId"])["AccessPoints"]:
            ids[point["AccessPointArn"]], ids[point["AccessPointId"]] = "access-point.arn", "access-point"
            found["access-point"] = {"posix_user": point["PosixUser"], "root": point["RootDirectory"],
                                     "tags": _tags(point["Tags"])}
    bucket = f"efsctl-{stack}-{ACCOUNT}-{REGION}"
    found["bucket"] = {
        "public_access_block": _or_none(lambda: s3.get_public_access_block(Bucket=bucket)[
            "PublicAccessBlockConfiguration"]),
        "encryption": s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"],
        "policy": _or_none(lambda: json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])),
        "tags": _tags(s3.get_bucket_tagging(Bucket=bucket)["TagSet"])}
    for config in s3.get_bucket_notification_configuration(Bucket=bucket).get("LambdaFunctionConfigurations", []):
        found["s3-notification"] = {"function": config["LambdaFunctionArn"], "events": config["Events"],
                                    "filter": config["Filter"], "id": config.get("Id")}


def _compute(stack: str, found: dict, ids: dict) -> None:
    iam, lam, logs = _client("iam"), _client("lambda"), _client("logs")
    for which in ("producer", "consumer"):
        name = f"efsctl-{stack}-{which}"
        role = iam.get_role(RoleName=name)["Role"]
        ids[role["Arn"]] = f"role-{which}.arn"
        found[f"role-{which}"] = {
            "trust": role["AssumeRolePolicyDocument"], "description": role.get("Description"),
            "tags": _tags(iam.list_role_tags(RoleName=name)["Tags"]),
            "policies": {p: _document(iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"])
                         for p in iam.list_role_policies(RoleName=name)["PolicyNames"]},
            "attached": iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
        group = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"][0]
        tags = logs.list_tags_log_group(logGroupName=group["logGroupName"])["tags"]
        found[f"log-{which}"] = {"retention": group.get("retentionInDays"),
                                 "tags": {k: v for k, v in tags.items() if not k.startswith("aws:")}}
    for which in ("producer", "consumer"):
        function = lam.get_function(FunctionName=f"efsctl-{stack}-{which}")
        config = function["Configuration"]
        ids[config["FunctionArn"]] = f"fn-{which}.arn"
        found[f"fn-{which}"] = {
            "role": config["Role"], "handler": config["Handler"], "runtime": config["Runtime"],
            "memory": config["MemorySize"], "timeout": config["Timeout"], "architectures": config["Architectures"],
            "description": config["Description"], "environment": config["Environment"]["Variables"],
            "subnets": config["VpcConfig"]["SubnetIds"],
            "security_groups": config["VpcConfig"]["SecurityGroupIds"],
            "file_systems": config.get("FileSystemConfigs"), "package_type": config["PackageType"],
            "code_sha256": config["CodeSha256"],
            "tags": {k: v for k, v in (function.get("Tags") or {}).items() if not k.startswith("aws:")}}
        key = "s3-permission" if which == "producer" else "api-permission"
        for statement in json.loads(lam.get_policy(FunctionName=f"efsctl-{stack}-{which}")["Policy"])["Statement"]:
            found[key] = {"sid": statement["Sid"], "principal": statement["Principal"], "action": statement["Action"],
                          "condition": statement.get("Condition"), "resource": statement["Resource"]}


def _api(stack: str, found: dict, ids: dict) -> None:
    api = _client("apigatewayv2")
    for item in api.get_apis()["Items"]:
        if (item.get("Tags") or {}).get("efsctl:stack") != stack:
            continue
        api_id = item["ApiId"]
        found["api"] = {"name": item["Name"], "protocol": item["ProtocolType"], "tags": item["Tags"]}
        integrations = api.get_integrations(ApiId=api_id)["Items"]
        for integration in integrations:
            ids[integration["IntegrationId"]] = "api-integration"
            found["api-integration"] = {k: integration.get(k) for k in (
                "IntegrationType", "IntegrationUri", "PayloadFormatVersion", "TimeoutInMillis")}
        found["api-routes"] = {"routes": sorted([r["RouteKey"], r["Target"], r["AuthorizationType"]]
                                                for r in api.get_routes(ApiId=api_id)["Items"])}
        found["api-stage"] = {"stages": [[s["StageName"], s.get("AutoDeploy")]
                                         for s in api.get_stages(ApiId=api_id)["Items"]]}
