"""AWS's refusals, in every realism profile, with AWS's codes and messages (in-process moto)."""

from __future__ import annotations

import json

import pytest
from fidelityworld import REGION, error_of, make_world


@pytest.fixture(params=["instant", "aws"])
def world(request, aws_credentials):
    with make_world(request.param) as w:
        yield w


@pytest.fixture
def stack(world):
    return world.stack()


# --- FileSystemConfigs ---------------------------------------------------------------------------

def test_a_file_system_arn_in_place_of_an_access_point_is_refused(stack):
    code, message = error_of(lambda: stack.function("fn", FileSystemConfigs=[
        {"Arn": stack.fs_arn, "LocalMountPath": "/mnt/efs"}]))
    assert code == "ValidationException"
    assert message.startswith(f"1 validation error detected: Value '{stack.fs_arn}' at 'fileSystemConfigs.1.member.arn' "
                              "failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws")


@pytest.mark.parametrize("path", ["/efs", "/mnt/a/b", "/mnt/"])
def test_a_mount_path_outside_mnt_is_refused(stack, path):
    code, message = error_of(lambda: stack.function("fn", FileSystemConfigs=[
        {"Arn": stack.ap_arn, "LocalMountPath": path}]))
    assert code == "ValidationException"
    assert message == (f"1 validation error detected: Value '{path}' at 'fileSystemConfigs.1.member.localMountPath' "
                       "failed to satisfy constraint: Member must satisfy regular expression pattern: "
                       "^/mnt/[a-zA-Z0-9-_.]+$")


def test_an_efs_mount_on_a_function_outside_a_vpc_is_refused(stack):
    code, message = error_of(lambda: stack.function("fn", vpc=False))
    assert (code, message) == ("InvalidParameterValueException",
                               f"Function must be configured to execute in a VPC to reference access point {stack.ap_arn}.")


def test_a_zone_without_a_mount_target_is_refused(world):
    world.network().file_system(mount_targets=False)
    world.client("efs").create_mount_target(FileSystemId=world.fs, SubnetId=world.subnets[0])
    world.role()
    world.settle()
    code, message = error_of(lambda: world.function("fn"))
    assert code == "InvalidParameterValueException"
    assert message.startswith(f"EFS file system {world.fs_arn} referenced by access point {world.ap_arn} does not have "
                              "mount targets created in all availability zones the function will execute in.")


def test_mount_targets_not_yet_available_are_refused_until_they_are(aws_credentials):
    with make_world("aws") as world:
        world.network().file_system()
        world.role()
        world.clock.advance(89)   # mount targets take 90 s
        code, message = error_of(lambda: world.function("fn"))
        assert (code, message) == ("InvalidParameterValueException",
                                   f"EFS file system {world.fs_arn} referenced by access point {world.ap_arn} has mount "
                                   "targets created in all availability zones the function will execute in, but not all "
                                   "are in the available life cycle state yet. Please wait for them to become available "
                                   "and try the request again.")
        world.clock.advance(1)
        assert world.function("fn")["FileSystemConfigs"] == [{"Arn": world.ap_arn, "LocalMountPath": "/mnt/efs"}]


# --- IAM roles -----------------------------------------------------------------------------------

def test_a_function_on_a_just_created_role_is_refused_until_the_role_propagates(aws_credentials):
    with make_world("aws") as world:
        world.network().file_system()
        world.clock.advance(1000)
        world.role()
        world.clock.advance(7.9)
        code, message = error_of(lambda: world.function("fn"))
        assert (code, message) == ("InvalidParameterValueException",
                                   "The role defined for the function cannot be assumed by Lambda.")
        world.clock.advance(0.1)
        assert world.function("fn")["State"] == "Pending"


def test_a_role_that_does_not_trust_lambda_cannot_be_assumed(stack):
    other = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                     "Action": "sts:AssumeRole"}]}
    stack.role("ec2-role", trust=other)
    stack.settle()
    assert error_of(lambda: stack.function("fn")) == (
        "InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda.")


def test_a_vpc_function_needs_a_role_that_may_create_network_interfaces(stack):
    stack.role("no-eni", vpc_access=False)
    stack.settle()
    assert error_of(lambda: stack.function("fn")) == (
        "InvalidParameterValueException",
        "The provided execution role does not have permissions to call CreateNetworkInterface on EC2")


def test_unknown_subnets_and_groups_are_refused_with_lambdas_ec2_messages(stack):
    code, message = error_of(lambda: stack.function("fn", efs=False, VpcConfig={
        "SubnetIds": ["subnet-0000000000000000a"], "SecurityGroupIds": [stack.sg_lambda]}))
    assert code == "InvalidParameterValueException"
    assert message == ("Error occurred while DescribeSubnets. EC2 Error Code: InvalidSubnetID.NotFound. EC2 Error "
                       "Message: The subnet ID 'subnet-0000000000000000a' does not exist")
    code, message = error_of(lambda: stack.function("fn", efs=False, VpcConfig={
        "SubnetIds": stack.subnets, "SecurityGroupIds": ["sg-0000000000000000a"]}))
    assert "InvalidGroup.NotFound" in message and "'sg-0000000000000000a'" in message


# --- Lambda permissions and S3 notifications -------------------------------------------------------

def s3_permission(world, fn: str, bucket: str, sid: str = "s3-invoke", **extra):
    return world.client("lambda").add_permission(
        FunctionName=fn, StatementId=sid, Action="lambda:InvokeFunction", Principal="s3.amazonaws.com",
        SourceArn=f"arn:aws:s3:::{bucket}", SourceAccount="123456789012", **extra)


def notification(arn: str, prefix: str = "models/", suffix: str | None = None, events=("s3:ObjectCreated:*",)):
    rules = [{"Name": "prefix", "Value": prefix}] + ([{"Name": "suffix", "Value": suffix}] if suffix else [])
    return {"LambdaFunctionArn": arn, "Events": list(events), "Filter": {"Key": {"FilterRules": rules}}}


def test_a_duplicate_statement_id_is_a_conflict(stack):
    stack.function("fn", efs=False, vpc=False)
    s3_permission(stack, "fn", "bucket")
    assert error_of(lambda: s3_permission(stack, "fn", "bucket")) == (
        "ResourceConflictException", "The statement id (s3-invoke) provided already exists. Please provide a new "
                                     "statement id, or remove the existing statement.")
    policy = json.loads(stack.client("lambda").get_policy(FunctionName="fn")["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["s3-invoke"]


def test_a_notification_to_a_function_s3_may_not_invoke_is_refused(stack):
    arn = stack.function("fn", efs=False, vpc=False)["FunctionArn"]
    s3 = stack.client("s3")
    s3.create_bucket(Bucket="bucket")
    put = lambda: s3.put_bucket_notification_configuration(  # noqa: E731
        Bucket="bucket", NotificationConfiguration={"LambdaFunctionConfigurations": [notification(arn)]})
    assert error_of(put) == ("InvalidArgument", "Unable to validate the following destination configurations")
    s3_permission(stack, "fn", "another-bucket", sid="elsewhere")   # the wrong bucket does not count
    stack.settle()
    assert error_of(put)[0] == "InvalidArgument"
    s3_permission(stack, "fn", "bucket")
    stack.settle()
    put()
    assert s3.get_bucket_notification_configuration(Bucket="bucket")["LambdaFunctionConfigurations"][0][
        "LambdaFunctionArn"] == arn


def test_overlapping_notification_rules_are_refused(stack):
    arn = stack.function("fn", efs=False, vpc=False)["FunctionArn"]
    s3 = stack.client("s3")
    s3.create_bucket(Bucket="bucket")
    s3_permission(stack, "fn", "bucket")
    stack.settle()
    overlapping = [notification(arn, "models/"), notification(arn, "models/big/", events=("s3:ObjectCreated:Put",))]
    code, message = error_of(lambda: s3.put_bucket_notification_configuration(
        Bucket="bucket", NotificationConfiguration={"LambdaFunctionConfigurations": overlapping}))
    assert (code, message) == ("InvalidArgument", "Configuration is ambiguously defined. Cannot have overlapping "
                                                  "suffixes in two rules if the prefixes are overlapping for the same "
                                                  "event type.")
    apart = [notification(arn, "models/", ".bin"), notification(arn, "models/", ".gguf")]
    s3.put_bucket_notification_configuration(Bucket="bucket",
                                             NotificationConfiguration={"LambdaFunctionConfigurations": apart})


# --- EC2 and EFS dependencies ----------------------------------------------------------------------

def test_a_security_group_referenced_by_another_groups_rule_cannot_be_deleted(world):
    world.network()
    ec2 = world.client("ec2")
    assert error_of(lambda: ec2.delete_security_group(GroupId=world.sg_lambda)) == (
        "DependencyViolation", f"resource {world.sg_lambda} has a dependent object")
    ec2.revoke_security_group_ingress(GroupId=world.sg_efs, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049, "UserIdGroupPairs": [{"GroupId": world.sg_lambda}]}])
    ec2.delete_security_group(GroupId=world.sg_lambda)


def test_a_security_group_or_subnet_holding_a_mount_target_cannot_be_deleted(world):
    world.network().file_system()
    world.settle()
    ec2 = world.client("ec2")
    assert error_of(lambda: ec2.delete_security_group(GroupId=world.sg_efs)) == (
        "DependencyViolation", f"resource {world.sg_efs} has a dependent object")
    assert error_of(lambda: ec2.delete_subnet(SubnetId=world.subnets[0])) == (
        "DependencyViolation", f"The subnet '{world.subnets[0]}' has dependencies and cannot be deleted.")
    assert error_of(lambda: ec2.delete_vpc(VpcId=world.vpc)) == (
        "DependencyViolation", f"The vpc '{world.vpc}' has dependencies and cannot be deleted.")


def test_a_file_system_with_mount_targets_is_in_use(world):
    world.network().file_system()
    world.settle()
    code, _ = error_of(lambda: world.client("efs").delete_file_system(FileSystemId=world.fs))
    assert code == "FileSystemInUse"


def test_lambdas_interfaces_hold_subnets_and_groups_and_cannot_be_deleted_by_their_owner(stack):
    stack.function("fn")
    enis = stack.lambda_enis("fn")
    assert len(enis) == 2
    assert {e["SubnetId"] for e in enis} == set(stack.subnets)
    for eni in enis:
        assert eni["Description"] == "AWS Lambda VPC ENI-fn"
        assert (eni["InterfaceType"], eni["RequesterManaged"], eni["Status"]) == ("lambda", True, "in-use")
        assert [g["GroupId"] for g in eni["Groups"]] == [stack.sg_lambda]
        assert eni["VpcId"] == stack.vpc
    ec2 = stack.client("ec2")
    # the EFS group's rule no longer names the Lambda group: only the interfaces hold it now
    ec2.revoke_security_group_ingress(GroupId=stack.sg_efs, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049, "UserIdGroupPairs": [{"GroupId": stack.sg_lambda}]}])
    assert error_of(lambda: ec2.delete_security_group(GroupId=stack.sg_lambda)) == (
        "DependencyViolation", f"resource {stack.sg_lambda} has a dependent object")
    eni_id = enis[0]["NetworkInterfaceId"]
    assert error_of(lambda: ec2.delete_network_interface(NetworkInterfaceId=eni_id)) == (
        "InvalidParameterValue", f"Network interface '{eni_id}' is currently in use.")
    config = stack.client("lambda").get_function_configuration(FunctionName="fn")["VpcConfig"]
    assert config["VpcId"] == stack.vpc


def test_an_unused_security_group_and_subnet_delete_at_once(world):
    world.network()
    ec2 = world.client("ec2")
    spare = ec2.create_subnet(VpcId=world.vpc, CidrBlock="10.42.9.0/24", AvailabilityZone=f"{REGION}c")
    ec2.delete_subnet(SubnetId=spare["Subnet"]["SubnetId"])
    ec2.delete_security_group(GroupId=world.sg_efs)
