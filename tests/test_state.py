import json
import multiprocessing
import os
import stat

import pytest

from efsctl.errors import ConfigError, StackLocked
from efsctl.state import StackState, StateStore


def test_save_is_atomic_private_and_round_trips(tmp_path):
    store = StateStore(tmp_path)
    path = store.save(StackState(stack="a", target="local", region="eu-west-1",
                                 resources={"vpc": {"id": "vpc-1"}}))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.stacks_dir).st_mode) == 0o700
    loaded = store.load("a")
    assert loaded.target == "local" and loaded.resources == {"vpc": {"id": "vpc-1"}}
    assert [p.name for p in store.stacks_dir.iterdir()] == ["a.json"]  # no temp left behind


def test_missing_state_is_none_and_delete_is_idempotent(tmp_path):
    store = StateStore(tmp_path)
    assert store.load("nope") is None
    assert store.delete("nope") is False


def test_corrupt_state_is_a_config_error_with_a_way_out(tmp_path):
    store = StateStore(tmp_path)
    store.stacks_dir.mkdir(parents=True)
    store.path("x").write_text("{not json")
    with pytest.raises(ConfigError) as info:
        store.load("x")
    assert "not valid efsctl state" in info.value.message and "Delete it" in info.value.hint


def test_unknown_keys_from_newer_versions_are_ignored(tmp_path):
    store = StateStore(tmp_path)
    store.stacks_dir.mkdir(parents=True)
    store.path("x").write_text(json.dumps({"stack": "x", "future_field": 1}))
    assert store.load("x").stack == "x"


def _hold_lock(home, ready, release):
    with StateStore(home).lock("a", "efsctl up"):
        ready.set()
        release.wait(10)


def test_second_run_on_a_locked_stack_fails_clearly(tmp_path):
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        with pytest.raises(StackLocked) as info:
            with StateStore(tmp_path).lock("a", "efsctl down"):
                pass
        assert "efsctl up" in info.value.message and f"pid {proc.pid}" in info.value.message
    finally:
        release.set()
        proc.join(10)
    with StateStore(tmp_path).lock("a"):  # released when the holder exits
        pass


def test_lock_dies_with_a_killed_holder(tmp_path):
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    proc.start()
    assert ready.wait(10)
    proc.kill()
    proc.join(10)
    with StateStore(tmp_path).lock("a"):
        pass
