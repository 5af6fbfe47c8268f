"""Helpers for the stack-engine tests.

One in-process moto per test module (``moto_module``); each test uses its own stack name, so
tests share nothing but the mock and stay fast (moto's EC2 backend is slow to initialise).
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from typing import Any

import pytest

from efsctl.stack.model import TAG_STACK, Names

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_names = itertools.count(1)

# Exactly what DESIGN section 2 lists, counted by `census`.
EXPECTED = {"vpc": 1, "subnet": 2, "route-table": 1, "route-table-association": 2, "s3-endpoint": 1,
            "security-group": 2, "efs-inbound-rule": 1, "lambda-sg-inbound-rule": 0, "efs": 1, "mount-target": 2,
            "access-point": 1, "bucket": 1, "role": 2, "log-group": 2, "function": 2, "permission": 2,
            "notification": 1, "api": 1, "integration": 1, "route": 3, "stage": 1}


@pytest.fixture(scope="module")
def moto_module():
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture(scope="module")
def server(moto_server):
    return moto_server


class Calls:
    """Every API call an AwsContext makes, in order: (service, operation, params)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()

    def __call__(self, service: str, operation: str, params: dict) -> None:
        with self.lock:
            self.items.append((service, operation, params))

    def clear(self) -> None:
        self.items.clear()

    @property
    def mutating(self) -> list[str]:
        from efsctl.aws.session import is_mutating

        return [op for _, op, _ in self.items if is_mutating(op)]

    def ops(self) -> list[str]:
        return [op for _, op, _ in self.items]


@pytest.fixture
def new_stack():
    return lambda: f"t{next(_names)}"


@pytest.fixture(scope="module")
def make_aws(moto_module):
    """``make_aws()`` -> (AwsContext, Calls) on the module's moto."""
    from efsctl.aws.session import AwsContext

    def make():
        aws = AwsContext(region=REGION, credentials=dict(CREDENTIALS))
        calls = Calls()
        aws.add_call_hook(calls)
        return aws, calls

    return make


def census(aws, stack: str) -> dict[str, int]:
    """Count the stack's resources straight from the APIs (not through efsctl's observation)."""
    account = aws.client("sts").get_caller_identity()["Account"]
    names = Names(stack, account, REGION)
    ec2, efs, iam = aws.client("ec2"), aws.client("efs"), aws.client("iam")
    lam, logs, s3, api = aws.client("lambda"), aws.client("logs"), aws.client("s3"), aws.client("apigatewayv2")
    tagged = [{"Name": f"tag:{TAG_STACK}", "Values": [stack]}]
    vpcs = ec2.describe_vpcs(Filters=tagged)["Vpcs"]
    vpc_ids = [v["VpcId"] for v in vpcs] or ["none"]
    tables = ec2.describe_route_tables(Filters=tagged)["RouteTables"]
    groups = {g["GroupName"]: g["GroupId"] for g in ec2.describe_security_groups(Filters=tagged)["SecurityGroups"]}
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": list(groups.values())}])[
        "SecurityGroupRules"] if groups else []
    endpoints = [e for e in ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": vpc_ids}])["VpcEndpoints"]
                 if e["State"].lower() not in ("deleted", "deleting")]
    systems = efs.describe_file_systems(CreationToken=names.creation_token)["FileSystems"]
    targets = [t for fs in systems for t in efs.describe_mount_targets(FileSystemId=fs["FileSystemId"])["MountTargets"]]
    points = [p for fs in systems for p in efs.describe_access_points(FileSystemId=fs["FileSystemId"])["AccessPoints"]]
    buckets = [b for b in s3.list_buckets()["Buckets"] if b["Name"] == names.bucket]
    roles = [r for r in iam.list_roles()["Roles"] if r["RoleName"] in (names.role("producer"), names.role("consumer"))]
    functions = [f for f in lam.list_functions()["Functions"]
                 if f["FunctionName"] in (names.function("producer"), names.function("consumer"))]
    groups_logs = [g for w in ("producer", "consumer")
                   for g in logs.describe_log_groups(logGroupNamePrefix=names.log_group(w))["logGroups"]]
    statements = 0
    for f in functions:
        try:
            import json

            statements += len(json.loads(lam.get_policy(FunctionName=f["FunctionName"])["Policy"])["Statement"])
        except lam.exceptions.ResourceNotFoundException:
            pass
    notification = s3.get_bucket_notification_configuration(Bucket=names.bucket) if buckets else {}
    apis = [a for a in api.get_apis()["Items"] if (a.get("Tags") or {}).get(TAG_STACK) == stack]
    efs_group, lambda_group = groups.get(names.security_group("efs")), groups.get(names.security_group("lambda"))
    return {
        "vpc": len(vpcs), "subnet": len(ec2.describe_subnets(Filters=tagged)["Subnets"]), "route-table": len(tables),
        "route-table-association": sum(1 for t in tables for a in t.get("Associations", []) if a.get("SubnetId")),
        "s3-endpoint": len(endpoints), "security-group": len(groups),
        "efs-inbound-rule": sum(1 for r in rules if r["GroupId"] == efs_group and not r["IsEgress"]),
        "lambda-sg-inbound-rule": sum(1 for r in rules if r["GroupId"] == lambda_group and not r["IsEgress"]),
        "efs": len(systems), "mount-target": len(targets), "access-point": len(points), "bucket": len(buckets),
        "role": len(roles), "log-group": len(groups_logs), "function": len(functions), "permission": statements,
        "notification": len(notification.get("LambdaFunctionConfigurations", [])), "api": len(apis),
        "integration": sum(len(api.get_integrations(ApiId=a["ApiId"])["Items"]) for a in apis),
        "route": sum(len(api.get_routes(ApiId=a["ApiId"])["Items"]) for a in apis),
        "stage": sum(len(api.get_stages(ApiId=a["ApiId"])["Items"]) for a in apis),
    }


class SlowLifecycle:
    """Make moto's instant resources pass through AWS's states, as real AWS does.

    A new file system and mount target report ``creating``, a new function ``Pending``, for
    their first ``polls`` describes. ``events`` interleaves the calls made (before-call) with
    the states reported (after-call), in order, so tests can check what waited for what.
    """

    def __init__(self, aws, polls: int = 2) -> None:
        self.polls = polls
        self.seen: dict[str, int] = defaultdict(int)
        self.events: list[tuple[str, ...]] = []
        for service in ("ec2", "efs", "iam", "lambda", "logs", "s3", "apigatewayv2"):
            # before-parameter-build sees the API parameters (before-call sees the HTTP request).
            aws.client(service).meta.events.register("before-parameter-build", self._call)
        aws.client("efs").meta.events.register("after-call.efs.*", self._efs)
        aws.client("lambda").meta.events.register("after-call.lambda.*", self._lambda)

    def _call(self, params: dict, model, **_: Any) -> None:
        self.events.append(("call", model.name, _target(params)))

    def _state(self, resource_id: str, parsed: dict, field: str, pending: str, ready: str) -> None:
        self.seen[resource_id] += 1
        parsed[field] = pending if self.seen[resource_id] <= self.polls else ready
        self.events.append(("state", resource_id, parsed[field]))

    def _efs(self, parsed: dict, model, **_: Any) -> None:
        if model.name == "CreateFileSystem":
            self._state(parsed["FileSystemId"], parsed, "LifeCycleState", "creating", "available")
        elif model.name == "DescribeFileSystems":
            for fs in parsed.get("FileSystems", []):
                self._state(fs["FileSystemId"], fs, "LifeCycleState", "creating", "available")
        elif model.name == "CreateMountTarget":
            self._state(parsed["MountTargetId"], parsed, "LifeCycleState", "creating", "available")
        elif model.name == "DescribeMountTargets":
            for mt in parsed.get("MountTargets", []):
                self._state(mt["MountTargetId"], mt, "LifeCycleState", "creating", "available")

    def _lambda(self, parsed: dict, model, **_: Any) -> None:
        if model.name in ("CreateFunction", "GetFunctionConfiguration") and "FunctionName" in parsed:
            self._state(parsed["FunctionName"], parsed, "State", "Pending", "Active")

    def index(self, *event: str) -> int:
        return self.events.index(event)

    def first(self, kind: str, op_or_id: str) -> int:
        return next(i for i, e in enumerate(self.events) if e[0] == kind and e[1] == op_or_id)


def _target(params: dict) -> str:
    return str(params.get("FunctionName") or params.get("FileSystemId") or params.get("SubnetId") or "")


@pytest.fixture(name="census")
def census_fixture():
    return census


@pytest.fixture
def expected():
    return dict(EXPECTED)


@pytest.fixture
def slow_lifecycle():
    return SlowLifecycle
