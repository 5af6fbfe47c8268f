import pytest

from efsctl.errors import WaitTimeout
from efsctl.waits import FakeClock, Outcome, Poll, retry, wait_until


def test_wait_until_returns_value_without_real_sleep():
    clock = FakeClock()
    states = iter(["creating", "creating", "available"])

    def check():
        state = next(states)
        return Outcome(state == "available", value=state, detail=state)

    seen = []
    assert wait_until(check, what="fs", timeout=60, clock=clock,
                      progress=lambda w, e, d: seen.append((w, d))) == "available"
    assert seen == [("fs", "creating"), ("fs", "creating")]
    assert len(clock.sleeps) == 2


def test_wait_until_times_out_with_last_state_and_hint():
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as info:
        wait_until(lambda: Outcome(False, detail="deleting"), what="mount targets", timeout=30, clock=clock)
    assert "mount targets" in info.value.message and "deleting" in info.value.message
    assert "again" in info.value.hint
    assert 30 <= clock.t <= 31


def test_poll_interval_tracks_elapsed_time_within_bounds():
    poll = Poll(floor=0.2, ceiling=5, fraction=0.1)
    assert poll.interval(0) == 0.2
    assert poll.interval(20) == 2.0
    assert poll.interval(1000) == 5


def test_adaptive_polling_overshoots_by_at_most_the_fraction():
    clock = FakeClock()
    ready_at = 90.0
    wait_until(lambda: Outcome(clock.t >= ready_at), what="mt", timeout=600, clock=clock,
               poll=Poll(floor=0.1, ceiling=10, fraction=0.1))
    assert ready_at <= clock.t <= ready_at * 1.1 + 0.1


def test_retry_retries_only_named_errors_until_the_bound():
    clock = FakeClock()
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("role cannot be assumed")
        return "ok"

    reason = lambda e: "IAM propagation" if "cannot be assumed" in str(e) else None  # noqa: E731
    assert retry(flaky, what="fn", retryable=reason, timeout=60, clock=clock) == "ok"
    with pytest.raises(ValueError):
        retry(lambda: (_ for _ in ()).throw(ValueError("other")), what="fn", retryable=reason, timeout=60,
              clock=clock)

    def always():
        raise RuntimeError("role cannot be assumed")

    start = clock.t
    with pytest.raises(RuntimeError):
        retry(always, what="fn", retryable=reason, timeout=30, clock=clock)
    assert clock.t - start >= 30
