"""Lambda's asynchronous invocation (``InvocationType=Event`` and S3 notifications).

The caller gets its answer at once; the event waits in a queue and runs on the function later.
On a function error or timeout Lambda retries twice (after about one, then two minutes; locally
the delays come from the cloud's options), keeping the same request id, and after the last
failure the event is dropped with an error in the daemon's log. A throttled event is kept and
retried. Events older than six hours are dropped, as Lambda does.

Every queued event is reported to ``persist`` (``touch_job(request_id, state)``, ``None`` once it
is done), so the local cloud's persister keeps the queue: an event acknowledged before a crash
runs after the restart (at least once, as Lambda delivers). A *prepared* event is saved but does
not run until :meth:`AsyncInvoker.release` (S3 queues its event inside the upload's request and
releases it once the upload is answered).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from efsctl.local.clock import CloudClock

MAX_EVENT_AGE = 6 * 3600.0          # AWS seconds
THROTTLE_RETRY = 1.0                # AWS seconds between tries of a throttled event


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    request_id: str = field(compare=False)
    function: str = field(compare=False)
    locate: Callable[[], Any] = field(compare=False)
    event: bytes = field(compare=False)
    source: str = field(compare=False)
    queued_at: float = field(compare=False)
    attempt: int = field(default=1, compare=False)
    arn: str = field(default="", compare=False)

    def state(self) -> dict[str, Any]:
        """What the persister keeps (times on the cloud's clock, which carries on across restarts)."""
        return {"request_id": self.request_id, "function": self.function, "arn": self.arn, "event": self.event,
                "source": self.source, "queued_at": self.queued_at, "due": self.due, "attempt": self.attempt}


class AsyncInvoker:
    def __init__(self, runtime: Any, *, delays: tuple[float, ...], clock: CloudClock | None = None,
                 workers: int = 8, log: logging.Logger | None = None, persist: Any = None) -> None:
        self.runtime = runtime
        self.persist = persist
        self._live: dict[str, _Job] = {}
        self.delays = tuple(delays)
        self.clock = clock or CloudClock()
        self.log = log or logging.getLogger("efsctl.local.async")
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._pending = 0
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda-async")
        self._thread = threading.Thread(target=self._schedule, name="lambda-async-scheduler", daemon=True)
        self._thread.start()
        self.outcomes: list[tuple[str, str, int]] = []   # (request id, status, attempts), most recent last

    def submit(self, function: str, locate: Callable[[], Any], event: bytes, *, source: str = "Invoke",
               reserved: bool = False, arn: str = "") -> str:
        """Queue ``event`` for the function ``locate()`` returns at run time; return the request id.

        ``reserved``: the event was counted by :meth:`reserve` already.
        """
        job = self.prepare(function, locate, event, source=source, reserved=reserved, arn=arn)
        self.release(job)
        return job.request_id

    def prepare(self, function: str, locate: Callable[[], Any], event: bytes, *, source: str = "Invoke",
                reserved: bool = False, arn: str = "") -> _Job:
        """Queue ``event`` (saved, counted by :meth:`drain`) without letting it run yet."""
        now = self.clock.now()
        job = _Job(now, next(self._seq), str(uuid.uuid4()), function, locate, event, source, now, arn=arn)
        with self._cond:
            if not reserved:
                self._pending += 1
            self._live[job.request_id] = job
        self._save(job)
        return job

    def release(self, job: _Job) -> None:
        """Let a prepared event run."""
        with self._cond:
            heapq.heappush(self._heap, job)
            self._cond.notify_all()

    def restore(self, states: list[dict[str, Any]], locate_for: Callable[[str], Callable[[], Any]]) -> int:
        """Queue again the events a persisted queue held (each ``state`` from :meth:`_Job.state`)."""
        for state in sorted(states, key=lambda s: s["due"]):
            job = _Job(state["due"], next(self._seq), state["request_id"], state["function"],
                       locate_for(state["arn"]), state["event"], state["source"], state["queued_at"],
                       attempt=state["attempt"], arn=state["arn"])
            with self._cond:
                self._pending += 1
                self._live[job.request_id] = job
            self.release(job)
        return len(states)

    def jobs(self) -> dict[str, dict[str, Any]]:
        """Every event not done yet, as the persister keeps it (for a checkpoint)."""
        with self._cond:
            return {rid: job.state() for rid, job in self._live.items()}

    def _save(self, job: _Job, done: bool = False) -> None:
        if self.persist is not None:
            self.persist.touch_job(job.request_id, None if done else job.state())

    def reserve(self) -> None:
        """Count an event that will be submitted shortly (S3 sends it once the upload has been
        answered), so that :meth:`drain` waits for it; :meth:`submit` it or :meth:`unreserve` it."""
        with self._cond:
            self._pending += 1

    def unreserve(self) -> None:
        with self._cond:
            self._pending -= 1
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        return self._pending

    def drain(self, timeout: float) -> bool:
        """Wait until every queued event has finished (or been dropped); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def shutdown(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _schedule(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    wait = self._heap[0].due - self.clock.now() if self._heap else None
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._closed:
                    return
                job = heapq.heappop(self._heap)
            self._pool.submit(self._run, job)

    def _requeue(self, job: _Job, delay: float) -> None:
        job.due = self.clock.now() + delay
        job.seq = next(self._seq)
        self._save(job)
        with self._cond:
            heapq.heappush(self._heap, job)
            self._cond.notify_all()

    def _finish(self, job: _Job, status: str) -> None:
        self._save(job, done=True)
        with self._cond:
            self._live.pop(job.request_id, None)
            self.outcomes.append((job.request_id, status, job.attempt))
            del self.outcomes[:-1000]
            self._pending -= 1
            self._cond.notify_all()

    def _run(self, job: _Job) -> None:
        from efsctl.local.runtime import Throttled

        try:
            if self.clock.since(job.queued_at) > MAX_EVENT_AGE:
                self.log.error("async event %s for %s dropped: older than 6 hours", job.request_id, job.function)
                return self._finish(job, "expired")
            spec = job.locate()
            if spec is None:
                self.log.error("async event %s dropped: function %s no longer exists", job.request_id, job.function)
                return self._finish(job, "dropped")
            try:
                result = self.runtime.invoke(spec, job.event, request_id=job.request_id)
            except Throttled:
                return self._requeue(job, self.clock.scaled(THROTTLE_RETRY))
            if result.error is None:
                return self._finish(job, "success")
            reason = f"{result.error.get('errorType', result.status)}: {result.error.get('errorMessage', '')}"
            if job.attempt <= len(self.delays):
                delay = self.delays[job.attempt - 1]
                self.log.warning("async invocation %s of %s (%s) failed on attempt %d: %s; retrying in %.2f s",
                                 job.request_id, job.function, job.source, job.attempt, reason, delay)
                job.attempt += 1
                return self._requeue(job, delay)
            self.log.error("async invocation %s of %s (%s) failed %d times, event dropped: %s",
                           job.request_id, job.function, job.source, job.attempt, reason)
            return self._finish(job, "failed")
        except Exception:  # noqa: BLE001 - one bad event must not stop the queue
            self.log.exception("async invocation %s of %s crashed", job.request_id, job.function)
            return self._finish(job, "crashed")
