"""The aws profile's delays, observed on a manual clock (in-process moto, no sleeping)."""

from __future__ import annotations

import pytest
from fidelityworld import error_of, make_world

from efsctl.local.fidelity.timeline import AWS, INSTANT, delays_for


@pytest.fixture
def world(aws_credentials):
    with make_world("aws") as w:
        yield w


@pytest.fixture
def instant(aws_credentials):
    with make_world("instant") as w:
        yield w


def fs_state(world, fs_id):
    return world.client("efs").describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]["LifeCycleState"]


def mt_states(world):
    return [mt["LifeCycleState"] for mt in
            world.client("efs").describe_mount_targets(FileSystemId=world.fs)["MountTargets"]]


def test_profiles_and_overrides():
    assert delays_for("instant") == INSTANT
    assert delays_for("aws").function_pending == 60.0 == AWS.function_pending
    assert delays_for("aws", {"delay.eni_linger": "5", "other": "x"}).eni_linger == 5.0


def test_a_file_system_is_creating_for_10_s_and_refuses_mount_targets_meanwhile(world):
    world.network()
    efs = world.client("efs")
    fs = efs.create_file_system(CreationToken="t", Encrypted=True)
    assert fs["LifeCycleState"] == "creating"
    assert error_of(lambda: efs.create_mount_target(FileSystemId=fs["FileSystemId"], SubnetId=world.subnets[0])) == (
        "IncorrectFileSystemLifeCycleState", "None")
    assert error_of(lambda: efs.create_access_point(FileSystemId=fs["FileSystemId"]))[0] == \
        "IncorrectFileSystemLifeCycleState"
    world.clock.advance(9.9)
    assert fs_state(world, fs["FileSystemId"]) == "creating"
    world.clock.advance(0.1)
    assert fs_state(world, fs["FileSystemId"]) == "available"
    efs.create_mount_target(FileSystemId=fs["FileSystemId"], SubnetId=world.subnets[0])


def test_mount_targets_are_creating_for_90_s_and_deleting_for_30_s(world):
    world.network().file_system()
    efs, ec2 = world.client("efs"), world.client("ec2")
    assert mt_states(world) == ["creating", "creating"]
    world.clock.advance(89.9)
    assert mt_states(world) == ["creating", "creating"]
    world.clock.advance(0.1)
    assert mt_states(world) == ["available", "available"]
    for mt in world.mount_targets:
        efs.delete_mount_target(MountTargetId=mt)
    assert mt_states(world) == ["deleting", "deleting"]
    assert error_of(lambda: efs.delete_file_system(FileSystemId=world.fs))[0] == "FileSystemInUse"
    assert error_of(lambda: ec2.delete_subnet(SubnetId=world.subnets[0]))[0] == "DependencyViolation"
    world.clock.advance(29.9)
    assert mt_states(world) == ["deleting", "deleting"]
    world.clock.advance(0.1)
    assert mt_states(world) == []
    ec2.delete_subnet(SubnetId=world.subnets[0])
    efs.delete_file_system(FileSystemId=world.fs)


def test_an_access_point_is_creating_for_2_s(world):
    world.network().file_system(mount_targets=False)
    efs = world.client("efs")
    assert efs.describe_access_points(FileSystemId=world.fs)["AccessPoints"][0]["LifeCycleState"] == "creating"
    world.clock.advance(2)
    assert efs.describe_access_points(FileSystemId=world.fs)["AccessPoints"][0]["LifeCycleState"] == "available"


def test_a_gateway_endpoint_is_pending_for_5_s(world):
    world.network()
    ec2 = world.client("ec2")
    table = ec2.create_route_table(VpcId=world.vpc)["RouteTable"]["RouteTableId"]
    endpoint = ec2.create_vpc_endpoint(VpcId=world.vpc, ServiceName="com.amazonaws.us-east-1.s3",
                                       VpcEndpointType="Gateway", RouteTableIds=[table])["VpcEndpoint"]
    assert endpoint["State"] == "pending"
    state = lambda: ec2.describe_vpc_endpoints(Filters=[  # noqa: E731
        {"Name": "vpc-endpoint-id", "Values": [endpoint["VpcEndpointId"]]}])["VpcEndpoints"][0]["State"]
    world.clock.advance(4.9)
    assert state() == "pending"
    world.clock.advance(0.1)
    assert state() == "available"
    ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint["VpcEndpointId"]])
    assert state() == "deleted"


def test_a_new_function_is_pending_for_60_s_and_refuses_invokes_and_updates(world):
    world.stack()
    lam = world.client("lambda")
    created = world.function("fn")
    assert (created["State"], created["StateReason"], created["StateReasonCode"]) == (
        "Pending", "The function is being created.", "Creating")
    pending = ("ResourceConflictException", "The operation cannot be performed at this time. The function is "
                                            "currently in the following state: Pending")
    assert error_of(lambda: lam.invoke(FunctionName="fn", Payload=b"{}")) == pending
    assert error_of(lambda: lam.update_function_configuration(FunctionName="fn", Timeout=20)) == pending
    assert error_of(lambda: lam.update_function_code(FunctionName="fn", ZipFile=b"PK")) == pending
    lam.add_permission(FunctionName="fn", StatementId="s3", Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com")   # permissions may be added meanwhile
    world.clock.advance(59.9)
    assert lam.get_function(FunctionName="fn")["Configuration"]["State"] == "Pending"
    world.clock.advance(0.1)
    config = lam.get_function_configuration(FunctionName="fn")
    assert (config["State"], config["LastUpdateStatus"]) == ("Active", "Successful")
    assert "StateReason" not in config


def test_an_update_is_in_progress_for_10_s_and_a_second_one_conflicts(world):
    world.stack()
    lam = world.client("lambda")
    arn = world.function("fn")["FunctionArn"]
    world.clock.advance(60)
    updated = lam.update_function_configuration(FunctionName="fn", Timeout=20)
    assert (updated["LastUpdateStatus"], updated["LastUpdateStatusReasonCode"]) == ("InProgress", "Creating")
    assert error_of(lambda: lam.update_function_configuration(FunctionName="fn", Timeout=30)) == (
        "ResourceConflictException", f"An update is in progress for resource: {arn}")
    assert error_of(lambda: lam.update_function_code(FunctionName="fn", ZipFile=b"PK"))[0] == "ResourceConflictException"
    world.clock.advance(9.9)
    assert lam.get_function_configuration(FunctionName="fn")["LastUpdateStatus"] == "InProgress"
    world.clock.advance(0.1)
    config = lam.get_function_configuration(FunctionName="fn")
    assert (config["LastUpdateStatus"], config["Timeout"]) == ("Successful", 20)
    lam.update_function_configuration(FunctionName="fn", Timeout=30)


def test_s3_cannot_validate_a_notification_for_2_s_after_the_permission_is_added(world):
    world.stack()
    arn = world.function("fn", efs=False, vpc=False)["FunctionArn"]
    s3 = world.client("s3")
    s3.create_bucket(Bucket="bucket")
    world.client("lambda").add_permission(
        FunctionName="fn", StatementId="s3", Action="lambda:InvokeFunction", Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::bucket", SourceAccount="123456789012")
    config = {"LambdaFunctionConfigurations": [{"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}]}
    put = lambda: s3.put_bucket_notification_configuration(Bucket="bucket", NotificationConfiguration=config)  # noqa: E731
    world.clock.advance(1.9)
    assert error_of(put) == ("InvalidArgument", "Unable to validate the following destination configurations")
    world.clock.advance(0.1)
    put()


def eni_ids(world, name):
    return sorted(e["NetworkInterfaceId"] for e in world.lambda_enis(name))


def test_interfaces_linger_120_s_after_the_function_is_deleted(world):
    world.stack()
    world.function("fn")
    enis = eni_ids(world, "fn")
    assert len(enis) == 2
    world.clock.advance(60)
    world.client("lambda").delete_function(FunctionName="fn")
    ec2 = world.client("ec2")
    world.clock.advance(119.9)
    assert eni_ids(world, "fn") == enis
    assert error_of(lambda: ec2.delete_subnet(SubnetId=world.subnets[0]))[0] == "DependencyViolation"
    world.clock.advance(0.1)
    assert eni_ids(world, "fn") == []


def test_interfaces_linger_after_the_function_leaves_its_vpc_and_new_ones_follow_a_change(world):
    world.stack()
    lam = world.client("lambda")
    world.function("fn", efs=False)
    enis = eni_ids(world, "fn")
    world.clock.advance(60)
    lam.update_function_configuration(FunctionName="fn", VpcConfig={"SubnetIds": [world.subnets[0]],
                                                                     "SecurityGroupIds": [world.sg_lambda]})
    moved = set(eni_ids(world, "fn")) - set(enis)
    assert len(moved) == 1 and len(eni_ids(world, "fn")) == 3
    world.clock.advance(120)
    assert eni_ids(world, "fn") == sorted(moved)
    lam.update_function_configuration(FunctionName="fn", VpcConfig={"SubnetIds": [], "SecurityGroupIds": []})
    config = lam.get_function_configuration(FunctionName="fn")["VpcConfig"]
    assert (config["SubnetIds"], config["VpcId"]) == ([], "")
    assert eni_ids(world, "fn") == sorted(moved)
    world.clock.advance(120)
    assert eni_ids(world, "fn") == []


def test_interfaces_of_a_function_whose_role_was_deleted_first_are_orphaned(world):
    world.stack()
    world.function("fn", efs=False)
    world.clock.advance(60)
    world.client("lambda").delete_function(FunctionName="fn")
    iam = world.client("iam")
    iam.delete_role_policy(RoleName="fn-role", PolicyName="vpc")
    iam.delete_role(RoleName="fn-role")
    world.clock.advance(120)
    enis = world.lambda_enis("fn")
    assert [e["Status"] for e in enis] == ["available", "available"]
    for eni in enis:   # the owner may now delete them
        world.client("ec2").delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    assert world.lambda_enis("fn") == []


def test_instant_releases_interfaces_at_once_and_nothing_waits(instant):
    instant.stack()
    lam = instant.client("lambda")
    assert instant.function("fn")["State"] == "Active"
    assert len(instant.lambda_enis("fn")) == 2
    lam.update_function_configuration(FunctionName="fn", Timeout=20)
    lam.update_function_configuration(FunctionName="fn", Timeout=30)
    lam.delete_function(FunctionName="fn")
    assert instant.lambda_enis("fn") == []
    efs = instant.client("efs")
    for mt in instant.mount_targets:
        efs.delete_mount_target(MountTargetId=mt)
    assert efs.describe_mount_targets(FileSystemId=instant.fs)["MountTargets"] == []
