"""`efsctl up`, `plan` and `status` through the CLI, against in-process moto (no IAM managed
policies: loading them costs seconds and nothing here needs them)."""

from __future__ import annotations

import itertools
import json

import pytest

from efsctl.aws.session import NO_CREDENTIALS, is_mutating
from efsctl.state import StateStore

_stacks = itertools.count(1)


@pytest.fixture(scope="module")
def moto_light():
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def aws_env(moto_light, aws_credentials):
    return None


@pytest.fixture
def stack():
    return f"cli{next(_stacks)}"


@pytest.fixture
def aws_calls(monkeypatch):
    """Every AWS operation the CLI makes, in order."""
    from efsctl.aws.session import AwsContext

    calls: list[str] = []
    original = AwsContext.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.add_call_hook(lambda service, operation, params: calls.append(operation))

    monkeypatch.setattr(AwsContext, "__init__", init)
    return calls


def mutating(calls: list[str]) -> list[str]:
    return [c for c in calls if is_mutating(c)]


def test_up_without_credentials_says_so_and_exits_2(cli):
    result = cli("up")
    assert result.exit_code == 2
    assert NO_CREDENTIALS in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


def test_up_then_up_again_changes_nothing(cli, aws_env, stack, aws_calls, efsctl_home):
    first = cli("--stack", stack, "up", "--json")
    assert first.exit_code == 0, first.output
    doc = first.json()
    assert doc["summary"] == {"create": 25, "update": 0, "skip": 0}
    assert doc["api_url"].startswith("https://") and doc["api_url"].endswith(".execute-api.us-east-1.amazonaws.com")
    assert "created" in first.stderr  # progress lines go to stderr in --json mode
    state = StateStore(efsctl_home).load(stack)
    assert state.target == "aws" and state.region == "us-east-1" and state.account == "123456789012"
    assert state.outputs["api_url"] == doc["api_url"]
    assert state.outputs["bucket"] == f"efsctl-{stack}-123456789012-us-east-1"
    assert set(state.resources) == {a["key"] for a in doc["actions"]}
    aws_calls.clear()
    second = cli("--stack", stack, "up")
    assert second.exit_code == 0, second.output
    assert mutating(aws_calls) == []
    assert "0 created, 0 updated, 25 in sync" in second.stderr + second.stdout


def test_up_after_the_state_file_is_lost_creates_nothing(cli, aws_env, stack, aws_calls, efsctl_home):
    assert cli("--stack", stack, "up").exit_code == 0
    before = StateStore(efsctl_home).load(stack)
    StateStore(efsctl_home).delete(stack)
    aws_calls.clear()
    result = cli("--stack", stack, "up", "--json")
    assert result.exit_code == 0, result.output
    assert mutating(aws_calls) == []
    assert result.json()["summary"]["skip"] == 25
    after = StateStore(efsctl_home).load(stack)
    assert after.resources == before.resources and after.outputs == before.outputs


def test_plan_and_dry_run_change_nothing(cli, aws_env, stack, aws_calls):
    planned = cli("--stack", stack, "plan")
    assert planned.exit_code == 0, planned.output
    assert "Plan: 25 to create, 0 to update, 0 in sync." in planned.stdout
    dry = cli("--stack", stack, "up", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert dry.json()["dry_run"] is True and dry.json()["summary"]["create"] == 25
    assert mutating(aws_calls) == []
    assert cli("--stack", stack, "up").exit_code == 0
    aws_calls.clear()
    cli("--stack", stack, "--region", "us-east-1", "plan")
    assert mutating(aws_calls) == []


def test_status_shows_resources_drift_and_the_api(cli, aws_env, stack):
    import boto3

    assert cli("--stack", stack, "up").exit_code == 0
    boto3.client("lambda").update_function_configuration(FunctionName=f"efsctl-{stack}-consumer", MemorySize=1024)
    table = cli("--stack", stack, "status")
    assert table.exit_code == 0, table.output
    assert "memory: 1024 -> 2048" in table.stdout and "API: https://" in table.stdout
    doc = cli("--stack", stack, "status", "--json").json()
    assert doc["live"] is True and doc["target"] == "aws"
    assert doc["resources"]["fn-consumer"]["drift"] == "memory: 1024 -> 2048"
    assert doc["resources"]["vpc"]["drift"] == "in sync" and doc["resources"]["vpc"]["id"].startswith("vpc-")
    assert len(doc["resources"]) == 25 and doc["api_url"].startswith("https://")


def test_status_finds_a_stack_whose_state_file_is_lost(cli, aws_env, stack, efsctl_home):
    assert cli("--stack", stack, "up").exit_code == 0
    StateStore(efsctl_home).delete(stack)
    doc = cli("--stack", stack, "status", "--json").json()
    assert doc["exists"] is True and doc["resources"]["efs"]["id"].startswith("fs-")


def test_settings_are_remembered_and_validated(cli, aws_env, stack, aws_calls, efsctl_home):
    assert cli("--stack", stack, "up", "--memory", "3008", "--vpc-cidr", "10.7.0.0/16").exit_code == 0
    assert StateStore(efsctl_home).load(stack).settings == {"memory": 3008, "vpc_cidr": "10.7.0.0/16"}
    aws_calls.clear()
    assert cli("--stack", stack, "up").exit_code == 0
    assert mutating(aws_calls) == []
    moved = cli("--stack", stack, "up", "--vpc-cidr", "10.8.0.0/16")
    assert moved.exit_code == 2
    assert "already has its VPC on 10.7.0.0/16" in moved.stderr
    bad = cli("--stack", stack, "up", "--memory", "64")
    assert bad.exit_code == 2 and "128-10240" in bad.stderr


def test_up_refuses_while_another_run_holds_the_stack(cli, aws_env, stack, efsctl_home):
    with StateStore(efsctl_home).lock(stack, "efsctl up"):
        result = cli("--stack", stack, "up")
    assert result.exit_code == 1
    assert f"Stack '{stack}' is busy" in result.stderr


def test_json_failure_is_still_one_document(cli, aws_env, stack, monkeypatch):
    from botocore.exceptions import ClientError

    from efsctl.aws.session import AwsContext

    original = AwsContext.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)

        def deny(service, operation, params):
            if operation == "CreateVpc":
                raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message":
                                             "You are not authorized to perform this operation. Encoded "
                                             "authorization failure message: AbCdEf"}}, operation)

        self.add_call_hook(deny)

    monkeypatch.setattr(AwsContext, "__init__", init)
    result = cli("--stack", stack, "up", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["error"]["message"] == "AWS denied ec2:CreateVpc: You are not authorized to perform this operation."
    assert "Grant your identity permission for ec2:CreateVpc" in result.stderr
