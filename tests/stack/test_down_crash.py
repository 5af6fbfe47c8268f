"""Killed at any instant, `up` or `down`, the next `down` leaves nothing.

The kill is a call hook that, once ``n`` mutating calls have been issued, raises from the next
call any thread makes (a BaseException nothing catches), as SIGKILL would: calls already sent
complete on AWS, nothing after them happens.
"""

from __future__ import annotations

import pytest

from down_support import CODE, CREDENTIALS, REGION, build, nothing_left
from efsctl.aws.session import AwsContext, is_mutating
from efsctl.stack import teardown as td
from efsctl.stack.deploy import UpSettings, deploy
from efsctl.waits import FakeClock
from crash_support import Killed, Killer

# Kill points, bounded to keep the suite fast: spread over `up`'s ~40 mutating calls and `down`'s.
DOWN_MUTATING_CALLS = 29
UP_KILLS = (0, 1, 3, 6, 10, 14, 18, 22, 26, 30, 34, 38)
DOWN_KILLS = (0, 1, 3, 6, 10, 14, 18, 22, 25, 28)


@pytest.fixture(scope="module")
def contexts(moto_module):
    """Long-lived contexts (clients are slow to build): one that gets killed, one that recovers."""
    doomed = AwsContext(region=REGION, credentials=dict(CREDENTIALS))
    killer = Killer()
    doomed.add_call_hook(killer)
    return doomed, killer, AwsContext(region=REGION, credentials=dict(CREDENTIALS))


def vpc_ids(aws, stack):
    from efsctl.stack.model import TAG_STACK

    return tuple(v["VpcId"] for v in aws.client("ec2").describe_vpcs(
        Filters=[{"Name": f"tag:{TAG_STACK}", "Values": [stack]}])["Vpcs"])


@pytest.mark.parametrize("n", UP_KILLS)
def test_down_after_an_up_killed_after_n_mutating_calls_leaves_nothing(contexts, new_stack, n):
    doomed, killer, aws = contexts
    stack = new_stack()
    killer.arm(n)
    try:
        deployment = deploy(doomed, stack, UpSettings(), code=CODE, clock=FakeClock())
        if deployment.execution.error is not None:
            raise deployment.execution.error
    except Killed:
        pass
    finally:
        killer.arm(None)
    vpcs = vpc_ids(aws, stack)
    result = td.teardown(aws, stack, clock=FakeClock())
    result.raise_for_error()
    assert nothing_left(aws, stack, vpcs) == {}


@pytest.mark.parametrize("n", DOWN_KILLS)
def test_down_killed_after_n_mutating_calls_then_down_again_leaves_nothing(contexts, new_stack, n):
    doomed, killer, aws = contexts
    stack = new_stack()
    build(aws, stack)
    vpcs = vpc_ids(aws, stack)
    killer.arm(n)
    try:
        result = td.teardown(doomed, stack, clock=FakeClock())  # n = 0 dies while observing
        assert isinstance(result.error, Killed) and result.left
    except Killed:
        pass
    finally:
        killer.arm(None)
    result = td.teardown(aws, stack, clock=FakeClock())
    result.raise_for_error()
    assert nothing_left(aws, stack, vpcs) == {}



def test_down_call_count(contexts, new_stack):
    """Keeps DOWN_KILLS honest: a full `down` of an empty-bucket stack makes this many mutating calls."""
    _, _, aws = contexts
    stack = new_stack()
    build(aws, stack)
    mutating = []
    aws.add_call_hook(lambda service, op, params: mutating.append(op) if is_mutating(op) else None)
    td.teardown(aws, stack, clock=FakeClock()).raise_for_error()
    assert len(mutating) == DOWN_MUTATING_CALLS
