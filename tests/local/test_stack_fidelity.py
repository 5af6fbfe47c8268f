"""The real stack in the local cloud: its roles are enforced, their use is reported, and what was
changed behind efsctl's back (policies, file systems, VPC, architecture) is seen and repaired.

One `up --local` stack for the module, in its own EFSCTL_HOME; every test leaves it as `up` made
it (each change made behind efsctl's back is repaired by the test's own `up`).
"""

from __future__ import annotations

import json
import uuid

import pytest
import stackrun

from efsctl.drive.demo import write_sample_model

STACK = "iam"


class Stack(stackrun.Efsctl):
    @property
    def record(self) -> dict:
        from efsctl.state import StateStore

        return StateStore(self.home).load(self.stack).local

    def client(self, service: str):
        import boto3

        from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION

        return boto3.client(service, endpoint_url=self.record["endpoint_url"], region_name=LOCAL_REGION,
                            **LOCAL_CREDENTIALS)

    def control(self, path: str) -> dict:
        from efsctl.local.lifecycle import http_json

        found = http_json(int(self.record["endpoint_port"]), path, timeout=60)
        assert found is not None, path
        return found

    def names(self):
        from efsctl.stack.model import Names

        return Names(STACK, "123456789012", "us-east-1")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with stackrun.local_stack(Stack(tmp_path_factory.mktemp("efsctl-iam-stack"), STACK)) as run:
        yield run


@pytest.fixture
def model(tmp_path):
    def make() -> tuple[str, str]:
        name = f"m-{uuid.uuid4().hex[:8]}.safetensors"
        write_sample_model(tmp_path / name)
        return str(tmp_path / name), name

    return make


def without_statement(stack: Stack, which: str, sid: str) -> None:
    """PutRolePolicy through the local endpoint, behind efsctl's back: the statement ``sid`` gone."""
    iam, role = stack.client("iam"), stack.names().role(which)
    doc = iam.get_role_policy(RoleName=role, PolicyName="efsctl")["PolicyDocument"]
    doc["Statement"] = [s for s in doc["Statement"] if s.get("Sid") != sid]
    iam.put_role_policy(RoleName=role, PolicyName="efsctl", PolicyDocument=json.dumps(doc))


def logged(stack: Stack, which: str) -> list[dict]:
    result = stack("tail-logs", "--function", which, "--since", "10m", "--json")
    assert result.exit_code == 0, result
    return result.lines()


def plan(stack: Stack) -> dict:
    result = stack("plan", "--json")
    assert result.exit_code == 0, result
    return {a["key"]: a for a in result.json()["actions"] if a["action"] != "skip"}


def test_a_producer_without_its_s3_statement_never_copies_and_its_log_says_why(stack, model):
    without_statement(stack, "producer", "ReadModels")
    path, name = model()
    key = f"models/{name}"
    refused = stack("upload", path, "--wait", "--json")
    assert refused.exit_code == 1, refused          # `upload --wait` reports the producer's refusal
    doc = refused.json()
    assert doc["wait"]["rejected"] is True and "AccessDenied" in doc["wait"]["error"]
    assert "s3:GetObject" in doc["wait"]["error"] and key in doc["wait"]["error"]
    assert name not in {m["name"] for m in stack("models", "--json").json()["models"]}
    text = next(text for text in map(json.dumps, logged(stack, "producer")) if key in text and "AccessDenied" in text)
    assert "An error occurred (AccessDenied) when calling the GetObject operation" in text
    assert (f'is not authorized to perform: s3:GetObject on resource: \\"arn:aws:s3:::{stack.names().bucket}/{key}\\" '
            "because no identity-based policy allows the s3:GetObject action") in text
    # `plan` sees the policy drift; `up` restores it and the next upload is copied.
    assert set(plan(stack)) == {"role-producer"}
    assert stack("up", "--local").exit_code == 0
    path, name = model()
    done = stack("upload", path, "--wait", "--json")
    assert done.exit_code == 0, done
    assert name in {m["name"] for m in stack("models", "--json").json()["models"]}


def test_a_consumer_without_put_object_fails_predict_with_the_reason_in_its_log(stack, model):
    path, name = model()
    assert stack("upload", path, "--wait").exit_code == 0
    without_statement(stack, "consumer", "WriteOutputs")
    failed = stack("predict", name)
    assert failed.exit_code == 1
    assert "The API failed (500)" in failed.stderr and "tail-logs" in failed.stderr
    text = json.dumps(logged(stack, "consumer"))
    assert "An error occurred (AccessDenied) when calling the PutObject operation" in text
    assert f'perform: s3:PutObject on resource: \\"arn:aws:s3:::{stack.names().bucket}/outputs/' in text
    assert stack("up", "--local").exit_code == 0
    assert stack("predict", name, "--json").exit_code == 0


def test_the_report_lists_the_handlers_actions_and_explains_every_other_grant(stack, model):
    path, name = model()
    assert stack("upload", path, "--wait").exit_code == 0
    assert stack("predict", name).exit_code == 0
    status = stack("status", "--json")
    assert status.exit_code == 0, status
    report = status.json()["iam"]
    assert report["live"] and report["enforced"]
    functions = report["functions"]
    names = stack.names()
    handler = {which: {(u["action"], u["resource"]) for u in functions[names.function(which)]["used"]
                       if u["by"] == "handler"} for which in ("producer", "consumer")}
    assert handler == {"producer": {("s3:GetObject", f"{names.bucket_arn}/models/*")},
                       "consumer": {("s3:PutObject", f"{names.bucket_arn}/outputs/*")}}
    for which in ("producer", "consumer"):
        fn = functions[names.function(which)]
        assert fn["unexplained"] == []
        by_lambda = {u["action"]: u["why"] for u in fn["used"] if u["by"] == "lambda"}
        assert {"ec2:CreateNetworkInterface", "logs:PutLogEvents", "elasticfilesystem:ClientMount"} <= set(by_lambda)
        assert "network interfaces" in by_lambda["ec2:CreateNetworkInterface"]
        unused = {u["action"]: u for u in fn["unused"]}
        assert unused["ec2:AssignPrivateIpAddresses"]["explained"]
        assert all(u["why"].startswith("Lambda") for u in fn["unused"])
    text = stack("status")
    assert "IAM in the local cloud since" in text.stdout
    assert "granted, never used and unexplained: none" in text.stdout


def test_architecture_x86_64_converges_with_zero_mutating_calls(stack, monkeypatch):
    from efsctl.aws.session import AwsContext, is_mutating

    assert stack("up", "--local", "--architecture", "x86_64").exit_code == 0
    seen: list[str] = []
    original = AwsContext.client

    def client(self, service):
        made = original(self, service)
        if not getattr(made, "_counted", False):
            made.meta.events.register("before-call.*.*", lambda model, **_: seen.append(model.name))
            made._counted = True
        return made

    monkeypatch.setattr(AwsContext, "client", client)
    again = stack("up", "--local", "--architecture", "x86_64", "--json")
    assert again.exit_code == 0, again
    assert again.json()["summary"] == {"create": 0, "update": 0, "skip": 25}
    assert seen and [op for op in seen if is_mutating(op)] == []
    producer = stack.client("lambda").get_function_configuration(FunctionName=stack.names().function("producer"))
    assert producer["Architectures"] == ["x86_64"]
    monkeypatch.undo()
    assert stack("up", "--local", "--architecture", "arm64").exit_code == 0


def test_file_systems_removed_behind_efsctls_back_are_drift_that_up_restores(stack):
    lam, fn = stack.client("lambda"), stack.names().function("consumer")
    lam.update_function_configuration(FunctionName=fn, FileSystemConfigs=[])
    assert "FileSystemConfigs" not in lam.get_function_configuration(FunctionName=fn)   # AWS omits it too
    drift = plan(stack)
    assert set(drift) == {"fn-consumer"}
    assert [r for r in drift["fn-consumer"]["reasons"] if r.startswith("mount arn:aws:elasticfilesystem:")]
    assert stack("up", "--local").exit_code == 0
    assert lam.get_function_configuration(FunctionName=fn)["FileSystemConfigs"][0]["LocalMountPath"] == "/mnt/efs"
    assert plan(stack) == {}


def test_a_vpc_removed_behind_efsctls_back_is_drift_that_up_restores(stack):
    lam, fn = stack.client("lambda"), stack.names().function("producer")
    # AWS refuses to take a function that mounts a file system out of its VPC: both go together.
    lam.update_function_configuration(FunctionName=fn, VpcConfig={"SubnetIds": [], "SecurityGroupIds": []},
                                      FileSystemConfigs=[])
    reasons = " ".join(plan(stack)["fn-producer"]["reasons"])
    assert "subnets: none -> subnet-" in reasons and "security groups: none -> sg-" in reasons and "mount " in reasons
    assert stack("up", "--local").exit_code == 0
    assert len(lam.get_function_configuration(FunctionName=fn)["VpcConfig"]["SubnetIds"]) == 2
    assert plan(stack) == {}
