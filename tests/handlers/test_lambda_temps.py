"""Temporary files name their owner by an flock: a copy killed mid-write leaves a temp that the
next producer run removes, while a temp a live copy is writing is never touched."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import consumer
import efs_store as store
import producer
from lambda_events import api_v2, response_json

OWNER = Path(__file__).resolve().parent / "lambda_temp_owner.py"
LATER = 60.0  # seconds past "now": beyond the lock grace of a freshly created temp


@pytest.fixture
def layout(tmp_path):
    layout = store.Layout(str(tmp_path / "efs"))
    layout.ensure()
    return layout


@pytest.fixture
def owner(layout):
    """A separate process holding a temp it is writing: ``(process, path)``; killed at the end."""
    proc = subprocess.Popen([sys.executable, str(OWNER), layout.root], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    path = proc.stdout.readline().strip()
    assert path.startswith(layout.tmp), path
    yield proc, path
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdin.close(), proc.stdout.close()


def kill9(proc):
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_live_copy_in_another_process_keeps_its_temp(layout, owner):
    _, path = owner
    assert store.sweep_temps(layout, now=time.time() + LATER) == (0, 0)
    assert store.orphaned_temps(layout, now=time.time() + LATER) == (0, 0)
    assert os.path.exists(path)


def test_a_copy_killed_mid_write_leaves_an_orphan_that_the_sweep_removes(layout, owner):
    proc, path = owner
    kill9(proc)
    assert store.orphaned_temps(layout, now=time.time() + LATER) == (1, 4096)
    assert os.path.exists(path)  # reporting removes nothing
    assert store.sweep_temps(layout, now=time.time() + LATER) == (1, 4096)
    assert not os.path.exists(path)


def test_a_just_created_temp_is_left_for_its_writer_to_lock(layout):
    path = os.path.join(layout.tmp, "model.1.new.tmp")
    open(path, "wb").close()  # created, not yet locked: the instant between open and flock
    assert store.sweep_temps(layout, now=time.time()) == (0, 0)
    assert store.sweep_temps(layout, now=time.time() + LATER) == (1, 0)


def test_temps_older_than_any_invocation_go_even_if_locked(layout):
    path = os.path.join(layout.tmp, "model.1.stuck.tmp")
    with open(path, "wb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # another open file description: a lock the sweep cannot take
        past = time.time() - store.TEMP_MAX_AGE_S - 10
        os.utime(path, (past, past))
        assert store.sweep_temps(layout, now=time.time()) == (1, 0)
    assert not os.path.exists(path)


def test_this_process_never_probes_its_own_live_temps(layout, monkeypatch):
    fd, path = layout.create_temp("model")
    probes = []
    real_flock = fcntl.flock
    monkeypatch.setattr(fcntl, "flock", lambda f, op: probes.append(op) or real_flock(f, op))
    assert store.sweep_temps(layout, now=time.time() + store.TEMP_MAX_AGE_S + LATER) == (0, 0)
    assert probes == [] and os.path.exists(path)
    store.discard_temp(fd, path)
    assert os.listdir(layout.tmp) == []


def test_the_producer_sweeps_on_a_cold_start_and_then_once_a_minute(layout, owner, monkeypatch):
    proc, path = owner
    kill9(proc)
    calls = []
    real = store.sweep_temps
    monkeypatch.setattr(store, "sweep_temps", lambda lay, **kw: calls.append(1) or real(lay, now=time.time() + LATER))
    producer._prepare(layout, now=1000.0)
    assert not os.path.exists(path) and len(calls) == 1
    producer._prepare(layout, now=1000.0 + producer.SWEEP_INTERVAL_S / 2)
    assert len(calls) == 1
    producer._prepare(layout, now=1000.0 + producer.SWEEP_INTERVAL_S + 1)
    assert len(calls) == 2


def test_models_reports_orphaned_bytes_until_the_producer_removes_them(s3, sandbox, lambda_context, monkeypatch):
    sandbox.layout.ensure()
    path = os.path.join(sandbox.layout.tmp, "model.4242.dead.tmp")
    with open(path, "wb") as f:
        f.write(b"\0" * 1000)
    past = time.time() - 30
    os.utime(path, (past, past))
    body = response_json(consumer.handler(api_v2("GET", "/models"), lambda_context))
    assert body == {"models": [], "orphaned": {"files": 1, "bytes": 1000}}
    assert os.path.exists(path)
    producer.handler({"Records": []}, None)
    body = response_json(consumer.handler(api_v2("GET", "/models"), lambda_context))
    assert body == {"models": []}
