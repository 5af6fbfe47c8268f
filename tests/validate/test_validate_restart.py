"""Claim 5's cloud restart, switched on by hand: the use case stops and starts the local cloud,
and the claim reads everything back after it.

Until the local cloud persists its state, a restart starts it afresh without the stack, and the
claim must say that nothing came back (this module's stack is lost to it, hence a module of its
own). When the durable cloud lands and `LOCAL_CLOUD_DURABLE` is switched on, the same run passes:
this test then expects a pass.
"""

from __future__ import annotations

import pytest

from conftest import local_stack


@pytest.fixture(scope="module")
def efsctl(tmp_path_factory):
    yield from local_stack(tmp_path_factory, "validate-restart")


def test_the_restart_step_runs_and_reads_everything_back(efsctl, monkeypatch):
    from efsctl.operations import validate as use_case

    pid = efsctl.connection().state.local["pid"]
    monkeypatch.setattr(use_case, "LOCAL_CLOUD_DURABLE", True)
    result = efsctl("validate", "--quick", "--claims", "persistence", "--json")

    restarted = efsctl.connection().state.local
    assert restarted["pid"] != pid   # a new process, recorded in the stack's state
    claim = result.claim(5)
    restart = claim["measurements"]["restart"]
    assert restart["measured"] is True and claim["notes"] == []
    # Today's cloud comes back empty: not one model reads back, and the claim fails saying so.
    assert result.exit_code == 1, result
    assert claim["verdict"] == "fail" and restart["ok"] is False and restart["read_back"]["intact"] == 0
    assert "after the local cloud's restart, 4 of 4 models did not read back intact" in claim["reason"]
