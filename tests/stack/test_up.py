"""`up` against in-process moto: creates exactly the stack, converges, repairs drift, waits in order."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from efsctl.stack import package
from efsctl.stack.deploy import UpSettings, deploy
from efsctl.stack.model import KEYS, TAG_RESOURCE, TAG_STACK, Names
from efsctl.waits import FakeClock

CODE = package.Package(zip_bytes=package.build_zip({"producer.py": b"def handler(e, c): pass\n",
                                                    "consumer.py": b"def handler(e, c): pass\n"}),
                       sha256="", files=("consumer.py", "producer.py"))
CODE = package.Package(CODE.zip_bytes, package.code_sha256(CODE.zip_bytes), CODE.files)


def up(aws, stack, *, settings=UpSettings(), code=CODE, clock=None):
    deployment = deploy(aws, stack, settings, code=code, clock=clock or FakeClock())
    deployment.execution.raise_for_error()
    return deployment


@pytest.fixture
def fresh(make_aws, new_stack):
    """A stack that `up` just created, and a context whose call log starts empty."""
    aws, calls = make_aws()
    stack = new_stack()
    up(aws, stack)
    calls.clear()
    return aws, calls, stack


def test_fresh_up_creates_exactly_the_design_resources_tagged(make_aws, new_stack, census, expected):
    aws, calls = make_aws()
    stack = new_stack()
    deployment = up(aws, stack)
    assert [a.verb for a in deployment.preview.plan] == ["create"] * len(KEYS)
    assert census(aws, stack) == expected
    taggable = {k: o for k, o in deployment.resources.items() if deployment.preview.plan.get(k).resource.taggable}
    assert set(taggable) == set(KEYS) - {"mt-a", "mt-b", "s3-permission", "s3-notification", "api-integration",
                                         "api-routes", "api-permission"}
    ec2 = aws.client("ec2")
    for key in ("vpc", "subnet-a", "subnet-b", "route-table", "s3-endpoint", "sg-lambda", "sg-efs"):
        tags = {t["Key"]: t["Value"] for t in ec2.describe_tags(
            Filters=[{"Name": "resource-id", "Values": [taggable[key].id]}])["Tags"]}
        assert tags[TAG_STACK] == stack and tags[TAG_RESOURCE] == key, key
    names = Names(stack, "123456789012", "us-east-1")
    assert aws.client("s3").get_bucket_tagging(Bucket=names.bucket)["TagSet"] == [
        {"Key": TAG_RESOURCE, "Value": "bucket"}, {"Key": TAG_STACK, "Value": stack}]
    fs = aws.client("efs").describe_file_systems(CreationToken=names.creation_token)["FileSystems"][0]
    assert fs["Encrypted"] and fs["ThroughputMode"] == "elastic"
    assert {t["Key"]: t["Value"] for t in fs["Tags"]}[TAG_RESOURCE] == "efs"
    function = aws.client("lambda").get_function(FunctionName=names.function("producer"))
    assert function["Tags"] == {TAG_STACK: stack, TAG_RESOURCE: "fn-producer"}
    assert aws.client("iam").list_role_tags(RoleName=names.role("consumer"))["Tags"]
    assert aws.client("logs").list_tags_log_group(logGroupName=names.log_group("producer"))["tags"][TAG_STACK] == stack


def test_fresh_up_configures_resources_as_designed(fresh):
    aws, _, stack = fresh
    names = Names(stack, "123456789012", "us-east-1")
    ec2, lam, s3 = aws.client("ec2"), aws.client("lambda"), aws.client("s3")
    vpc = ec2.describe_vpcs(Filters=[{"Name": f"tag:{TAG_STACK}", "Values": [stack]}])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.42.0.0/16"
    assert ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]
    subnets = ec2.describe_subnets(Filters=[{"Name": f"tag:{TAG_STACK}", "Values": [stack]}])["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets)
    endpoint = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["VpcEndpoints"][0]
    assert endpoint["ServiceName"] == "com.amazonaws.us-east-1.s3" and endpoint["VpcEndpointType"] == "Gateway"
    config = lam.get_function_configuration(FunctionName=names.function("producer"))
    assert (config["Runtime"], config["Architectures"], config["Handler"], config["Timeout"], config["MemorySize"]) == (
        "python3.12", ["arm64"], "producer.handler", 900, 2048)
    assert config["Environment"]["Variables"] == {"EFS_MOUNT_PATH": "/mnt/efs", "BUCKET": names.bucket,
                                                  "MODELS_PREFIX": "models/", "OUTPUTS_PREFIX": "outputs/"}
    assert sorted(config["VpcConfig"]["SubnetIds"]) == sorted(s["SubnetId"] for s in subnets)
    assert lam.get_function_configuration(FunctionName=names.function("consumer"))["Timeout"] == 29
    assert s3.get_public_access_block(Bucket=names.bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    assert s3.get_bucket_encryption(Bucket=names.bucket)["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    policy = json.loads(s3.get_bucket_policy(Bucket=names.bucket)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    notification = s3.get_bucket_notification_configuration(Bucket=names.bucket)["LambdaFunctionConfigurations"][0]
    assert notification["LambdaFunctionArn"].endswith(names.function("producer"))
    assert notification["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "models/"}]
    api = aws.client("apigatewayv2")
    api_id = next(a["ApiId"] for a in api.get_apis()["Items"] if a["Tags"].get(TAG_STACK) == stack)
    routes = api.get_routes(ApiId=api_id)["Items"]
    assert sorted(r["RouteKey"] for r in routes) == ["GET /models", "GET /models/{name+}", "POST /predict"]
    assert {r["AuthorizationType"] for r in routes} == {"AWS_IAM"}
    integration = api.get_integrations(ApiId=api_id)["Items"][0]
    assert (integration["IntegrationType"], integration["PayloadFormatVersion"]) == ("AWS_PROXY", "2.0")
    assert api.get_stages(ApiId=api_id)["Items"][0]["AutoDeploy"] is True
    statements = json.loads(lam.get_policy(FunctionName=names.function("consumer"))["Policy"])["Statement"]
    assert statements[0]["Condition"]["ArnLike"]["AWS:SourceArn"] == (
        f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/*/*/*")
    role = aws.client("iam").get_role_policy(RoleName=names.role("producer"), PolicyName="efsctl")["PolicyDocument"]
    resources = {s["Sid"]: s["Resource"] for s in role["Statement"]}
    assert resources["ReadModels"] == f"arn:aws:s3:::{names.bucket}/models/*"
    assert resources["MountFileSystem"].startswith("arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-")
    assert resources["VpcNetworkInterfaces"] == "*"


def test_second_up_makes_no_mutating_call(fresh, census, expected):
    aws, calls, stack = fresh
    deployment = up(aws, stack)
    assert calls.mutating == []
    assert {a.verb for a in deployment.preview.plan} == {"skip"}
    assert census(aws, stack) == expected


def _update_memory(aws, name, memory):
    aws.client("lambda").update_function_configuration(FunctionName=name, MemorySize=memory)


def test_drift_memory_is_repaired_with_one_update(fresh):
    aws, calls, stack = fresh
    names = Names(stack, "123456789012", "us-east-1")
    _update_memory(aws, names.function("consumer"), 256)
    calls.clear()
    up(aws, stack)
    assert calls.mutating == ["UpdateFunctionConfiguration"]
    assert aws.client("lambda").get_function_configuration(FunctionName=names.function("consumer"))["MemorySize"] == 2048


def test_a_memory_setting_is_applied(fresh):
    aws, calls, stack = fresh
    up(aws, stack, settings=UpSettings(memory=4096))
    assert calls.mutating == ["UpdateFunctionConfiguration", "UpdateFunctionConfiguration"]


def test_changed_handler_code_is_uploaded_once(fresh):
    aws, calls, stack = fresh
    changed = package.build_zip({"producer.py": b"def handler(e, c): return 1\n", "consumer.py": b"x = 1\n"})
    code = package.Package(changed, package.code_sha256(changed), ())
    up(aws, stack, code=code)
    assert calls.mutating == ["UpdateFunctionCode", "UpdateFunctionCode"]
    names = Names(stack, "123456789012", "us-east-1")
    assert aws.client("lambda").get_function(FunctionName=names.function("producer"))["Configuration"][
        "CodeSha256"] == code.sha256
    calls.clear()
    up(aws, stack, code=code)
    assert calls.mutating == []


def test_missing_security_group_rule_is_restored_and_open_rule_revoked(fresh):
    aws, calls, stack = fresh
    ec2 = aws.client("ec2")
    group = ec2.describe_security_groups(Filters=[{"Name": f"tag:{TAG_STACK}", "Values": [stack]},
                                                  {"Name": "group-name", "Values": [f"efsctl-{stack}-efs"]}])[
        "SecurityGroups"][0]
    ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=group["IpPermissions"])
    ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    calls.clear()
    up(aws, stack)
    assert sorted(calls.mutating) == ["AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress"]
    rules = [r for r in ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group["GroupId"]]}])[
        "SecurityGroupRules"] if not r["IsEgress"]]
    assert len(rules) == 1 and rules[0]["ReferencedGroupInfo"]["GroupId"] != group["GroupId"]
    assert "CidrIpv4" not in rules[0]


def test_removed_notification_is_put_back(fresh, census):
    aws, calls, stack = fresh
    names = Names(stack, "123456789012", "us-east-1")
    aws.client("s3").put_bucket_notification_configuration(Bucket=names.bucket, NotificationConfiguration={})
    calls.clear()
    up(aws, stack)
    assert calls.mutating == ["PutBucketNotificationConfiguration"]
    assert census(aws, stack)["notification"] == 1


def test_removed_route_is_put_back_and_a_foreign_route_removed(fresh):
    aws, calls, stack = fresh
    api = aws.client("apigatewayv2")
    api_id = next(a["ApiId"] for a in api.get_apis()["Items"] if a["Tags"].get(TAG_STACK) == stack)
    route = next(r for r in api.get_routes(ApiId=api_id)["Items"] if r["RouteKey"] == "GET /models")
    api.delete_route(ApiId=api_id, RouteId=route["RouteId"])
    api.create_route(ApiId=api_id, RouteKey="$default", AuthorizationType="NONE")
    calls.clear()
    up(aws, stack)
    assert sorted(calls.mutating) == ["CreateRoute", "DeleteRoute"]
    assert sorted(r["RouteKey"] for r in api.get_routes(ApiId=api_id)["Items"]) == [
        "GET /models", "GET /models/{name+}", "POST /predict"]


def test_lost_pieces_are_recreated_without_duplicating_the_rest(fresh, census, expected):
    aws, calls, stack = fresh
    names = Names(stack, "123456789012", "us-east-1")
    lam = aws.client("lambda")
    lam.remove_permission(FunctionName=names.function("producer"), StatementId="efsctl-s3-invoke")
    aws.client("logs").delete_log_group(logGroupName=names.log_group("consumer"))
    calls.clear()
    up(aws, stack)
    assert sorted(calls.mutating) == ["AddPermission", "CreateLogGroup", "PutRetentionPolicy"]
    assert census(aws, stack) == expected


def test_waits_come_before_dependent_creates(make_aws, new_stack, census, expected, slow_lifecycle):
    aws, calls = make_aws()
    life = slow_lifecycle(aws, polls=3)
    stack = new_stack()
    clock = FakeClock()
    deployment = up(aws, stack, clock=clock)
    ids = {k: o.id for k, o in deployment.resources.items()}
    events = life.events
    fs_ready = life.index("state", ids["efs"], "available")
    assert fs_ready < life.first("call", "CreateMountTarget")
    assert fs_ready < life.first("call", "CreateAccessPoint")
    for which in ("producer", "consumer"):
        create = life.index("call", "CreateFunction", deployment.resources[f"fn-{which}"].id)
        for mt in ("mt-a", "mt-b"):
            assert life.index("state", ids[mt], "available") < create
        assert life.first("call", "CreateLogGroup") < create
        active = life.index("state", deployment.resources[f"fn-{which}"].id, "Active")
        assert active > create
    producer_active = life.index("state", ids["fn-producer"], "Active")
    consumer_active = life.index("state", ids["fn-consumer"], "Active")
    assert producer_active < life.first("call", "AddPermission") or consumer_active < life.first("call", "AddPermission")
    s3_permission = next(i for i, e in enumerate(events) if e[:2] == ("call", "AddPermission")
                         and e[2] == ids["fn-producer"])
    assert producer_active < s3_permission < life.first("call", "PutBucketNotificationConfiguration")
    assert consumer_active < life.first("call", "CreateIntegration")
    assert all(s <= 0.25 for s in clock.sleeps), "polls start small"
    assert census(aws, stack) == expected


def _fail_once(aws, operation: str, code: str, message: str) -> list[str]:
    raised: list[str] = []

    def hook(service, op, params):
        if op == operation and not raised:
            raised.append(op)
            raise ClientError({"Error": {"Code": code, "Message": message}}, op)

    aws.add_call_hook(hook)
    return raised


@pytest.mark.parametrize("message", [
    "The role defined for the function cannot be assumed by Lambda.",
    "The provided execution role does not have permissions to call CreateNetworkInterface on EC2",
    "EFS file system arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-1 referenced by access point "
    "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-1 has mount targets created in all "
    "availability zones the function will execute in, but not all are in the available life cycle state yet. "
    "Please wait for them to become available and try the request again.",
])
def test_create_function_retries_while_iam_or_mount_targets_are_not_ready(make_aws, new_stack, message, census,
                                                                        expected):
    aws, calls = make_aws()
    raised = _fail_once(aws, "CreateFunction", "InvalidParameterValueException", message)
    clock = FakeClock()
    stack = new_stack()
    up(aws, stack, clock=clock)
    assert raised == ["CreateFunction"]
    assert calls.mutating.count("CreateFunction") == 3  # one refused, then both functions
    assert clock.sleeps and sum(clock.sleeps) < 1
    assert census(aws, stack) == expected


def test_update_retries_while_another_update_is_in_progress(fresh):
    aws, calls, stack = fresh
    _update_memory(aws, Names(stack, "123456789012", "us-east-1").function("producer"), 512)
    raised = _fail_once(aws, "UpdateFunctionConfiguration", "ResourceConflictException",
                        "The operation cannot be performed at this time. An update is in progress for resource: arn")
    calls.clear()
    clock = FakeClock()
    up(aws, stack, clock=clock)
    assert raised and calls.mutating == ["UpdateFunctionConfiguration", "UpdateFunctionConfiguration"]
    assert clock.sleeps


def test_notification_retries_until_s3_sees_the_permission(make_aws, new_stack, census):
    aws, calls = make_aws()
    raised = _fail_once(aws, "PutBucketNotificationConfiguration", "InvalidArgument",
                        "Unable to validate the following destination configurations")
    stack = new_stack()
    up(aws, stack)
    assert raised and calls.mutating.count("PutBucketNotificationConfiguration") == 2
    assert census(aws, stack)["notification"] == 1


def test_a_non_retryable_failure_stops_and_reports_the_step(make_aws, new_stack, census, expected):
    from efsctl.errors import AwsError

    aws, calls = make_aws()
    _fail_once(aws, "CreateRole", "AccessDenied", "User is not authorized to perform: iam:CreateRole")
    stack = new_stack()
    deployment = deploy(aws, stack, UpSettings(), code=CODE, clock=FakeClock())
    assert deployment.execution.failed_key in ("role-producer", "role-consumer")
    with pytest.raises(AwsError, match="AWS denied iam:CreateRole"):
        deployment.execution.raise_for_error()
    assert "CreateFunction" not in calls.mutating
    up(aws, stack)  # and the next run finishes the job
    assert census(aws, stack) == expected
