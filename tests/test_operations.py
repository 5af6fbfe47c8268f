"""The use cases with a stand-in for the local cloud (no process): read-only commands never start,
replace or stop a cloud and never write state; `down` works with the state file gone, and twice."""

from __future__ import annotations

import sys
import types

import pytest

from efsctl.state import StackState, StateStore

REGION = "us-east-1"


class StoppedCloud(types.ModuleType):
    """efsctl.local for a stack whose local cloud is not running; records every call that acts."""

    def __init__(self, store: StateStore) -> None:
        super().__init__("efsctl.local")
        self.store = store
        self.acted: list[str] = []
        self.probes = 0   # health probes (each can take seconds on a cloud that does not answer)

    def local_cloud_health(self, store, stack):
        self.probes += 1
        if not store.local_dir(stack).is_dir():
            return None
        return {"healthy": False, "endpoint_ok": False, "pid_alive": False, "pid": 4242,
                "problem": "its process (pid 4242) is gone", "endpoint_url": "http://127.0.0.1:9"}

    def local_status_section(self, store, stack, health=...):
        if health is ...:   # as the real one: probes unless given the caller's probe
            self.local_cloud_health(store, stack)
        return {"health": "stopped", "endpoint_url": "http://127.0.0.1:9", "gateway_url": None, "pid": 4242,
                "log_file": "cloud.log", "problem": "its process (pid 4242) is gone"}

    def local_iam_report(self, store, stack, healthy=None):
        if healthy is None:
            self.local_cloud_health(store, stack)
        return None

    def local_cloud_record(self, store, stack):
        health = self.local_cloud_health(store, stack)
        return health and {"pid": health["pid"], "endpoint_url": health["endpoint_url"]}

    def local_stack_present(self, store, stack):
        return store.local_dir(stack).is_dir()

    def ensure_local_cloud(self, store, stack, console, **_):
        self.acted.append(f"ensure {stack}")
        raise AssertionError("a read-only command started the local cloud")

    def stop_local_cloud(self, store, stack, console, clock=None):
        import shutil

        self.acted.append(f"stop {stack}")
        shutil.rmtree(store.local_dir(stack), ignore_errors=True)

    def require_local_cloud(self, store, stack):
        raise AssertionError("not used here")


@pytest.fixture
def stopped(efsctl_home, monkeypatch):
    store = StateStore(efsctl_home)
    fake = StoppedCloud(store)
    monkeypatch.setitem(sys.modules, "efsctl.local", fake)
    return store, fake


def local_stack(store: StateStore, name: str, **resources) -> bytes:
    """A local stack as `up --local` leaves it (its cloud directory holding a model); returns the
    state file's bytes."""
    store.save(StackState(stack=name, target="local", region=REGION, account="123456789012",
                          local={"endpoint_url": "http://127.0.0.1:9"}, resources=resources))
    models = store.local_dir(name) / "efs" / "fs-1" / "lambda" / "models"
    models.mkdir(parents=True)
    (models / "mine.bin").write_bytes(b"weights")
    return store.path(name).read_bytes()


def test_plan_with_the_cloud_stopped_plans_from_the_cache_and_changes_nothing(cli, stopped):
    store, fake = stopped
    before = local_stack(store, "loc", vpc={"kind": "vpc", "id": "vpc-1"}, efs={"kind": "efs", "id": "fs-1"})
    for args in (("plan", "--json"), ("up", "--dry-run", "--json"), ("up", "--dry-run", "--realism", "aws", "--json")):
        result = cli("--stack", "loc", *args)
        assert result.exit_code == 0, (args, result)
        doc = result.json()
        assert doc["live"] is False and doc["target"] == "local"
        actions = {a["key"]: a for a in doc["actions"]}
        assert actions["vpc"]["action"] == "skip" and actions["vpc"]["id"] == "vpc-1"
        assert actions["vpc"]["reasons"] == ["recorded by the last `up`, not checked"]
        assert actions["fn-producer"]["action"] == "create" and doc["summary"]["create"] == 23
        assert "is not running (its process (pid 4242) is gone)" in doc["notes"][0]
    assert fake.acted == [] and store.path("loc").read_bytes() == before
    assert (store.local_dir("loc") / "efs" / "fs-1" / "lambda" / "models" / "mine.bin").read_bytes() == b"weights"


def test_a_dry_run_for_a_new_local_stack_creates_nothing_not_even_state(cli, stopped):
    store, fake = stopped
    result = cli("--stack", "fresh", "up", "--local", "--dry-run", "--json")
    assert result.exit_code == 0, result
    assert result.json()["summary"] == {"create": 25, "update": 0, "skip": 0}
    assert fake.acted == [] and not store.path("fresh").exists() and not store.local_dir("fresh").exists()


def test_status_with_the_cloud_stopped_shows_the_cache_and_starts_nothing(cli, stopped):
    store, fake = stopped
    before = local_stack(store, "loc", vpc={"kind": "vpc", "id": "vpc-1"})
    result = cli("--stack", "loc", "status", "--json")
    assert result.exit_code == 0, result
    doc = result.json()
    assert doc["live"] is False and doc["resources"]["vpc"]["id"] == "vpc-1"
    assert "The local cloud is stopped" in doc["error"]
    assert fake.acted == [] and store.path("loc").read_bytes() == before
    assert fake.probes == 1   # one probe answers for the whole report


def test_cloud_options_without_a_local_stack_are_a_usage_error(cli, stopped, aws_credentials):
    result = cli("--stack", "awsy", "up", "--dry-run", "--realism", "aws")
    assert result.exit_code == 2 and "they need --local" in result.stderr


def test_down_with_the_state_file_gone_finds_the_local_stack_by_its_directory_then_twice_is_harmless(cli, stopped):
    store, fake = stopped
    local_stack(store, "loc")
    store.delete("loc")
    result = cli("--stack", "loc", "down", "--yes")
    assert result.exit_code == 0, result
    assert fake.acted == ["stop loc"] and not store.local_dir("loc").exists()
    again = cli("--stack", "loc", "down", "--yes")
    assert again.exit_code == 0, again
    assert "Nothing to delete: stack 'loc' has no resources here." in again.stdout
    assert "No AWS credentials are set, so AWS was not searched for it." in again.stdout
    assert fake.acted == ["stop loc"]


def test_status_with_the_state_file_gone_still_knows_the_local_stack(cli, stopped):
    store, fake = stopped
    local_stack(store, "loc")
    store.delete("loc")
    result = cli("--stack", "loc", "status", "--json")
    assert result.exit_code == 0, result
    assert result.json()["target"] == "local" and fake.acted == []
    assert not store.path("loc").exists()
