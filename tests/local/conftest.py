"""One local cloud for the whole test session, and helpers to build what the tests need in it.

The cloud runs as a real background process (``ensure_local_cloud`` in a temporary
EFSCTL_HOME), with tiny async retry delays; it is stopped at the end of the session. Resources
are made directly with boto3 against its endpoint: a VPC, an EFS file system and access point,
a role, functions from a small zip of test handlers, and an HTTP API.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from localhelpers import handler_zip, http_request

from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION
from efsctl.console import Console
from efsctl.local import ensure_local_cloud, stop_local_cloud
from efsctl.local.options import CloudOptions
from efsctl.state import StateStore

STACK = "test"

@dataclass
class Cloud:
    store: StateStore
    stack: str
    record: dict[str, Any]
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def endpoint_url(self) -> str:
        return self.record["endpoint_url"]

    @property
    def gateway_url(self) -> str:
        return self.record["gateway_url"]

    @property
    def data_dir(self) -> Path:
        return self.store.local_dir(self.stack)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            self._clients[service] = boto3.client(
                service, endpoint_url=self.endpoint_url, region_name=LOCAL_REGION,
                config=Config(retries={"max_attempts": 1}, read_timeout=60), **LOCAL_CREDENTIALS)
        return self._clients[service]

    def control(self, path: str) -> dict[str, Any]:
        status, _, body = http_request("GET", self.endpoint_url + path, timeout=90)
        assert status == 200, body
        return json.loads(body)

    def drain(self, timeout: float = 30.0) -> dict[str, Any]:
        doc = self.control(f"/_efsctl/drain?timeout={timeout}")
        assert doc["drained"], doc
        return doc


@pytest.fixture(scope="session")
def cloud(tmp_path_factory) -> Cloud:
    home = tmp_path_factory.mktemp("efsctl-local-home")
    store = StateStore(home)
    console = Console()
    options = CloudOptions(async_retry_delays=(0.05, 0.1), concurrency=4)
    record = ensure_local_cloud(store, STACK, console, options=options)
    yield Cloud(store, STACK, record)
    stop_local_cloud(store, STACK, console)


@dataclass
class Network:
    vpc_id: str
    subnet_ids: list[str]
    sg_id: str
    fs_id: str
    access_point_arn: str
    access_point_root: str
    role_arn: str


@pytest.fixture(scope="session")
def network(cloud: Cloud) -> Network:
    ec2, efs, iam = cloud.client("ec2"), cloud.client("efs"), cloud.client("iam")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"us-east-1{az}")
               ["Subnet"]["SubnetId"] for i, az in ((1, "a"), (2, "b"))]
    sg = ec2.create_security_group(GroupName="lambda", Description="lambda", VpcId=vpc)["GroupId"]
    fs = efs.create_file_system(CreationToken="efsctl-test", Encrypted=True)["FileSystemId"]
    for subnet in subnets:   # Lambda refuses an EFS mount without a mount target in each zone of its subnets
        efs.create_mount_target(FileSystemId=fs, SubnetId=subnet, SecurityGroups=[sg])
    ap = efs.create_access_point(FileSystemId=fs, PosixUser={"Uid": 1000, "Gid": 1000},
                                 RootDirectory={"Path": "/lambda", "CreationInfo": {
                                     "OwnerUid": 1000, "OwnerGid": 1000, "Permissions": "750"}})
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                      "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="test-fn", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.attach_role_policy(RoleName="test-fn",
                           PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
    # The test handlers read the objects S3 events announce; the local cloud holds them to it.
    iam.put_role_policy(RoleName="test-fn", PolicyName="ReadObjects", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    return Network(vpc, subnets, sg, fs, ap["AccessPointArn"], "/lambda", role)


@pytest.fixture(scope="session")
def make_function(cloud: Cloud, network: Network):
    code = handler_zip()

    def make(handler: str, *, name: str | None = None, timeout: int = 10, efs: bool = True,
             env: dict[str, str] | None = None, reserved: int | None = None, role: str | None = None,
             memory: int = 256) -> str:
        name = name or f"fn-{handler}-{uuid.uuid4().hex[:6]}"
        spec: dict[str, Any] = dict(
            FunctionName=name, Runtime="python3.12", Role=role or network.role_arn, Handler=f"app.{handler}",
            Code={"ZipFile": code}, Timeout=timeout, MemorySize=memory, Architectures=["arm64"],
            Environment={"Variables": {"EFS_MOUNT_PATH": "/mnt/efs", **(env or {})}})
        if efs:
            spec["VpcConfig"] = {"SubnetIds": network.subnet_ids, "SecurityGroupIds": [network.sg_id]}
            spec["FileSystemConfigs"] = [{"Arn": network.access_point_arn, "LocalMountPath": "/mnt/efs"}]
        lam = cloud.client("lambda")
        lam.create_function(**spec)
        if reserved is not None:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)
        return name

    return make


@pytest.fixture(scope="session")
def make_role(cloud: Cloud):
    """``make_role(statements)`` -> the ARN of a new Lambda execution role with one inline policy
    (``efsctl``) holding ``statements``, and AWS's basic execution policy (its logs) attached."""
    iam = cloud.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}

    def make(statements: list[dict[str, Any]], *, basic: bool = True) -> str:
        name = f"role-{uuid.uuid4().hex[:8]}"
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        if statements:
            iam.put_role_policy(RoleName=name, PolicyName="efsctl", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": statements}))
        if basic:
            iam.attach_role_policy(RoleName=name,
                                   PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")
        return arn

    return make


@pytest.fixture(scope="session")
def efs_root(cloud: Cloud, network: Network) -> Path:
    return cloud.data_dir / "efs" / network.fs_id / "lambda"
