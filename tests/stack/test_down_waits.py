"""What moto does not do and AWS does: Lambda's ENIs linger after the functions leave the VPC,
and EC2 answers DependencyViolation meanwhile. Injected here, on a fake clock (no sleeping)."""

from __future__ import annotations

import math

import pytest
from botocore.exceptions import ClientError

from down_support import build, names, nothing_left
from efsctl.errors import EfsctlError
from efsctl.stack import teardown as td
from efsctl.stack.execute import NullReporter
from efsctl.stack.steps.compute import ENI_POLL
from efsctl.waits import FakeClock

LINGER = 120.0


class LingeringEnis:
    """Two in-use Lambda ENIs in the stack's subnets, listed until ``clock`` passes ``release_at``;
    until then (and for ``lag`` calls more, as EC2's view lags) deleting a subnet, the Lambda
    security group or the VPC is a DependencyViolation. Every call is logged with its time."""

    def __init__(self, aws, clock: FakeClock, *, subnet: str, group: str, release_at: float, lag: int = 0) -> None:
        self.clock, self.release_at, self.lag, self.group = clock, release_at, lag, group
        self.enis = [{"NetworkInterfaceId": f"eni-linger{i}", "Status": "in-use", "SubnetId": subnet,
                      "Description": f"AWS Lambda VPC ENI-efsctl-{i}", "Groups": [{"GroupId": group}]}
                     for i in range(2)]
        self.log: list[tuple[str, float]] = []
        self.refused: list[str] = []
        ec2 = aws.client("ec2")
        ec2.meta.events.register("before-call.ec2.*", self._before)
        ec2.meta.events.register("after-call.ec2.DescribeNetworkInterfaces", self._describe)
        for service in ("iam", "lambda"):
            aws.client(service).meta.events.register(f"before-call.{service}.*",
                                                     lambda model, **_: self.log.append((model.name, self.clock.t)))

    def lingering(self) -> bool:
        return self.clock.t < self.release_at

    def _describe(self, parsed, **_) -> None:
        if self.lingering():
            parsed["NetworkInterfaces"] = list(parsed.get("NetworkInterfaces", [])) + [dict(e) for e in self.enis]

    def _before(self, model, params, **_) -> None:
        self.log.append((model.name, self.clock.t))
        body = params.get("body") if isinstance(params.get("body"), dict) else {}
        blocked = model.name == "DeleteSubnet" or (model.name == "DeleteSecurityGroup"
                                                   and body.get("GroupId") == self.group)
        if not blocked:
            return
        if not self.lingering():
            if self.lag <= 0 or model.name != "DeleteSubnet":
                return
            self.lag -= 1
        self.refused.append(model.name)
        raise ClientError({"Error": {"Code": "DependencyViolation",
                                     "Message": "resource has a dependent object"}}, model.name)

    def first(self, op: str) -> float:
        return next(t for name, t in self.log if name == op)


@pytest.fixture
def built(make_aws, new_stack):
    aws, _ = make_aws()
    stack = new_stack()
    deployment = build(aws, stack)
    r = deployment.resources
    return aws, stack, (r["vpc"].id,), r["subnet-a"].id, r["sg-lambda"].id


def test_lingering_enis_hold_roles_and_network_until_released_and_down_ends_soon_after(built):
    aws, stack, vpc, subnet, group = built
    clock = FakeClock()
    linger = LingeringEnis(aws, clock, subnet=subnet, group=group, release_at=LINGER, lag=3)
    waits = []
    reporter = NullReporter()
    reporter.waiting = lambda key, what, elapsed, detail: waits.append((what, round(elapsed, 1), detail))
    result = td.teardown(aws, stack, clock=clock, reporter=reporter)
    result.raise_for_error()
    assert nothing_left(aws, stack, vpc) == {}
    # roles only once the ENIs are gone; functions were detached at the very start
    assert linger.first("DeleteRole") >= LINGER and linger.first("DeleteRolePolicy") >= LINGER
    assert linger.first("UpdateFunctionConfiguration") == 0.0
    # the ENI wait ends within a few percent (+ the poll floor) of the release: adaptive polling
    assert LINGER <= result.waits["lambda-enis"] <= LINGER * (1 + ENI_POLL.fraction) + ENI_POLL.floor
    # progress named what it waited for: the live count of interfaces left
    assert any(what == "Lambda's network interfaces to be released"
               and "2 of 2 Lambda network interfaces left (eni-linger0, eni-linger1)" in detail
               for what, _, detail in waits)
    # DependencyViolation after the release (EC2's lag) was retried, not fatal
    assert linger.refused.count("DeleteSubnet") >= 1
    assert any(detail.startswith("still in use: ") for _, _, detail in waits)


def test_the_bound_passing_says_what_is_left_and_a_rerun_finishes(built):
    aws, stack, vpc, subnet, group = built
    clock = FakeClock()
    linger = LingeringEnis(aws, clock, subnet=subnet, group=group, release_at=math.inf)
    result = td.teardown(aws, stack, clock=clock, timeout=600)
    with pytest.raises(EfsctlError) as raised:
        result.raise_for_error()
    message, hint = raised.value.message, raised.value.hint
    assert "Gave up waiting for Lambda's network interfaces to be released after 600 s" in message
    assert "2 of 2 Lambda network interfaces left (eni-linger0, eni-linger1)" in message
    n = names(stack)
    assert "Still left: lambda-enis; role-producer (efsctl-" in message and f"vpc ({vpc[0]})" in message
    assert "Run `efsctl down` again to finish" in hint
    # everything not held by the ENIs is already gone
    left = nothing_left(aws, stack, vpc)
    assert set(left) == {"vpc", "subnet", "security-group", "role", "network-interface"}, left
    assert sorted(left["role"]) == sorted([n.role("producer"), n.role("consumer")])
    assert left["security-group"] == [group] and left["network-interface"] == ["eni-linger0", "eni-linger1"]
    assert {t.key for t in result.left} == {"lambda-enis", "role-producer", "role-consumer", "sg-lambda", "subnet-a",
                                            "subnet-b", "vpc"}
    linger.release_at = 0.0  # AWS let go of them
    again = td.teardown(aws, stack, clock=clock)
    again.raise_for_error()
    assert nothing_left(aws, stack, vpc) == {}


def test_an_available_lambda_eni_left_behind_is_deleted(built):
    aws, stack, vpc, subnet, group = built
    ec2 = aws.client("ec2")
    eni = ec2.create_network_interface(SubnetId=subnet, Groups=[group],
                                       Description="AWS Lambda VPC ENI-efsctl-orphan")["NetworkInterface"]
    assert eni["Status"] == "available"
    result = td.teardown(aws, stack, clock=FakeClock())
    result.raise_for_error()
    assert nothing_left(aws, stack, vpc) == {}
    assert result.results["lambda-enis"].detail == "none left (1 deleted)"


class Refuse:
    """The next ``times`` calls of ``operation`` fail with ``code`` (as AWS does while busy)."""

    def __init__(self, aws, service: str, operation: str, code: str, times: int, message: str = "busy") -> None:
        self.left, self.code, self.message, self.calls = times, code, message, 0
        aws.client(service).meta.events.register(f"before-call.{service}.{operation}", self)

    def __call__(self, model, **_) -> None:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise ClientError({"Error": {"Code": self.code, "Message": self.message}}, model.name)


class SlowMountTargetDeletion:
    """After DeleteMountTarget, EFS lists the mount target as ``deleting`` for ``polls`` describes
    (moto removes it at once; AWS takes about 30 s)."""

    def __init__(self, aws, polls: int) -> None:
        from botocore.awsrequest import AWSResponse

        self.polls, self.deleted, self.events = polls, {}, []
        self.ok = AWSResponse("", 200, {}, None)
        client = aws.client("efs")
        client.meta.events.register("before-call.efs.DeleteMountTarget", self._delete)
        client.meta.events.register("before-call.efs.DescribeMountTargets", self._describe)
        client.meta.events.register("before-call.efs.DeleteFileSystem",
                                    lambda **_: self.events.append(("DeleteFileSystem", None)))

    def _delete(self, params, **_) -> None:
        mt = params["url_path"].rsplit("/", 1)[-1]
        self.deleted[mt] = self.polls
        self.events.append(("DeleteMountTarget", mt))

    def _describe(self, params, **_):
        query = params.get("query_string") or {}
        mt = query.get("MountTargetId") if isinstance(query, dict) else None
        if mt in self.deleted and self.deleted[mt] > 0:
            self.deleted[mt] -= 1
            self.events.append(("deleting", mt))
            return self.ok, {"MountTargets": [{"MountTargetId": mt, "FileSystemId": "fs", "SubnetId": "s",
                                               "LifeCycleState": "deleting", "OwnerId": "123456789012",
                                               "IpAddress": "10.0.0.1", "NetworkInterfaceId": "eni-x"}]}
        if mt in self.deleted:
            self.events.append(("gone", mt))
        return None


def test_busy_and_slow_aws_is_waited_out(built):
    """A function still updating, a detach Lambda refuses, mount targets slow to go, a file
    system still in use, a bucket that got an object while emptying: all retried or waited."""
    aws, stack, vpc, _, _ = built
    pending = Refuse(aws, "lambda", "UpdateFunctionConfiguration", "ResourceConflictException", 2,
                     "The operation cannot be performed at this time. The function is currently in the following "
                     "state: Pending")
    in_use = Refuse(aws, "efs", "DeleteFileSystem", "FileSystemInUse", 2)
    not_empty = Refuse(aws, "s3", "DeleteBucket", "BucketNotEmpty", 1)
    slow = SlowMountTargetDeletion(aws, polls=3)
    result = td.teardown(aws, stack, clock=FakeClock())
    result.raise_for_error()
    assert nothing_left(aws, stack, vpc) == {}
    assert pending.calls >= 4 and in_use.calls == 3 and not_empty.calls == 2
    gone = max(i for i, (event, _) in enumerate(slow.events) if event == "gone")
    assert [e for e, _ in slow.events].count("deleting") == 6
    assert gone < [e for e, _ in slow.events].index("DeleteFileSystem")
    assert result.waits["mt-a"] > 0 and result.waits["efs"] > 0 and result.waits["bucket"] > 0


def test_a_detach_lambda_refuses_is_not_fatal_the_function_is_deleted_anyway(built):
    aws, stack, vpc, _, _ = built
    Refuse(aws, "lambda", "UpdateFunctionConfiguration", "InvalidParameterValueException", 2, "no")
    result = td.teardown(aws, stack, clock=FakeClock())
    result.raise_for_error()
    assert nothing_left(aws, stack, vpc) == {}
    assert result.results["fn-producer:detach"].detail.startswith("not detached (InvalidParameterValueException)")
