"""Helpers for the `down` tests: build a stack with the `up` engine, and list what is left of it
straight from the APIs (not through efsctl's observation), every resource type included."""

from __future__ import annotations

from typing import Any

from efsctl.stack import package
from efsctl.stack.deploy import UpSettings, deploy
from efsctl.stack.model import TAG_STACK, Names
from efsctl.waits import FakeClock

ACCOUNT = "123456789012"
REGION = "us-east-1"
_zip = package.build_zip({"producer.py": b"def handler(e, c): pass\n", "consumer.py": b"def handler(e, c): pass\n"})
CODE = package.Package(_zip, package.code_sha256(_zip), ("consumer.py", "producer.py"))


def build(aws, stack: str):
    """Run `up` to completion; returns the deployment."""
    deployment = deploy(aws, stack, UpSettings(), code=CODE, clock=FakeClock())
    deployment.execution.raise_for_error()
    return deployment


def names(stack: str) -> Names:
    return Names(stack, ACCOUNT, REGION)


def _tagged(stack: str) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{TAG_STACK}", "Values": [stack]}]


def leftovers(aws, stack: str, vpc_ids: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Everything of the stack that still exists, by type (empty lists when all is gone).

    ``vpc_ids`` (captured before teardown) also catches untagged things inside the VPC:
    ENIs (Lambda's and the mount targets'), non-default security groups, route tables.
    """
    n = names(stack)
    ec2, efs, iam = aws.client("ec2"), aws.client("efs"), aws.client("iam")
    lam, logs, s3, api = aws.client("lambda"), aws.client("logs"), aws.client("s3"), aws.client("apigatewayv2")
    tagged = _tagged(stack)
    vpcs = [v["VpcId"] for v in ec2.describe_vpcs(Filters=tagged)["Vpcs"]]
    in_vpcs = [{"Name": "vpc-id", "Values": list(vpc_ids) + vpcs}] if (vpc_ids or vpcs) else None
    groups = {g["GroupId"] for g in ec2.describe_security_groups(Filters=tagged)["SecurityGroups"]}
    tables = {t["RouteTableId"] for t in ec2.describe_route_tables(Filters=tagged)["RouteTables"]}
    enis = {e["NetworkInterfaceId"] for e in ec2.describe_network_interfaces(
        Filters=[{"Name": "description", "Values": ["AWS Lambda VPC ENI*"]}])["NetworkInterfaces"]
        if {g["GroupId"] for g in e.get("Groups", [])} & groups or e.get("VpcId") in set(vpc_ids) | set(vpcs)}
    if in_vpcs:
        groups |= {g["GroupId"] for g in ec2.describe_security_groups(Filters=in_vpcs)["SecurityGroups"]
                   if g["GroupName"] != "default"}
        tables |= {t["RouteTableId"] for t in ec2.describe_route_tables(Filters=in_vpcs)["RouteTables"]
                   if not any(a.get("Main") for a in t.get("Associations", []))}
        enis |= {e["NetworkInterfaceId"] for e in ec2.describe_network_interfaces(Filters=in_vpcs)["NetworkInterfaces"]}
    endpoints = [e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
                 if str(e.get("State", "")).lower() not in ("deleted", "deleting")
                 and ({t["Key"]: t["Value"] for t in e.get("Tags", [])}.get(TAG_STACK) == stack
                      or e["VpcId"] in set(vpc_ids) | set(vpcs))]
    systems = [f["FileSystemId"] for f in efs.describe_file_systems(CreationToken=n.creation_token)["FileSystems"]]
    targets = [t["MountTargetId"] for fs in systems for t in efs.describe_mount_targets(FileSystemId=fs)["MountTargets"]]
    points = [p["AccessPointId"] for p in efs.describe_access_points()["AccessPoints"]
              if p.get("FileSystemId") in systems
              or {t["Key"]: t["Value"] for t in p.get("Tags", [])}.get(TAG_STACK) == stack]
    wanted_roles = {n.role("producer"), n.role("consumer")}
    wanted_functions = {n.function("producer"), n.function("consumer")}
    return {
        "vpc": vpcs,
        "subnet": [s["SubnetId"] for s in ec2.describe_subnets(Filters=tagged)["Subnets"]],
        "route-table": sorted(tables),
        "s3-endpoint": endpoints,
        "security-group": sorted(groups),
        "network-interface": sorted(enis),
        "efs": systems,
        "mount-target": targets,
        "access-point": points,
        "bucket": [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"] == n.bucket],
        "role": [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] in wanted_roles],
        "function": [f["FunctionName"] for f in lam.list_functions()["Functions"]
                     if f["FunctionName"] in wanted_functions],
        "log-group": [g["logGroupName"] for w in ("producer", "consumer")
                      for g in logs.describe_log_groups(logGroupNamePrefix=n.log_group(w))["logGroups"]],
        "api": [a["ApiId"] for a in api.get_apis()["Items"] if (a.get("Tags") or {}).get(TAG_STACK) == stack],
    }


def nothing_left(aws, stack: str, vpc_ids: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """The non-empty part of :func:`leftovers` (``{}`` when the stack is entirely gone)."""
    return {kind: ids for kind, ids in leftovers(aws, stack, vpc_ids).items() if ids}


def put_objects(aws, bucket: str, keys: list[str], body: bytes = b"x", versions: int = 1,
                delete_markers: bool = False) -> None:
    """Objects (several versions each, optionally deleted) despite the bucket's TLS-only policy,
    which moto treats as denying everything (AWS-RULES 35)."""
    s3 = aws.client("s3")
    policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    s3.delete_bucket_policy(Bucket=bucket)
    if versions > 1 or delete_markers:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key in keys:
        for _ in range(versions):
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        if delete_markers:
            s3.delete_object(Bucket=bucket, Key=key)
    s3.put_bucket_policy(Bucket=bucket, Policy=policy)


SERVICES = ("ec2", "efs", "iam", "lambda", "s3", "apigatewayv2", "logs", "sts")


class Recorder:
    """Every API call the context's clients make, in order, with its API parameters:
    ``(operation, params)`` (the context's own call hook sees serialised requests)."""

    def __init__(self, aws) -> None:
        import threading

        self.items: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        for service in SERVICES:
            aws.client(service).meta.events.register("before-parameter-build.*.*", self._record)

    def _record(self, params, model, **_: Any) -> None:
        with self._lock:
            self.items.append((model.name, dict(params)))

    def clear(self) -> None:
        self.items.clear()

    def index(self, op: str, *, last: bool = False, **match: Any) -> int:
        found = [i for i, (o, p) in enumerate(self.items) if o == op and all(p.get(k) == v for k, v in match.items())]
        assert found, f"no {op} {match or ''} call"
        return found[-1] if last else found[0]

    def first(self, op: str, **match: Any) -> int:
        return self.index(op, **match)

    def last(self, op: str, **match: Any) -> int:
        return self.index(op, last=True, **match)

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
