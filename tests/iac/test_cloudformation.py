"""The CloudFormation template against the model: the same resources, properties, tags, policies
and orders, for the default stack and for non-default settings; cfn-lint finds no error."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from efsctl.stack.iac import cloudformation, mapping, terraform
from efsctl.stack.iac.mapping import Defaults
from efsctl.stack.steps.compute import function_config

from iac_support import ACCOUNT, REGION, CfnEvaluator, cfn_tags, load_template, model_resources

DEFAULT = Defaults("default")
CUSTOM = Defaults("team-a", vpc_cidr="10.50.0.0/20", memory=4096, architecture="x86_64")


def expected(r: Any) -> list[tuple[str, dict[str, Any]]]:
    """What one model resource must become: (type, properties it must have), stated independently
    of the code under test, with the model's values (its refs resolved to fakes)."""
    tags = [{"Key": k, "Value": v} for k, v in r.tags.items()]
    kind = r.kind
    if kind == "vpc":
        return [("AWS::EC2::VPC", {"CidrBlock": r.cidr, "EnableDnsSupport": True, "EnableDnsHostnames": True,
                                   "Tags": tags})]
    if kind == "subnet":
        return [("AWS::EC2::Subnet", {"VpcId": r.vpc, "CidrBlock": r.cidr, "AvailabilityZone": r.zone,
                                      "MapPublicIpOnLaunch": False, "Tags": tags})]
    if kind == "route-table":
        return [("AWS::EC2::RouteTable", {"VpcId": r.vpc, "Tags": tags})] + [
            ("AWS::EC2::SubnetRouteTableAssociation", {"RouteTableId": "⟨route-table⟩", "SubnetId": s})
            for s in r.subnets]
    if kind == "vpc-endpoint":
        return [("AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Gateway", "VpcId": r.vpc,
                                           "ServiceName": r.service_name, "RouteTableIds": list(r.route_tables),
                                           "Tags": tags})]
    if kind == "security-group":
        ingress = [{"IpProtocol": i.protocol, "FromPort": i.port, "ToPort": i.port,
                    "SourceSecurityGroupId": i.source_group, "Description": i.description} for i in r.ingress]
        return [("AWS::EC2::SecurityGroup", {"GroupName": r.group_name, "GroupDescription": r.description,
                                             "VpcId": r.vpc, "Tags": tags,
                                             **({"SecurityGroupIngress": ingress} if ingress else {})})]
    if kind == "efs":
        return [("AWS::EFS::FileSystem", {"Encrypted": True, "ThroughputMode": "elastic",
                                          "PerformanceMode": "generalPurpose", "FileSystemTags": tags})]
    if kind == "mount-target":
        return [("AWS::EFS::MountTarget", {"FileSystemId": r.file_system, "SubnetId": r.subnet,
                                           "SecurityGroups": list(r.security_groups)})]
    if kind == "access-point":
        return [("AWS::EFS::AccessPoint", {"FileSystemId": r.file_system, "PosixUser": {"Uid": "1000", "Gid": "1000"},
                                           "RootDirectory": {"Path": "/lambda", "CreationInfo": {
                                               "OwnerUid": "1000", "OwnerGid": "1000", "Permissions": "0750"}},
                                           "AccessPointTags": tags})]
    if kind == "bucket":
        return [("AWS::S3::Bucket", {"BucketName": r.name,
                                     "PublicAccessBlockConfiguration": dict(r.public_access_block),
                                     "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                                         {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
                                     "Tags": tags}),
                ("AWS::S3::BucketPolicy", {"Bucket": "⟨bucket⟩", "PolicyDocument": r.policy})]
    if kind == "role":
        return [("AWS::IAM::Role", {"RoleName": r.name, "Description": r.description,
                                    "AssumeRolePolicyDocument": r.trust,
                                    "Policies": [{"PolicyName": "efsctl", "PolicyDocument": r.policy}], "Tags": tags})]
    if kind == "log-group":
        return [("AWS::Logs::LogGroup", {"LogGroupName": r.name, "RetentionInDays": 14, "Tags": tags})]
    if kind == "function":
        return [("AWS::Lambda::Function", {"FunctionName": r.name, "PackageType": "Zip", "Code": "handlers.zip",
                                           "Architectures": [r.architecture], "Tags": tags, **function_config(r)})]
    if kind == "permission":
        return [("AWS::Lambda::Permission", {"Action": "lambda:InvokeFunction", "FunctionName": r.function,
                                             "Principal": r.principal, "SourceArn": r.source_arn,
                                             **({"SourceAccount": r.source_account} if r.source_account else {})})]
    if kind == "bucket-notification":
        return [("AWS::S3::Bucket", {"NotificationConfiguration": {"LambdaConfigurations": [
            {"Event": "s3:ObjectCreated:*", "Function": "⟨fn-producer.arn⟩",
             "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "models/"}]}}}]}})]
    if kind == "http-api":
        return [("AWS::ApiGatewayV2::Api", {"Name": r.name, "ProtocolType": "HTTP", "Description": r.description,
                                            "Tags": dict(r.tags)})]
    if kind == "api-integration":
        return [("AWS::ApiGatewayV2::Integration", {"ApiId": "⟨api⟩", "IntegrationType": "AWS_PROXY",
                                                    "IntegrationMethod": "POST", "IntegrationUri": r.function,
                                                    "PayloadFormatVersion": "2.0", "TimeoutInMillis": 29000})]
    if kind == "api-routes":
        return [("AWS::ApiGatewayV2::Route", {"ApiId": "⟨api⟩", "RouteKey": key, "AuthorizationType": "AWS_IAM",
                                              "Target": "integrations/⟨api-integration⟩"}) for key in r.route_keys]
    if kind == "api-stage":
        return [("AWS::ApiGatewayV2::Stage", {"ApiId": "⟨api⟩", "StageName": "$default", "AutoDeploy": True,
                                              "Tags": dict(r.tags)})]
    raise AssertionError(f"no expectation for {kind}: add one (and a mapping in both formats)")


def generated(defaults: Defaults, code=None) -> tuple[str, dict[str, Any]]:
    text = cloudformation.render(defaults, code_uri="handlers.zip", code=code.zip_bytes if code else b"",
                                 code_sha256=code.sha256 if code else "")
    return text, load_template(text)


def by_key(template: dict[str, Any]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    found: dict[str, list] = {}
    for name, resource in template["Resources"].items():
        keys = resource["Metadata"]["efsctl:resource"]
        for key in keys if isinstance(keys, list) else [keys]:
            found.setdefault(key, []).append((name, resource))
    return found


def test_every_model_kind_has_one_mapping_in_each_format():
    assert set(cloudformation.TABLE) == mapping.model_kinds() == set(terraform.TABLE)


def test_a_kind_without_a_mapping_does_not_render():
    resources = mapping.parameterised_stack(DEFAULT) + [SimpleNamespace(kind="queue", key="queue")]
    with pytest.raises(LookupError, match="no CloudFormation mapping for the model's queue"):
        cloudformation.template(DEFAULT, code_uri="handlers.zip", resources=resources)


@pytest.mark.parametrize("defaults", [DEFAULT, CUSTOM], ids=["default", "custom"])
def test_template_has_exactly_the_models_resources_properties_tags_and_policies(defaults):
    _, template = generated(defaults)
    evaluate = CfnEvaluator(template)
    model = model_resources(defaults.stack, vpc_cidr=defaults.vpc_cidr, memory=defaults.memory,
                            architecture=defaults.architecture)
    found = by_key(template)
    assert set(found) == set(model)
    for key, resource in model.items():
        natives = [(r["Type"], evaluate(r["Properties"])) for _, r in found[key]]
        wanted = expected(resource)
        assert sorted(t for t, _ in natives) == sorted(t for t, _ in wanted), key
        for type_, properties in wanted:
            assert any(t == type_ and {k: p.get(k) for k in properties} == properties for t, p in natives), \
                (key, type_, properties, natives)


@pytest.mark.parametrize("defaults", [DEFAULT, CUSTOM], ids=["default", "custom"])
def test_parameters_default_to_the_settings_and_change_what_they_name(defaults):
    _, template = generated(defaults)
    parameters = template["Parameters"]
    assert {k: p["Default"] for k, p in parameters.items()} == {
        "StackName": defaults.stack, "VpcCidr": defaults.vpc_cidr, "Memory": defaults.memory,
        "Architecture": defaults.architecture}
    # Deployed with other values, the template is the model of those values.
    other = {"StackName": "prod", "Memory": 512, "Architecture": "arm64",
             "VpcCidr": "10.60.0.0/20" if defaults.vpc_cidr.endswith("/20") else "10.60.0.0/16"}
    evaluate = CfnEvaluator(template, other)
    model = model_resources("prod", vpc_cidr=other["VpcCidr"], memory=512, architecture="arm64")
    resources = template["Resources"]
    assert evaluate(resources["SubnetB"]["Properties"]["CidrBlock"]) == model["subnet-b"].cidr
    function = evaluate(resources["FnConsumer"]["Properties"])
    assert (function["FunctionName"], function["MemorySize"], function["Architectures"]) == \
        ("efsctl-prod-consumer", 512, ["arm64"])
    assert evaluate(resources["Bucket"]["Properties"]["BucketName"]) == f"efsctl-prod-{ACCOUNT}-{REGION}"


def test_orders_the_model_does_not_state_are_depends_on_with_their_reason():
    text, template = generated(DEFAULT)
    resources = template["Resources"]
    assert resources["FnProducer"]["DependsOn"] == ["LogProducer", "MtA", "MtB"]
    assert resources["FnConsumer"]["DependsOn"] == ["LogConsumer", "MtA", "MtB"]
    # The notification is the bucket's property: the bucket waits for the invoke permission,
    # and the permission (which only names the bucket) no longer waits for the bucket.
    assert resources["Bucket"]["DependsOn"] == ["S3Permission"]
    assert "DependsOn" not in resources["S3Permission"]
    assert "- LogProducer  # its log group first, so Lambda never creates one without retention" in text
    assert "- S3Permission  # S3 validates the destination: the invoke permission must exist first" in text
    assert "- MtA  # Lambda refuses a file system until a mount target is available" in text


def test_outputs_name_the_api_url_bucket_and_functions():
    _, template = generated(DEFAULT)
    evaluate = CfnEvaluator(template)
    assert {k: evaluate(o["Value"]) for k, o in template["Outputs"].items()} == {
        "ApiUrl": "⟨api.endpoint⟩", "Bucket": "⟨bucket⟩", "ProducerFunction": "⟨fn-producer⟩",
        "ConsumerFunction": "⟨fn-consumer⟩"}


def test_names_follow_the_models_deterministic_names():
    _, template = generated(CUSTOM)
    evaluate = CfnEvaluator(template)
    resources = template["Resources"]
    assert evaluate(resources["Bucket"]["Properties"]["BucketName"]) == f"efsctl-team-a-{ACCOUNT}-{REGION}"
    assert evaluate(resources["LogProducer"]["Properties"]["LogGroupName"]) == "/aws/lambda/efsctl-team-a-producer"
    assert cfn_tags(evaluate(resources["RoleProducer"]["Properties"]["Tags"]))["efsctl:region"] == REGION
    assert evaluate(resources["SubnetA"]["Properties"]["AvailabilityZone"]) == "eu-west-1a"
    assert [evaluate(resources[s]["Properties"]["CidrBlock"]) for s in ("SubnetA", "SubnetB")] == \
        ["10.50.0.0/24", "10.50.1.0/24"]


def _lint(text: str):
    from cfnlint.api import ManualArgs, lint

    return lint(text, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))


@pytest.mark.parametrize("defaults", [DEFAULT, CUSTOM], ids=["default", "custom"])
def test_cfn_lint_finds_no_error(defaults, code):
    text, _ = generated(defaults, code)
    matches = _lint(text)
    assert [m for m in matches if m.rule.severity == "error"] == []
    # Its one warning is the point: Code is a local path, for `aws cloudformation package`.
    assert {m.rule.id for m in matches} == {"W3002"}
    packaged = text.replace("Code: handlers.zip", "Code:\n        S3Bucket: artifacts\n        S3Key: handlers.zip")
    assert packaged != text
    assert [f"{m.rule.id} {m.message}" for m in _lint(packaged)] == []


def test_the_yaml_reads_the_same_through_pyyaml_with_cloudformation_tags():
    """What the AWS CLI and moto use (PyYAML with constructors for the short forms) reads the
    template as cfn-lint does."""
    import yaml
    from moto.cloudformation.utils import yaml_tag_constructor

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("", yaml_tag_constructor)
    text, template = generated(CUSTOM)
    assert yaml.load(text, Loader=Loader) == template  # noqa: S506 - a SafeLoader subclass
