"""Starting, reusing, checking and stopping a stack's local cloud process (each test its own)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from efsctl.local import (ensure_local_cloud, local_cloud_health, local_status_section, require_local_cloud,
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


def test_a_dead_process_is_detected_and_replaced(store, console):
    record = ensure_local_cloud(store, "beta", console)
    try:
        (store.local_dir("beta") / "efs" / "fs-1").mkdir(parents=True)
        os.kill(record["pid"], signal.SIGKILL)
        lifecycle._children[record["pid"]].wait(timeout=10)
        health = local_cloud_health(store, "beta")
        assert health["healthy"] is False and health["pid_alive"] is False
        assert "is gone" in health["problem"]
        assert local_status_section(store, "beta")["health"] == "stopped"
        with pytest.raises(LocalCloudError) as caught:
            require_local_cloud(store, "beta")
        assert "efsctl up --local" in str(caught.value)
        fresh = ensure_local_cloud(store, "beta", console)
        assert fresh["pid"] != record["pid"]
        assert any("is not usable" in w and "re-creates every resource" in w for w in console.warnings)
        assert not (store.local_dir("beta") / "efs" / "fs-1").exists()   # the dead cloud's data is gone too
        assert require_local_cloud(store, "beta")["pid"] == fresh["pid"]
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


def test_another_profile_replaces_the_process(store, console):
    record = ensure_local_cloud(store, "delta", console)
    try:
        other = ensure_local_cloud(store, "delta", console, realism="aws", time_scale=0.5)
        assert other["pid"] != record["pid"] and other["realism"] == "aws" and other["time_scale"] == 0.5
        assert any("runs the 'instant' profile" in w for w in console.warnings)
        assert not pid_alive(record["pid"])
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
