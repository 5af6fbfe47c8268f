"""Fixtures for the Lambda handler tests.

The handlers are imported as the deployment zip lays them out: every module of lambda_code/
at the top level (``import producer``), never through the ``lambda_code`` package.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LAMBDA_CODE = Path(__file__).resolve().parents[2] / "lambda_code"
HERE = Path(__file__).resolve().parent
for path in (str(LAMBDA_CODE), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import consumer  # noqa: E402
import efs_store  # noqa: E402
import producer  # noqa: E402

BUCKET = "efsctl-test-bucket"


@dataclass
class FakeLambdaContext:
    """The attributes of the Python runtime's context object that handlers may use."""

    function_name: str = "efsctl-test-consumer"
    aws_request_id: str = "11111111-2222-3333-4444-555555555555"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:efsctl-test-consumer"
    log_group_name: str = "/aws/lambda/efsctl-test-consumer"
    log_stream_name: str = "2025/01/01/[$LATEST]abcdef"
    remaining_ms: int = 30_000
    calls: list = field(default_factory=list)

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch):
    """Fake credentials before any client exists; never let a test reach a real endpoint."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture(autouse=True)
def reset_handler_state():
    """Each test starts as a cold container: no clients, caches or prepared mounts."""
    consumer.reset_caches()
    producer._clients.clear()
    producer._prepared.clear()
    efs_store._thread_locks.clear()
    efs_store._live_temps.clear()
    yield
    consumer.reset_caches()
    producer._clients.clear()
    producer._prepared.clear()


@pytest.fixture
def lambda_context():
    return FakeLambdaContext()


@pytest.fixture
def producer_context():
    return FakeLambdaContext(function_name="efsctl-test-producer",
                             aws_request_id="99999999-8888-7777-6666-555555555555",
                             invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:efsctl-test-producer",
                             log_group_name="/aws/lambda/efsctl-test-producer")


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A mount point and, beside it, an 'outside' directory that must never change."""
    mount = tmp_path / "efs"
    outside = tmp_path / "outside"
    mount.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"top secret\n")
    monkeypatch.setenv("EFS_MOUNT_PATH", str(mount))
    monkeypatch.setenv("BUCKET", BUCKET)
    monkeypatch.delenv("MODELS_PREFIX", raising=False)
    monkeypatch.delenv("OUTPUTS_PREFIX", raising=False)
    return Sandbox(mount=mount, outside=outside, layout=efs_store.Layout(str(mount)))


@dataclass
class Sandbox:
    mount: Path
    outside: Path
    layout: efs_store.Layout

    def files(self) -> list:
        """Every file or link under the mount, relative, sorted."""
        return sorted(str(p.relative_to(self.mount)) for p in self.mount.rglob("*")
                      if p.is_file() or p.is_symlink())

    def assert_confined(self) -> None:
        """Nothing outside models/, outputs/ and .efsctl/; no temp file left; outside untouched."""
        for rel in self.files():
            assert rel.split("/")[0] in ("models", "outputs", ".efsctl"), rel
        assert sorted(p.name for p in self.outside.iterdir()) == ["secret.txt"]
        assert (self.outside / "secret.txt").read_bytes() == b"top secret\n"
        tmp = self.mount / ".efsctl" / "tmp"
        assert not tmp.exists() or list(tmp.iterdir()) == []

    def model(self, name: str) -> Path:
        return self.mount / "models" / name


@pytest.fixture(scope="session")
def _shared_s3_client():
    """Creating a boto3 client costs ~0.1 s; moto intercepts one made before mock_aws starts."""
    import boto3
    from moto import mock_aws

    with mock_aws():  # credentials and region come from the test environment, never a profile
        return boto3.client("s3", region_name="us-east-1", aws_access_key_id="testing",
                            aws_secret_access_key="testing")


@pytest.fixture
def s3(sandbox, _shared_s3_client):
    """A fresh moto S3 with the stack's bucket, also handed to the handlers as their client."""
    from moto import mock_aws

    with mock_aws():
        _shared_s3_client.create_bucket(Bucket=BUCKET)
        producer._clients["s3"] = consumer._clients["s3"] = _shared_s3_client
        yield _shared_s3_client


@pytest.fixture(scope="session")
def moto_server():
    """moto in server mode on loopback: real HTTP, so child processes and the producer's
    socket fast path can use it. Point clients at it with AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
