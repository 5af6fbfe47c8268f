"""Shared fixtures: an isolated efsctl home, fake AWS credentials, moto, and a CLI runner.

No test reaches the network or the user's ~/.aws: every test gets its own EFSCTL_HOME and
AWS config paths that do not exist.
"""

from __future__ import annotations

import os

import pytest

AWS_VARS = ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL", "EFSCTL_STACK", "EFSCTL_HOME", "XDG_STATE_HOME"]


@pytest.fixture(autouse=True, scope="session")
def serialized_inprocess_moto():
    """moto's backends are not thread-safe (a lazily built backend or a dict iterated while
    another thread adds to it raises RuntimeError), and efsctl's executor calls AWS from
    several threads. Against in-process moto, handle one request at a time: the callers stay
    concurrent, the fake stays consistent. (Server-mode moto is untouched.)"""
    import threading

    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.RLock()
    original = BotocoreStubber.process_request

    def process_request(self, request):
        with lock:
            return original(self, request)

    BotocoreStubber.process_request = process_request
    yield
    BotocoreStubber.process_request = original


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    for var in AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    home = tmp_path / "efsctl-home"
    monkeypatch.setenv("EFSCTL_HOME", str(home))
    return home


@pytest.fixture
def efsctl_home(isolated_env):
    return isolated_env


@pytest.fixture
def aws_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def moto_aws(aws_credentials, monkeypatch):
    """Every AWS API mocked in-process by moto, with IAM's managed policies loaded."""
    from moto import mock_aws

    # Without it, moto finds the account of each request by building an IAM backend for every
    # partition, each loading all managed policies: about a second per test.
    monkeypatch.setenv("MOTO_ACCOUNT_ID", "123456789012")
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield


@pytest.fixture(scope="module")
def moto_server():
    """A plain moto server on 127.0.0.1 (one per test module); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class CliResult:
    def __init__(self, result):
        self.exit_code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.output = result.output
        self.exception = result.exception

    def json(self):
        import json

        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"<CliResult exit={self.exit_code} stdout={self.stdout!r} stderr={self.stderr!r}>"


@pytest.fixture
def cli():
    """``cli("status", "--json")`` runs efsctl in-process and returns its exit code and output."""
    from typer.testing import CliRunner

    from efsctl.cli import app

    runner = CliRunner()

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> CliResult:
        return CliResult(runner.invoke(app, list(args), input=input, env=env, catch_exceptions=True))

    return run
