"""The aws realism profile in a real local cloud process, at a small time scale.

The delays are observed through the daemon (its CloudClock, its patches) with efsctl's own
bounded waits on the real clock: nothing sleeps but those waits on the scaled cloud.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from localhelpers import handler_zip, http_request

from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION
from efsctl.console import Console
from efsctl.local import ensure_local_cloud, stop_local_cloud
from efsctl.local.lifecycle import read_record
from efsctl.state import StateStore
from efsctl.waits import Clock, Outcome, Poll, wait_until

SCALE = 0.01
POLL = Poll(floor=0.02, ceiling=0.2, fraction=0.05)
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}


class Aws:
    def __init__(self, endpoint: str) -> None:
        import boto3
        from botocore.config import Config

        config = Config(retries={"mode": "standard", "max_attempts": 1})
        self._make = lambda s: boto3.client(s, endpoint_url=endpoint, region_name=LOCAL_REGION, config=config,
                                            **LOCAL_CREDENTIALS)
        self._clients: dict[str, object] = {}

    def __getattr__(self, service: str):
        name = {"lambda_": "lambda"}.get(service, service)
        if name not in self._clients:
            self._clients[name] = self._make(name)
        return self._clients[name]


@pytest.fixture(scope="module")
def aws_cloud(tmp_path_factory):
    store = StateStore(tmp_path_factory.mktemp("fidelity-home"))
    record = ensure_local_cloud(store, "fidelity", Console(), realism="aws", time_scale=SCALE)
    yield store, record
    stop_local_cloud(store, "fidelity", Console())


def until(check, what: str, timeout: float = 10.0):
    """Wait (bounded) until ``check()`` returns something true; return it."""
    return wait_until(lambda: Outcome(bool(value := check()), value), what=what, timeout=timeout, clock=Clock(),
                      poll=POLL)


def test_the_profile_is_recorded_and_served(aws_cloud):
    store, record = aws_cloud
    saved = read_record(store.local_dir("fidelity"))
    assert (saved["realism"], saved["time_scale"]) == ("aws", SCALE)
    again = ensure_local_cloud(store, "fidelity", Console())   # a later `up` without flags keeps the profile
    assert again["pid"] == record["pid"] and again["realism"] == "aws"


def test_the_stack_waits_on_a_scaled_aws(aws_cloud):
    _, record = aws_cloud
    aws = Aws(record["endpoint_url"])
    vpc = aws.ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [aws.ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"us-east-1{z}")
               ["Subnet"]["SubnetId"] for i, z in ((1, "a"), (2, "b"))]
    sg = aws.ec2.create_security_group(GroupName="fn", Description="fn", VpcId=vpc)["GroupId"]

    # the role first: the file system's 10 s x 0.01 lets it propagate (8 s x 0.01) before the function
    role = aws.iam.create_role(RoleName="fidelity", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    fs = aws.efs.create_file_system(CreationToken="fidelity", Encrypted=True)
    assert fs["LifeCycleState"] == "creating"
    fs_id = fs["FileSystemId"]
    until(lambda: aws.efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]["LifeCycleState"] == "available",
          "file system")
    mts = [aws.efs.create_mount_target(FileSystemId=fs_id, SubnetId=s)["MountTargetId"] for s in subnets]
    ap = aws.efs.create_access_point(FileSystemId=fs_id, RootDirectory={"Path": "/lambda"})["AccessPointArn"]
    aws.iam.attach_role_policy(RoleName="fidelity",
                               PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
    spec = dict(FunctionName="fidelity", Runtime="python3.12", Role=role, Handler="app.plain",
                Code={"ZipFile": handler_zip()}, VpcConfig={"SubnetIds": subnets, "SecurityGroupIds": [sg]},
                FileSystemConfigs=[{"Arn": ap, "LocalMountPath": "/mnt/efs"}])

    with pytest.raises(ClientError) as early:   # mount targets take 90 s x 0.01
        aws.lambda_.create_function(**spec)
    assert "not all are in the available life cycle state yet" in early.value.response["Error"]["Message"]
    states = lambda: [m["LifeCycleState"] for m in aws.efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]]  # noqa: E731
    until(lambda: states() == ["available", "available"], "mount targets")

    assert aws.lambda_.create_function(**spec)["State"] == "Pending"
    with pytest.raises(ClientError) as pending:
        aws.lambda_.invoke(FunctionName="fidelity", Payload=b"{}")
    assert pending.value.response["Error"]["Code"] == "ResourceConflictException"
    until(lambda: aws.lambda_.get_function(FunctionName="fidelity")["Configuration"]["State"] == "Active", "function")
    assert json.loads(aws.lambda_.invoke(FunctionName="fidelity", Payload=b"{}")["Payload"].read()) == {"hello": "world"}

    enis = lambda: aws.ec2.describe_network_interfaces(Filters=[  # noqa: E731
        {"Name": "description", "Values": ["AWS Lambda VPC ENI-fidelity"]}])["NetworkInterfaces"]
    assert len(enis()) == 2
    aws.lambda_.delete_function(FunctionName="fidelity")
    with pytest.raises(ClientError) as in_use:
        aws.ec2.delete_security_group(GroupId=sg)
    assert in_use.value.response["Error"]["Code"] == "DependencyViolation"
    until(lambda: not enis(), "Lambda's interfaces to be released")   # 120 s x 0.01
    aws.ec2.delete_security_group(GroupId=sg)
    for mt in mts:
        aws.efs.delete_mount_target(MountTargetId=mt)
    until(lambda: not states(), "mount targets to go")
    aws.efs.delete_access_point(AccessPointId=ap.rsplit("/", 1)[1])
    aws.efs.delete_file_system(FileSystemId=fs_id)

    inventory = lambda: json.loads(http_request("GET", record["endpoint_url"] + "/_efsctl/inventory")[2])  # noqa: E731
    left = inventory()
    assert set(left["subnet"]) == set(subnets) and left["vpc"] == [vpc] and "fidelity" in left["role"]
    assert not {"file-system", "mount-target", "access-point", "function", "network-interface"} & set(left)
    for subnet in subnets:
        aws.ec2.delete_subnet(SubnetId=subnet)
    aws.ec2.delete_vpc(VpcId=vpc)
    aws.iam.detach_role_policy(RoleName="fidelity",
                               PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
    aws.iam.delete_role(RoleName="fidelity")
    aws.logs.delete_log_group(logGroupName="/aws/lambda/fidelity")   # the invocation made it, as Lambda does
    assert inventory() == {}


def test_profile_flags_need_the_local_cloud_and_a_known_profile(cli, efsctl_home):
    on_aws = cli("up", "--realism", "aws")
    assert on_aws.exit_code == 2 and "need --local" in on_aws.stderr
    unknown = cli("up", "--local", "--realism", "fast")
    assert unknown.exit_code == 2 and "unknown realism profile 'fast'" in unknown.stderr
    assert not (efsctl_home / "local" / "default" / "cloud.json").exists()
