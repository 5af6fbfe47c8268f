"""End to end against a plain moto server on loopback: the real CLI, `--endpoint-url`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from efsctl.aws.session import is_mutating
from efsctl.state import StateStore

@pytest.fixture
def calls(monkeypatch):
    from efsctl.aws.session import AwsContext

    seen: list[tuple[str, dict]] = []
    original = AwsContext.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        for service in ("ec2", "efs", "iam", "lambda", "logs", "s3", "apigatewayv2"):
            self.client(service).meta.events.register(
                "before-parameter-build", lambda params, model, **_: seen.append((model.name, dict(params))))

    monkeypatch.setattr(AwsContext, "__init__", init)
    return seen


def counts(census, endpoint: str, stack: str) -> dict[str, int]:
    from efsctl.aws.session import AwsContext

    return census(AwsContext(region="us-east-1", endpoint_url=endpoint), stack)


def test_up_on_a_moto_server_creates_the_stack_in_order_and_converges(cli, aws_credentials, server, calls,
                                                                      efsctl_home, census, expected):
    first = cli("--endpoint-url", server, "--stack", "srv", "up", "--json")
    assert first.exit_code == 0, first.output
    assert first.json()["summary"] == {"create": 25, "update": 0, "skip": 0}
    assert counts(census, server, "srv") == expected
    ops = [op for op, _ in calls]
    function_creates = [i for i, op in enumerate(ops) if op == "CreateFunction"]
    assert len(function_creates) == 2
    for before in ("CreateMountTarget", "CreateLogGroup", "PutRolePolicy", "CreateAccessPoint"):
        assert max(i for i, op in enumerate(ops) if op == before) < min(function_creates), before
    s3_permission = next(i for i, (op, p) in enumerate(calls) if op == "AddPermission"
                         and p["Principal"] == "s3.amazonaws.com")
    assert min(function_creates) < s3_permission < ops.index("PutBucketNotificationConfiguration")
    assert ops.index("CreateFileSystem") < ops.index("CreateMountTarget")

    calls.clear()
    again = cli("--endpoint-url", server, "--stack", "srv", "up")
    assert again.exit_code == 0, again.output
    assert [op for op, _ in calls if is_mutating(op)] == []

    StateStore(efsctl_home).delete("srv")
    calls.clear()
    lost = cli("--endpoint-url", server, "--stack", "srv", "up")
    assert lost.exit_code == 0, lost.output
    assert [op for op, _ in calls if is_mutating(op)] == []
    assert counts(census, server, "srv") == expected


def test_sigkill_mid_run_then_up_finishes_with_one_of_everything(cli, aws_credentials, server, calls, tmp_path,
                                                                 census, expected):
    import boto3

    env = {**os.environ, "EFSCTL_HOME": str(tmp_path / "killed-home")}
    run = subprocess.Popen([sys.executable, "-m", "efsctl", "--endpoint-url", server, "--stack", "kill", "up"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                           cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    ec2 = boto3.client("ec2", endpoint_url=server, region_name="us-east-1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and run.poll() is None:
        if ec2.describe_vpcs(Filters=[{"Name": "tag:efsctl:stack", "Values": ["kill"]}])["Vpcs"]:
            run.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL, "the run was killed mid-way"
    finished = cli("--endpoint-url", server, "--stack", "kill", "up")
    assert finished.exit_code == 0, finished.output
    assert counts(census, server, "kill") == expected
    calls.clear()
    assert cli("--endpoint-url", server, "--stack", "kill", "up").exit_code == 0
    assert [op for op, _ in calls if is_mutating(op)] == []
