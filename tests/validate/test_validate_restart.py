"""Claim 5's cloud restart: the use case stops the local cloud's process and starts it again over
its saved state, and the claim reads everything back after it (a module of its own: its stack's
cloud is restarted)."""

from __future__ import annotations

import pytest

from conftest import local_stack


@pytest.fixture(scope="module")
def efsctl(tmp_path_factory):
    yield from local_stack(tmp_path_factory, "validate-restart")


def test_the_restart_step_runs_and_reads_everything_back(efsctl):
    pid = efsctl.connection().state.local["pid"]
    result = efsctl("validate", "--quick", "--claims", "persistence", "--json")

    restarted = efsctl.connection().state.local
    assert restarted["pid"] != pid   # a new process, recorded in the stack's state
    claim = result.claim(5)
    restart = claim["measurements"]["restart"]
    assert restart["measured"] is True and claim["notes"] == []
    # The durable cloud comes back with everything: every model reads back intact.
    assert result.exit_code == 0, result
    assert claim["verdict"] == "pass" and restart["ok"] is True
    assert restart["read_back"]["intact"] == restart["read_back"]["of"] == restart["read_back"]["listed"] == 4
