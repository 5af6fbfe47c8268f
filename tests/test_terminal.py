"""What the terminal gets in the cases that used to go wrong: a reader that goes away, usage errors
in --json mode, times out of range, `down` with no one to ask."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def efsctl_with_closed_stdout(args: list[str], home) -> subprocess.CompletedProcess:
    """Run efsctl with its stdout a pipe nobody reads (closed before it writes, as `| head` does
    once it has what it wants)."""
    read, write = os.pipe()
    os.close(read)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(EFSCTL_HOME=str(home), AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    try:
        return subprocess.run([sys.executable, "-m", "efsctl", *args], stdout=write, stderr=subprocess.PIPE,
                              env=env, timeout=120, text=True)
    finally:
        os.close(write)


@pytest.mark.parametrize("args", [["up", "--local", "--dry-run"], ["up", "--local", "--dry-run", "--json"],
                                  ["--help"]], ids=["text", "json", "help"])
def test_a_reader_that_went_away_ends_efsctl_quietly_with_exit_0(args, efsctl_home):
    done = efsctl_with_closed_stdout(args, efsctl_home)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr and "Exception ignored" not in done.stderr


def test_usage_errors_in_json_mode_are_one_json_document_on_stdout(cli, efsctl_home):
    for args in (["--stack", "BAD", "status", "--json"], ["up", "--json", "--memory", "many"],
                 ["tail-logs", "--json", "--function", "everyone"]):
        result = cli(*args)
        assert result.exit_code == 2, (args, result)
        doc = json.loads(result.stdout)
        assert doc["error"]["exit_code"] == 2 and doc["error"]["message"], args
    result = cli("--stack", "BAD", "status")   # and without --json, nothing on stdout
    assert result.exit_code == 2 and result.stdout == ""


def test_a_failure_in_json_mode_is_one_json_document_too(cli, efsctl_home):
    result = cli("predict", "m.bin", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["message"] == "There is no stack 'default' here."


@pytest.mark.parametrize("since,says", [("99999d", "reaches back before 1970"),
                                        ("0001-01-01T00:00:00Z", "reaches back before 1970"),
                                        ("2999-01-01T00:00:00Z", "is in the future"),
                                        ("yesterday", "Cannot read --since 'yesterday'")])
def test_times_out_of_range_are_usage_errors_in_one_sentence(cli, efsctl_home, since, says):
    result = cli("tail-logs", "--since", since)
    assert result.exit_code == 2, result
    assert says in result.stderr and "Parameter validation" not in result.stderr


@pytest.mark.parametrize("timeout,says", [("0s", "leaves no time to wait"), ("soon", "is not a duration"),
                                          ("48h", "is more than a day")])
def test_durations_out_of_range_are_usage_errors(cli, efsctl_home, timeout, says):
    result = cli("down", "--yes", "--timeout", timeout)
    assert result.exit_code == 2 and says in result.stderr


def test_down_without_a_terminal_and_without_yes_refuses_before_looking_at_anything(cli, efsctl_home, monkeypatch):
    from efsctl.operations import Operations
    from efsctl.state import StackState, StateStore

    StateStore(efsctl_home).save(StackState(stack="kept", target="aws", region="us-east-1",
                                            resources={"vpc": {"kind": "vpc", "id": "vpc-1"}}))
    monkeypatch.setattr(Operations, "destroy", lambda *a, **k: pytest.fail("down looked the stack up"))
    result = cli("--stack", "kept", "down")
    assert result.exit_code == 2
    assert "there is no terminal to ask on" in result.stderr and "Pass --yes" in result.stderr
    assert StateStore(efsctl_home).path("kept").exists()


def test_the_lock_file_of_a_deleted_stack_goes_with_it(cli, efsctl_home, monkeypatch):
    import sys as _sys
    import types

    from efsctl.state import StackState, StateStore

    class GoneCloud(types.ModuleType):
        def local_stack_present(self, store, stack):
            return store.local_dir(stack).is_dir()

        def local_cloud_health(self, store, stack):
            return {"healthy": False, "endpoint_ok": False, "pid_alive": False}

        def stop_local_cloud(self, store, stack, console, clock=None):
            pass

    monkeypatch.setitem(_sys.modules, "efsctl.local", GoneCloud("efsctl.local"))
    store = StateStore(efsctl_home)
    store.save(StackState(stack="old", target="local", region="us-east-1", local={"endpoint_url": "http://127.0.0.1:9"}))
    with store.lock("old"):
        pass
    assert store.lock_path("old").exists()
    assert cli("--stack", "old", "down", "--yes").exit_code == 0
    assert not store.lock_path("old").exists() and not store.path("old").exists()
