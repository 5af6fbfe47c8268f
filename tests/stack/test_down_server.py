"""The real CLI against a plain moto server (no efsctl patches): `up`, then `down --yes` leaves
nothing, in the documented order; with the state file deleted; and killed mid-way, then re-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest

from down_support import CREDENTIALS, REGION, leftovers, names, put_objects
from efsctl.aws.session import AwsContext
from efsctl.state import StateStore

ROOT = Path(__file__).resolve().parents[2]
# (finishes first, then starts): the documented order, checked on the steps' real timestamps
ORDER = [("fn-producer:detach", "fn-producer"), ("fn-consumer:detach", "fn-consumer"),
         ("lambda-enis", "role-producer"), ("lambda-enis", "role-consumer"), ("mt-a", "efs"), ("mt-b", "efs"),
         ("route-table", "subnet-a"), ("route-table", "subnet-b"), ("s3-endpoint", "vpc"), ("subnet-a", "vpc"),
         ("subnet-b", "vpc"), ("fn-producer", "log-producer"), ("fn-consumer", "log-consumer"),
         ("s3-notification", "bucket"), ("api", "fn-consumer")]


@pytest.fixture
def env(server, aws_credentials, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", server)
    return server


def client_context(server: str) -> AwsContext:
    return AwsContext(region=REGION, endpoint_url=server, credentials=dict(CREDENTIALS))


def nothing_left(server: str, stack: str, vpcs: tuple[str, ...] = ()) -> dict[str, list[str]]:
    return {kind: ids for kind, ids in leftovers(client_context(server), stack, vpcs).items() if ids}


def up(cli, stack: str) -> tuple[str, ...]:
    result = cli("--stack", stack, "up", "--json")
    assert result.exit_code == 0, result
    return (result.json()["outputs"]["vpc_id"],)


def test_up_then_down_yes_leaves_nothing_in_the_documented_order(cli, env, efsctl_home):
    vpcs = up(cli, "srv-a")
    put_objects(client_context(env), names("srv-a").bucket, ["outputs/a.json", "outputs/b.json"], versions=2)
    result = cli("--stack", "srv-a", "down", "--yes", "--json")
    assert result.exit_code == 0, result
    doc = result.json()
    assert doc["left"] == [] and doc["state_file_deleted"] and doc["objects_deleted"] == 4
    assert nothing_left(env, "srv-a", vpcs) == {}
    steps = {s["step"]: (s["started"], s["finished"]) for s in doc["steps"]}
    for first, then in ORDER:
        assert steps[first][1] <= steps[then][0], (first, then)


def test_with_the_state_file_deleted_down_still_leaves_nothing(cli, env, efsctl_home):
    vpcs = up(cli, "srv-b")
    assert StateStore(efsctl_home).delete("srv-b")
    result = cli("--stack", "srv-b", "down", "--yes")
    assert result.exit_code == 0, result
    assert nothing_left(env, "srv-b", vpcs) == {}


def test_killed_mid_way_then_run_again_leaves_nothing(cli, env, efsctl_home):
    vpcs = up(cli, "srv-c")
    process = subprocess.Popen([sys.executable, "-m", "efsctl", "--stack", "srv-c", "down", "--yes"], cwd=ROOT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = []
    for line in process.stdout:  # SIGKILL once a few deletions are through
        if line.startswith("✓"):
            done.append(line)
        if len(done) >= 4:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, done
    process.stdout.close()
    assert nothing_left(env, "srv-c", vpcs) != {}  # killed before the end
    result = cli("--stack", "srv-c", "down", "--yes")
    assert result.exit_code == 0, result
    assert nothing_left(env, "srv-c", vpcs) == {}


class FakeLocalCloud(types.ModuleType):
    """Stands in for efsctl.local: the plain moto server plays the stack's local cloud."""

    def local_stack_present(self, store, stack):
        return store.local_dir(stack).is_dir()

    def __init__(self, endpoint: str) -> None:
        super().__init__("efsctl.local")
        self.endpoint = endpoint
        self.stopped: list[str] = []

    def ensure_local_cloud(self, store, stack, console, **_):
        return {"endpoint_url": self.endpoint, "gateway_url": "http://127.0.0.1:9", "pid": os.getpid()}

    def local_cloud_health(self, store, stack):
        return {"healthy": stack not in self.stopped, "endpoint_ok": stack not in self.stopped}

    def stop_local_cloud(self, store, stack, console, clock=None):
        self.stopped.append(stack)


def test_a_local_stack_is_deleted_then_its_cloud_stopped(cli, server, efsctl_home, monkeypatch):
    fake = FakeLocalCloud(server)
    monkeypatch.setitem(sys.modules, "efsctl.local", fake)
    result = cli("--stack", "srv-l", "up", "--local", "--json")
    assert result.exit_code == 0, result
    vpcs = (result.json()["outputs"]["vpc_id"],)
    result = cli("--stack", "srv-l", "down", "--yes", "--json")
    assert result.exit_code == 0, result
    doc = result.json()
    assert doc["target"] == "local" and doc["local_cloud_stopped"] and doc["left"] == []
    assert fake.stopped == ["srv-l"] and not StateStore(efsctl_home).path("srv-l").exists()
    assert nothing_left(server, "srv-l", vpcs) == {}
