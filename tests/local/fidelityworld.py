"""An in-process AWS for the fidelity tests: moto with the fidelity patches and a manual clock.

Cheaper than the local cloud process: each test gets a fresh moto (``mock_aws``), the patches
that need no Lambda runtime, and a :class:`ManualClock` it moves by hand, so a 90 s mount
target takes no time at all. ``World`` builds the stack's shapes (a VPC with two subnets in two
zones, the two security groups, a file system with mount targets and an access point, a role,
functions) with plain boto3, and waits for nothing: tests call :meth:`World.settle` to let
every delay pass.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError

from efsctl.local import fidelity
from efsctl.local.clock import ManualClock

REGION = "us-east-1"
IN_PROCESS = ["api_calls", "access_point_ids", "efs_lifecycle", "function_filesystems", "vpc_dependencies",
              "lambda_permissions", "lambda_lifecycle", "lambda_enis", "s3_notifications"]
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}
VPC_ACCESS = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
    "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface"]}]}
LONG_AGO = 10_000.0   # AWS seconds: longer than every delay of the aws profile


def code_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


_CLIENTS: dict[str, Any] = {}


def client(service: str) -> Any:
    """One client per service for the whole session: moto intercepts every botocore client."""
    if service not in _CLIENTS:
        import boto3
        from botocore.config import Config

        _CLIENTS[service] = boto3.client(service, region_name=REGION, aws_access_key_id="testing",
                                         aws_secret_access_key="testing",
                                         config=Config(retries={"mode": "standard", "max_attempts": 1}))
    return _CLIENTS[service]


def error_of(call: Any) -> tuple[str, str]:
    """``(code, message)`` of the ClientError ``call()`` raises."""
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


@dataclass
class World:
    clock: ManualClock
    ctx: fidelity.PatchContext
    profile: str
    _tokens: int = 0
    vpc: str = ""
    subnets: list[str] = field(default_factory=list)
    sg_lambda: str = ""
    sg_efs: str = ""
    fs: str = ""
    fs_arn: str = ""
    mount_targets: list[str] = field(default_factory=list)
    ap_arn: str = ""
    role_arn: str = ""

    def client(self, service: str) -> Any:
        return client(service)

    def settle(self) -> None:
        """Let every delay of the profile pass."""
        self.clock.advance(LONG_AGO)

    def network(self) -> "World":
        ec2 = self.client("ec2")
        self.vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        self.subnets = [ec2.create_subnet(VpcId=self.vpc, CidrBlock=f"10.42.{i}.0/24",
                                          AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
                        for i, zone in ((1, "a"), (2, "b"))]
        self.sg_lambda = ec2.create_security_group(GroupName="lambda", Description="l", VpcId=self.vpc)["GroupId"]
        self.sg_efs = ec2.create_security_group(GroupName="efs", Description="e", VpcId=self.vpc)["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=self.sg_efs, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049, "UserIdGroupPairs": [{"GroupId": self.sg_lambda}]}])
        return self

    def file_system(self, mount_targets: bool = True) -> "World":
        efs = self.client("efs")
        self._tokens += 1
        fs = efs.create_file_system(CreationToken=f"token-{self._tokens}", Encrypted=True)
        self.fs, self.fs_arn = fs["FileSystemId"], fs["FileSystemArn"]
        self.clock.advance(LONG_AGO)
        self.ap_arn = efs.create_access_point(FileSystemId=self.fs, PosixUser={"Uid": 1000, "Gid": 1000},
                                              RootDirectory={"Path": "/lambda"})["AccessPointArn"]
        if mount_targets:
            self.mount_targets = [efs.create_mount_target(FileSystemId=self.fs, SubnetId=s,
                                                          SecurityGroups=[self.sg_efs])["MountTargetId"]
                                  for s in self.subnets]
        return self

    def role(self, name: str = "fn-role", trust: dict[str, Any] | None = None, vpc_access: bool = True) -> str:
        iam = self.client("iam")
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust or TRUST))["Role"]["Arn"]
        if vpc_access:
            iam.put_role_policy(RoleName=name, PolicyName="vpc", PolicyDocument=json.dumps(VPC_ACCESS))
        self.role_arn = arn
        return arn

    def function_spec(self, name: str, *, efs: bool = True, vpc: bool = True, **overrides: Any) -> dict[str, Any]:
        spec: dict[str, Any] = dict(FunctionName=name, Runtime="python3.12", Role=self.role_arn,
                                    Handler="app.handler", Code={"ZipFile": code_zip()}, Timeout=10)
        if vpc:
            spec["VpcConfig"] = {"SubnetIds": list(self.subnets), "SecurityGroupIds": [self.sg_lambda]}
        if efs:
            spec["FileSystemConfigs"] = [{"Arn": self.ap_arn, "LocalMountPath": "/mnt/efs"}]
        spec.update(overrides)
        return spec

    def function(self, name: str, **kwargs: Any) -> dict[str, Any]:
        return self.client("lambda").create_function(**self.function_spec(name, **kwargs))

    def stack(self) -> "World":
        """Network, file system with available mount targets, a settled role: ready for functions."""
        self.network().file_system()
        self.role()
        self.settle()
        return self

    def lambda_enis(self, name: str | None = None) -> list[dict[str, Any]]:
        wanted = f"AWS Lambda VPC ENI-{name}" if name else "AWS Lambda VPC ENI-*"
        return self.client("ec2").describe_network_interfaces(
            Filters=[{"Name": "description", "Values": [wanted]}])["NetworkInterfaces"]


def make_world(profile: str, extra: dict[str, str] | None = None):
    """A context manager: a fresh in-process AWS with the patches for ``profile``."""
    from contextlib import contextmanager

    from moto import mock_aws

    @contextmanager
    def world():
        saved = os.environ.get("MOTO_EC2_LOAD_DEFAULT_AMIS")
        os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"   # 0.3 s per EC2 backend, and no test uses them
        clock = ManualClock()
        ctx = fidelity.PatchContext(account_id="123456789012", region=REGION, profile=profile, clock=clock,
                                    extra=dict(extra or {}))
        try:
            with mock_aws():
                patcher = fidelity.install(ctx, names=IN_PROCESS)
                try:
                    yield World(clock, ctx, profile)
                finally:
                    patcher.undo()
        finally:
            if saved is None:
                os.environ.pop("MOTO_EC2_LOAD_DEFAULT_AMIS", None)
            else:
                os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = saved

    return world()
