"""Fields AWS omits when empty read as empty: removed behind efsctl's back, they are drift.

FileSystemConfigs, VpcConfig's lists and Environment are left out of GetFunctionConfiguration
when empty, on AWS and in the local cloud. Plain moto never reports FileSystemConfigs at all (and
answers the made-up VpcId ``vpc-123abc``): there the field is "not reported", so a second `up`
on moto still makes no call (the contract of tests/stack/test_up.py and test_server.py).
"""

from __future__ import annotations

import pytest

from efsctl.stack.deploy import UpSettings, deploy, preview
from efsctl.stack.drift import diff
from efsctl.stack.model import Function, Names
from efsctl.stack.observe import function_observed
from efsctl.waits import FakeClock

from test_up import CODE

AP = "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-0123456789abcdef0"
ROLE = "arn:aws:iam::123456789012:role/r"
VPC = "vpc-0123456789abcdef0"
DESIRED = Function(key="fn-consumer", name="f", role=ROLE, handler="consumer.handler", code_sha256="sha",
                   environment={"BUCKET": "b"}, subnets=("subnet-a", "subnet-b"), security_groups=("sg-1",),
                   access_point=AP, architecture="arm64", memory=2048, timeout=30)


def reported(**changes) -> dict:
    """GetFunctionConfiguration as AWS answers for DESIRED, then ``changes`` (None: omitted)."""
    config = {"FunctionName": "f", "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f", "Role": ROLE,
              "Handler": "consumer.handler", "Runtime": "python3.12", "Architectures": ["arm64"], "MemorySize": 2048,
              "Timeout": 30, "CodeSha256": "sha", "State": "Active", "LastUpdateStatus": "Successful",
              "Environment": {"Variables": {"BUCKET": "b"}},
              "VpcConfig": {"SubnetIds": ["subnet-a", "subnet-b"], "SecurityGroupIds": ["sg-1"], "VpcId": VPC},
              "FileSystemConfigs": [{"Arn": AP, "LocalMountPath": "/mnt/efs"}]}
    config.update(changes)
    return {k: v for k, v in config.items() if v is not None}


def fields(config: dict) -> set[str]:
    return diff(DESIRED, function_observed("fn-consumer", config, {})).fields()


@pytest.mark.parametrize("vpc_id, expected", [(VPC, []), ("vpc-0123abcd", []), ("", []), (None, []),
                                              ("vpc-123abc", None)])
def test_an_absent_file_system_list_is_empty_unless_the_endpoint_cannot_report_it(vpc_id, expected):
    vpc = {"SubnetIds": ["subnet-a"], "SecurityGroupIds": ["sg-1"], **({"VpcId": vpc_id} if vpc_id is not None else {})}
    assert function_observed("fn-consumer", reported(VpcConfig=vpc, FileSystemConfigs=None), {}
                             ).attrs["file_systems"] == expected


def test_what_aws_omits_when_empty_is_drift_when_it_should_not_be_empty():
    assert fields(reported()) == set()
    assert fields(reported(FileSystemConfigs=None)) == {"file_systems"}
    assert fields(reported(Environment=None)) == {"environment"}
    assert fields(reported(VpcConfig={"VpcId": ""}, FileSystemConfigs=None)) == {
        "subnets", "security_groups", "file_systems"}
    assert fields(reported(VpcConfig=None, FileSystemConfigs=None)) == {"subnets", "security_groups", "file_systems"}


def test_moto_which_never_reports_file_systems_shows_no_drift_for_them():
    moto = {"SubnetIds": ["subnet-a", "subnet-b"], "SecurityGroupIds": ["sg-1"], "VpcId": "vpc-123abc"}
    assert fields(reported(VpcConfig=moto, FileSystemConfigs=None)) == set()


def test_on_moto_a_removed_vpc_and_environment_are_repaired_and_the_next_up_makes_no_call(make_aws, new_stack):
    aws, calls = make_aws()
    stack = new_stack()
    deploy(aws, stack, UpSettings(), code=CODE, clock=FakeClock()).execution.raise_for_error()
    lam, name = aws.client("lambda"), Names(stack, "123456789012", "us-east-1").function("producer")
    lam.update_function_configuration(FunctionName=name, VpcConfig={"SubnetIds": [], "SecurityGroupIds": []},
                                      Environment={"Variables": {}})
    drift = preview(aws, stack, UpSettings(), code=CODE).plan.get("fn-producer")
    assert drift.verb == "update"
    assert any(r.startswith("subnets: none -> ") for r in drift.reasons) and "environment variables" in drift.reasons
    calls.clear()
    deploy(aws, stack, UpSettings(), code=CODE, clock=FakeClock()).execution.raise_for_error()
    assert calls.mutating == ["UpdateFunctionConfiguration"]
    calls.clear()
    deploy(aws, stack, UpSettings(), code=CODE, clock=FakeClock()).execution.raise_for_error()
    assert calls.mutating == []
