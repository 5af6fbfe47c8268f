"""Starting, reusing, checking and stopping a stack's local cloud process (each test its own)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from efsctl.local import (ensure_local_cloud, local_cloud_health, local_status_section,
                          stop_local_cloud)
from efsctl.local import lifecycle
from efsctl.local.lifecycle import LocalCloudError, pid_alive, port_open, read_record
from efsctl.state import StateStore


class RecordingConsole:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str]] = []
        self.warnings: list[str] = []

    def line(self, status, label, detail="", elapsed=None):
        self.lines.append((status, label, detail))

    def progress(self, what, elapsed, detail="", every=5.0):
        pass

    def warn(self, message):
        self.warnings.append(message)


@pytest.fixture
def store(tmp_path):
    return StateStore(tmp_path / "home")


@pytest.fixture
def console():
    return RecordingConsole()


def ports_of(record):
    return record["endpoint_port"], record["gateway_port"]


def test_start_reuse_and_stop(store, console):
    record = ensure_local_cloud(store, "alpha", console)
    try:
        assert record["endpoint_url"] == f"http://127.0.0.1:{record['endpoint_port']}"
        assert record["gateway_url"] == f"http://127.0.0.1:{record['gateway_port']}"
        assert record["log_file"] == str(store.local_dir("alpha") / "cloud.log") and record["version"]
        assert {k: v for k, v in read_record(store.local_dir("alpha")).items() if k != "token"} == record
        assert "token" not in record
        again = ensure_local_cloud(store, "alpha", console)
        assert again["pid"] == record["pid"] and console.lines[-1][2].startswith("running (pid")
        section = local_status_section(store, "alpha")
        assert section["health"] == "healthy" and section["gateway_url"] == record["gateway_url"]
        assert "local cloud for stack alpha" in open(record["log_file"]).read()
    finally:
        stop_local_cloud(store, "alpha", console)
    assert not pid_alive(record["pid"])
    assert not any(port_open(p) for p in ports_of(record))
    assert not store.local_dir("alpha").exists()
    assert local_cloud_health(store, "alpha") is None
    stop_local_cloud(store, "alpha", console)   # idempotent


def client(record, service):
    import boto3

    from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION

    return boto3.client(service, endpoint_url=record["endpoint_url"], region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)


def test_a_dead_process_is_started_again_over_its_state(store, console):
    record = ensure_local_cloud(store, "beta", console)
    try:
        model = store.local_dir("beta") / "efs" / "fs-1" / "models" / "m.bin"
        model.parent.mkdir(parents=True)
        model.write_bytes(b"weights")
        role = client(record, "iam").create_role(RoleName="kept", AssumeRolePolicyDocument="{}")["Role"]
        os.kill(record["pid"], signal.SIGKILL)
        lifecycle._children[record["pid"]].wait(timeout=10)
        health = local_cloud_health(store, "beta")
        assert health["healthy"] is False and health["pid_alive"] is False
        assert "is gone" in health["problem"]
        assert local_status_section(store, "beta")["health"] == "stopped"
        again = ensure_local_cloud(store, "beta", console)
        assert again["pid"] != record["pid"]
        assert any("had stopped" in w and "starts again over its saved state" in w for w in console.warnings)
        assert model.read_bytes() == b"weights"   # nothing was deleted
        assert client(again, "iam").get_role(RoleName="kept")["Role"]["RoleId"] == role["RoleId"]
        health = local_cloud_health(store, "beta")
        assert health["healthy"] is True and health["pid"] == again["pid"]
    finally:
        stop_local_cloud(store, "beta", console)


def test_stale_record_whose_port_is_taken_starts_afresh_elsewhere(store, console):
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    data_dir = store.local_dir("gamma")
    data_dir.mkdir(parents=True)
    (data_dir / "cloud.json").write_text(json.dumps({
        "pid": gone.pid, "token": "old", "endpoint_port": taken, "gateway_port": taken,
        "endpoint_url": f"http://127.0.0.1:{taken}", "version": "old"}))
    try:
        health = local_cloud_health(store, "gamma")
        assert "another program now holds port" in health["problem"]
        record = ensure_local_cloud(store, "gamma", console)
        assert taken not in ports_of(record)
        assert any(f"Port {taken} is taken by another program" in w for w in console.warnings)
    finally:
        stop_local_cloud(store, "gamma", console)
        squatter.close()


def test_another_profile_restarts_the_process_over_the_same_state(store, console):
    record = ensure_local_cloud(store, "delta", console)
    try:
        s3 = client(record, "s3")
        s3.create_bucket(Bucket="kept")
        s3.put_object(Bucket="kept", Key="k", Body=b"body")
        other = ensure_local_cloud(store, "delta", console, realism="aws", time_scale=0.5)
        assert other["pid"] != record["pid"] and other["realism"] == "aws" and other["time_scale"] == 0.5
        assert any("restarting: it runs the 'instant' profile" in line and "its state is kept" in line
                   for _, _, line in console.lines)
        assert not pid_alive(record["pid"])
        assert client(other, "s3").get_object(Bucket="kept", Key="k")["Body"].read() == b"body"
    finally:
        stop_local_cloud(store, "delta", console)


def test_a_cloud_whose_state_directory_is_removed_ends_itself(store, console):
    record = ensure_local_cloud(store, "zeta", console)
    try:
        import shutil

        shutil.rmtree(store.local_dir("zeta"))
        lifecycle._children[record["pid"]].wait(timeout=15)
        assert not pid_alive(record["pid"])
    finally:
        stop_local_cloud(store, "zeta", console)


def test_a_start_failure_is_one_clear_error(store, console, monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(LocalCloudError) as caught:
        ensure_local_cloud(store, "eps", console)
    assert "failed to start (exit code 1)" in caught.value.message
    assert str(store.local_dir("eps") / "cloud.log") in caught.value.hint


def test_a_slow_but_alive_cloud_is_waited_for_not_replaced(store, console, monkeypatch):
    record = ensure_local_cloud(store, "slow", console)
    asked: list[float] = []
    real = lifecycle.http_json

    def slow_to_answer(port, path, timeout=1.0):
        asked.append(timeout)
        answer = real(port, path, timeout)
        if len(asked) == 2:
            os.kill(record["pid"], signal.SIGCONT)   # the busy moment is over
        return answer

    try:
        os.kill(record["pid"], signal.SIGSTOP)       # alive, and answering nothing
        monkeypatch.setattr(lifecycle, "http_json", slow_to_answer)
        again = ensure_local_cloud(store, "slow", console)
        assert again["pid"] == record["pid"]
        assert len(asked) >= 3 and asked[1] > asked[0]   # asked again, with more patience each time
        assert console.warnings == [] and not any("restarting" in d for _, _, d in console.lines)
    finally:
        os.kill(record["pid"], signal.SIGCONT)
        monkeypatch.undo()
        stop_local_cloud(store, "slow", console)


def test_a_live_cloud_that_never_answers_is_not_killed(store, console, monkeypatch):
    from efsctl.local.options import CloudOptions
    from efsctl.waits import FakeClock

    data_dir = store.local_dir("mute")
    data_dir.mkdir(parents=True)
    (data_dir / "cloud.json").write_text(json.dumps({"pid": os.getpid(), "endpoint_port": 1, "gateway_port": 1}))
    monkeypatch.setattr(lifecycle, "probe", lambda d, r, timeout=2.0: {
        "healthy": False, "pid": os.getpid(), "pid_alive": True, "ours": True, "problem": "it does not answer"})
    monkeypatch.setattr(lifecycle, "_stop_processes", lambda *a: pytest.fail("a live cloud was stopped"))
    clock = FakeClock()
    with pytest.raises(LocalCloudError) as caught:
        lifecycle.ensure(store, "mute", console, CloudOptions(), clock=clock)
    assert "is running but has not answered for 30 s" in caught.value.message
    assert clock.t >= lifecycle.HEALTH_PATIENCE and (data_dir / "cloud.json").exists()
