"""Lambda's asynchronous invocation semantics, on a fake runtime (no process, no moto)."""

from __future__ import annotations

from types import SimpleNamespace

from efsctl.local.runtime import Throttled
from efsctl.local.runtime.asyncq import AsyncInvoker


class FakeRuntime:
    """Fails the first ``fail`` calls for each request id (throttles the first ``throttle``)."""

    def __init__(self, fail: int = 0, throttle: int = 0) -> None:
        self.fail, self.throttle = fail, throttle
        self.calls: list[str] = []

    def invoke(self, spec, event, request_id=None):
        self.calls.append(request_id)
        n = self.calls.count(request_id)
        if n <= self.throttle:
            raise Throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
        if n <= self.throttle + self.fail:
            return SimpleNamespace(error={"errorType": "RuntimeError", "errorMessage": f"attempt {n}"}, status="error")
        return SimpleNamespace(error=None, status="success")


def run(runtime, locate=lambda: "spec", delays=(0.001, 0.001)):
    invoker = AsyncInvoker(runtime, delays=delays)
    try:
        rid = invoker.submit("fn", locate, b"{}")
        assert invoker.drain(10)
        return rid, invoker.outcomes
    finally:
        invoker.shutdown()


def test_success_runs_once():
    runtime = FakeRuntime()
    rid, outcomes = run(runtime)
    assert outcomes == [(rid, "success", 1)] and runtime.calls == [rid]


def test_two_retries_with_the_same_request_id_then_success():
    runtime = FakeRuntime(fail=2)
    rid, outcomes = run(runtime)
    assert outcomes == [(rid, "success", 3)] and runtime.calls == [rid] * 3


def test_dropped_after_three_failures(caplog):
    runtime = FakeRuntime(fail=5)
    rid, outcomes = run(runtime)
    assert outcomes == [(rid, "failed", 3)] and len(runtime.calls) == 3
    assert "failed 3 times, event dropped: RuntimeError: attempt 3" in caplog.text


def test_throttled_events_wait_and_are_not_counted_as_failures():
    runtime = FakeRuntime(throttle=2)
    invoker = AsyncInvoker(runtime, delays=(0.001, 0.001))
    invoker.clock.time_scale = 0.001   # the throttle back-off is simulated AWS time
    try:
        rid = invoker.submit("fn", lambda: "spec", b"{}")
        assert invoker.drain(10)
        assert invoker.outcomes == [(rid, "success", 1)] and len(runtime.calls) == 3
    finally:
        invoker.shutdown()


def test_event_for_a_deleted_function_is_dropped():
    rid, outcomes = run(FakeRuntime(), locate=lambda: None)
    assert outcomes == [(rid, "dropped", 1)]


def test_a_reserved_event_holds_drain_until_it_is_submitted():
    runtime = FakeRuntime()
    invoker = AsyncInvoker(runtime, delays=(0.001, 0.001))
    try:
        invoker.reserve()
        assert invoker.drain(0) is False
        rid = invoker.submit("fn", lambda: "spec", b"{}", reserved=True)
        assert invoker.drain(10) and invoker.outcomes == [(rid, "success", 1)]
        invoker.reserve()
        invoker.unreserve()
        assert invoker.drain(0) is True
    finally:
        invoker.shutdown()
