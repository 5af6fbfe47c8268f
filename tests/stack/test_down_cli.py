"""`efsctl down` as an operator runs it: confirmation, --yes, --json, --keep-bucket, no state file,
local stacks. In-process moto; the stack is built with the `up` engine."""

from __future__ import annotations

import json
import sys
import types

import pytest

from down_support import ACCOUNT, REGION, build, names, nothing_left, put_objects
from efsctl.aws.session import AwsContext
from efsctl.state import StackState, StateStore


@pytest.fixture
def stack(moto_module, aws_credentials, new_stack, efsctl_home):
    """A built stack with its state file, as `up` leaves it; yields (name, aws, vpc ids)."""
    name = new_stack()
    aws = AwsContext(region=REGION)
    deployment = build(aws, name)
    StateStore(efsctl_home).save(StackState(stack=name, region=REGION, account=ACCOUNT, resources={
        k: o.to_dict() for k, o in deployment.resources.items()}))
    return name, aws, (deployment.resources["vpc"].id,)


@pytest.fixture
def tty(monkeypatch):
    from efsctl.cli.commands import down

    monkeypatch.setattr(down, "_interactive", lambda: True)


def test_yes_json_deletes_everything_and_the_state_file(cli, stack, efsctl_home):
    name, aws, vpc = stack
    result = cli("--stack", name, "down", "--yes", "--json")
    assert result.exit_code == 0, result
    doc = result.json()
    assert doc["stack"] == name and doc["target"] == "aws" and doc["region"] == REGION and doc["account"] == ACCOUNT
    assert doc["left"] == [] and doc["state_file_deleted"] is True and doc["seconds"] >= 0
    assert {d["key"] for d in doc["deleted"]} >= {"vpc", "efs", "bucket", "fn-producer", "role-consumer", "api"}
    assert "lambda-enis" in doc["waits"] or doc["waits"] == {} or isinstance(doc["waits"], dict)
    assert nothing_left(aws, name, vpc) == {}
    assert not StateStore(efsctl_home).path(name).exists()
    assert "lambda-enis" in result.stderr  # human lines went to stderr


def test_without_the_state_file_down_still_finds_and_deletes_everything(cli, stack, efsctl_home):
    name, aws, vpc = stack
    StateStore(efsctl_home).delete(name)
    result = cli("--stack", name, "down", "--yes")
    assert result.exit_code == 0, result
    assert f"Stack {name} deleted" in result.stdout
    assert nothing_left(aws, name, vpc) == {}
    again = cli("--stack", name, "down", "--yes")
    assert again.exit_code == 0 and "Nothing to delete" in again.stdout


def test_the_prompt_shows_what_goes_and_refusing_deletes_nothing(cli, stack, tty):
    name, aws, vpc = stack
    put_objects(aws, names(name).bucket, ["outputs/a.json", "outputs/b.json"], body=b"x" * 1536)
    before = nothing_left(aws, name, vpc)
    result = cli("--stack", name, "down", input="n\n")
    assert result.exit_code == 1, result
    assert f"Stack {name}: 22 resources to delete" in result.stdout
    assert "The bucket holds 2 objects (versions included), 3.0 KiB" in result.stdout
    assert f"Delete stack '{name}' (22 resources)? [y/N]" in result.stderr
    assert "Nothing was deleted." in result.stdout
    assert nothing_left(aws, name, vpc) == before


def test_refusing_keeps_an_upload_in_progress(cli, stack, tty):
    """The preview only reads: an open multipart upload (another `efsctl upload` sending, or one
    to resume) survives a `down` that is answered no, and goes with a `down` that deletes."""
    name, aws, vpc = stack
    s3 = aws.client("s3")
    bucket = names(name).bucket
    s3.delete_bucket_policy(Bucket=bucket)   # moto's TLS-only Deny refuses every call (AWS-RULES 35)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="models/big.bin")["UploadId"]
    result = cli("--stack", name, "down", input="n\n")
    assert result.exit_code == 1, result
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == [upload]
    assert cli("--stack", name, "down", "--yes").exit_code == 0
    assert nothing_left(aws, name, vpc) == {}


def test_answering_yes_deletes(cli, stack, tty):
    name, aws, vpc = stack
    result = cli("--stack", name, "down", input="y\n")
    assert result.exit_code == 0, result
    assert nothing_left(aws, name, vpc) == {}


def test_without_a_terminal_and_without_yes_it_refuses(cli, stack):
    name, aws, vpc = stack
    result = cli("--stack", name, "down")
    assert result.exit_code == 2, result
    assert "there is no terminal to ask on" in result.stderr and "Pass --yes" in result.stderr
    assert nothing_left(aws, name, vpc)["vpc"] == list(vpc)


def test_keep_bucket(cli, stack):
    name, aws, vpc = stack
    result = cli("--stack", name, "down", "--yes", "--keep-bucket")
    assert result.exit_code == 0, result
    assert nothing_left(aws, name, vpc) == {"bucket": [names(name).bucket]}
    assert f"Kept bucket {names(name).bucket}" in result.stdout


def test_a_stale_state_file_with_nothing_left_is_just_removed(cli, moto_module, aws_credentials, efsctl_home):
    StateStore(efsctl_home).save(StackState(stack="gone", region=REGION, account=ACCOUNT,
                                            resources={"vpc": {"kind": "vpc", "id": "vpc-0123"}}))
    refused = cli("--stack", "gone", "down")  # no terminal, no --yes: refused at once, nothing touched
    assert refused.exit_code == 2 and "Pass --yes" in refused.stderr
    assert StateStore(efsctl_home).path("gone").exists()
    result = cli("--stack", "gone", "down", "--yes")
    assert result.exit_code == 0, result
    assert "Nothing was left of stack gone" in result.stdout
    assert not StateStore(efsctl_home).path("gone").exists()


def test_a_bad_timeout_is_a_usage_error(cli, efsctl_home):
    result = cli("down", "--yes", "--timeout", "soon")
    assert result.exit_code == 2 and "--timeout 'soon' is not a duration" in result.stderr


def test_a_failed_down_keeps_what_is_left_in_the_state_file_and_exits_1(cli, stack, efsctl_home, monkeypatch):
    from efsctl.errors import WaitTimeout
    from efsctl.stack import teardown as td

    name, aws, vpc = stack
    from efsctl.stack.steps import STEPS, Step

    real = td.run_teardown

    class Stuck(Step):
        def delete(self, ctx):
            raise WaitTimeout("Gave up waiting for Lambda ENIs after 1800 s (last state: 1 Lambda network "
                              "interface left (eni-1)).")

    def run_until_the_enis(plan, aws, **kwargs):
        return real(plan, aws, steps={**STEPS, "enis": Stuck()}, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(td, "run_teardown", run_until_the_enis)
        result = cli("--stack", name, "down", "--yes")
    assert result.exit_code == 1, result
    assert "Gave up waiting for Lambda ENIs after 1800 s" in result.stderr
    assert "Still left: lambda-enis; role-producer" in result.stderr
    assert "Run `efsctl down` again to finish" in result.stderr
    left = StateStore(efsctl_home).load(name).resources
    assert set(left) == {"role-producer", "role-consumer", "sg-lambda", "subnet-a", "subnet-b", "vpc"}
    assert cli("--stack", name, "down", "--yes").exit_code == 0
    assert nothing_left(aws, name, vpc) == {}


class FakeLocal(types.ModuleType):
    """Stands in for efsctl.local: a local cloud whose health the test decides."""

    def local_stack_present(self, store, stack):
        return store.local_dir(stack).is_dir()

    def __init__(self, alive: bool) -> None:
        super().__init__("efsctl.local")
        self.alive = alive
        self.stopped: list[str] = []

    def local_cloud_health(self, store, stack):
        return {"healthy": self.alive, "endpoint_ok": self.alive, "pid_alive": self.alive}

    def stop_local_cloud(self, store, stack, console, clock=None):
        self.stopped.append(stack)


def test_a_local_stack_whose_cloud_is_gone_is_just_cleaned_up(cli, efsctl_home, monkeypatch, tty):
    fake = FakeLocal(alive=False)
    monkeypatch.setitem(sys.modules, "efsctl.local", fake)
    StateStore(efsctl_home).save(StackState(stack="loc", target="local", region=REGION,
                                            local={"endpoint_url": "http://127.0.0.1:9"}))
    result = cli("--stack", "loc", "down", "--json", input="y\n")
    assert result.exit_code == 0, result
    doc = json.loads(result.stdout[result.stdout.index("{"):])  # CliRunner echoes the typed answer
    assert doc["deleted"] == [] and doc["local_cloud_stopped"] is True and doc["state_file_deleted"] is True
    assert doc["target"] == "local" and doc["region"] == REGION
    assert "its saved state and data (every resource and model of the stack) are removed" in result.stderr
    assert "Delete stack 'loc' (its local cloud's data)? [y/N]" in result.stderr
    assert fake.stopped == ["loc"] and not StateStore(efsctl_home).path("loc").exists()
