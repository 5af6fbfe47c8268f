"""The executor's scheduling, with a fake runner: no AWS."""

from __future__ import annotations

import threading
import time

import pytest

from efsctl.errors import AwsError
from efsctl.stack.execute import execute
from efsctl.stack.model import Names
from efsctl.stack.observed import Observed
from efsctl.stack.plan import Action, Plan
from efsctl.waits import Outcome

NAMES = Names("demo", "111122223333", "us-east-1")


def action(key: str, *deps: str, verb: str = "create") -> Action:
    return Action(key, "fake", verb, ("test",), (), deps)


class Recorder:
    def __init__(self) -> None:
        self.finished: list[str] = []
        self.failed: list[str] = []

    def step_started(self, action) -> None:
        pass

    def step_finished(self, result) -> None:
        self.finished.append(result.key)

    def step_failed(self, key, error, elapsed) -> None:
        self.failed.append(key)

    def waiting(self, key, what, elapsed, detail) -> None:
        pass


def test_independent_branches_run_together_and_dependents_wait():
    running, peak, lock = set(), [0], threading.Lock()

    def runner(act, ctx, done):
        assert set(act.depends_on) <= set(done), f"{act.key} ran before {act.depends_on}"
        with lock:
            running.add(act.key)
            peak[0] = max(peak[0], len(running))
        time.sleep(0.05)
        with lock:
            running.discard(act.key)
        return Observed(act.key, "fake", f"id-{act.key}")

    plan = Plan((action("efs"), action("role"), action("logs"), action("mt-a", "efs"), action("mt-b", "efs"),
                 action("fn", "mt-a", "mt-b", "role", "logs")))
    recorder = Recorder()
    execution = execute(plan, None, NAMES, reporter=recorder, runner=runner)
    assert execution.error is None
    assert peak[0] >= 3  # efs, role and logs (then mount targets) together
    assert recorder.finished[-1] == "fn" and set(recorder.finished) == {"efs", "role", "logs", "mt-a", "mt-b", "fn"}


def test_a_failure_cancels_running_waits_and_starts_nothing_new():
    def runner(act, ctx, done):
        if act.key == "role":
            time.sleep(0.02)
            raise AwsError("AWS CreateRole failed: AccessDenied.")
        if act.key == "efs":  # a long wait that the failure must cut short
            ctx.wait(lambda: Outcome(done=False, detail="creating"), what="efs", timeout=30)
        return Observed(act.key, "fake", act.key)

    plan = Plan((action("efs"), action("role"), action("fn", "role")))
    recorder = Recorder()
    started = time.monotonic()
    execution = execute(plan, None, NAMES, reporter=recorder, runner=runner)
    assert time.monotonic() - started < 2
    assert execution.failed_key == "role" and recorder.failed == ["role"]
    assert "fn" not in execution.results and "efs" not in execution.results
    with pytest.raises(AwsError, match="CreateRole"):
        execution.raise_for_error()


def test_skips_that_need_no_wait_use_no_thread_or_call():
    calls = []

    def runner(act, ctx, done):
        calls.append(act.key)
        return Observed(act.key, "fake", act.key)

    ready = Observed("vpc", "vpc", "vpc-1", state="available")
    plan = Plan((Action("vpc", "vpc", "skip", ("in sync",), (), (), None, ready), action("subnet", "vpc")))
    execution = execute(plan, None, NAMES, runner=runner)
    assert calls == ["subnet"] and execution.results["vpc"].id == "vpc-1"
