"""Killed at any instant, the next `up` converges to exactly one of everything.

The crash is a hook that, once ``n`` mutating calls have been issued, raises from the next
call any thread makes (a BaseException nothing catches), which is what SIGKILL does to us:
calls already sent complete on AWS, nothing after them happens, no local state is written.
"""

from __future__ import annotations

import pytest

from efsctl.stack.deploy import UpSettings, deploy
from efsctl.waits import FakeClock
from crash_support import Killed, Killer

# Mutating calls a fresh `up` makes (test_fresh_up_call_count keeps this honest).
FRESH_MUTATING_CALLS = 39


@pytest.fixture(scope="module")
def contexts(make_aws):
    """Two long-lived contexts (clients are slow to build): one that gets killed, one that recovers."""
    doomed, _ = make_aws()
    killer = Killer()
    doomed.add_call_hook(killer)
    healthy, calls = make_aws()
    return doomed, killer, healthy, calls


def up(aws, stack):
    deployment = deploy(aws, stack, UpSettings(), clock=FakeClock())
    deployment.execution.raise_for_error()
    return deployment


def test_fresh_up_call_count(contexts, new_stack):
    _, _, aws, calls = contexts
    calls.clear()
    up(aws, new_stack())
    assert len(calls.mutating) == FRESH_MUTATING_CALLS


@pytest.mark.parametrize("n", range(FRESH_MUTATING_CALLS))
def test_killed_after_any_mutating_call_the_next_up_finishes_with_one_of_everything(contexts, new_stack, census,
                                                                                   expected, n):
    doomed, killer, aws, calls = contexts
    stack = new_stack()
    killer.arm(n)
    with pytest.raises(Killed):
        up(doomed, stack)
    killer.n = None

    up(aws, stack)
    assert census(aws, stack) == expected
    calls.clear()
    up(aws, stack)
    assert calls.mutating == []
