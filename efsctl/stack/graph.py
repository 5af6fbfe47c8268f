"""Run a dependency graph on a small thread pool: every node as soon as its dependencies are done.

:mod:`efsctl.stack.execute` schedules every plan (`up`'s and `down`'s) with :func:`run_graph`;
what a failure means is the ``fail`` callback's decision. Waits inside nodes sleep on a :class:`CancellableClock`, so setting the
shared ``cancelled`` event ends them (they raise :class:`Cancelled`) and no new node starts.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, TypeVar

from efsctl.waits import Clock

R = TypeVar("R")


class Cancelled(Exception):
    """Another node failed (or the run was interrupted), so this one stopped waiting."""


class CancellableClock(Clock):
    """The injected clock, whose sleeps end early (raising :class:`Cancelled`) once cancelled."""

    def __init__(self, inner: Clock, cancelled: threading.Event) -> None:
        super().__init__(now=inner.now, sleep=self._sleep)
        self._inner = inner
        self._cancelled = cancelled

    def _sleep(self, seconds: float) -> None:
        if self._cancelled.is_set():
            raise Cancelled()
        if self._inner.sleep is time.sleep:
            self._cancelled.wait(seconds)
        else:
            self._inner.sleep(seconds)
        if self._cancelled.is_set():
            raise Cancelled()


def run_graph(
    waiting_on: dict[str, set[str]],
    *,
    run: Callable[[str], R],
    finish: Callable[[str, R], None],
    fail: Callable[[str, BaseException], None],
    cancelled: threading.Event,
    inline: Callable[[str], R | None] | None = None,
    workers: int = 8,
    thread_name: str = "efsctl-step",
) -> dict[str, set[str]]:
    """Run ``run(key)`` on the pool for each key once its ``waiting_on`` set is empty.

    ``finish(key, result)`` records a success; ``fail(key, error)`` a failure (it sets
    ``cancelled`` to start nothing more). Whatever depends on a failed key, directly or not, is
    held back. ``inline(key)`` may complete a key without a thread (it returns the result, or
    ``None`` to run it). Ctrl-C (any exception in the scheduler itself) cancels and propagates.
    Returns the keys that never became ready (neither run nor held back).
    """
    failed: set[str] = set()

    def complete(key: str, result: R) -> None:
        finish(key, result)
        for deps in waiting_on.values():
            deps.discard(key)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name)
    running: dict[Future[R], str] = {}
    try:
        while True:
            completed_inline = False
            if not cancelled.is_set():
                _hold_back(waiting_on, failed)
                for key in [k for k, deps in waiting_on.items() if not deps]:
                    del waiting_on[key]
                    result = inline(key) if inline is not None else None
                    if result is not None:
                        complete(key, result)
                        completed_inline = True
                    else:
                        running[pool.submit(run, key)] = key
            if completed_inline:
                continue  # finishing one inline may have unblocked more
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                key = running.pop(future)
                error = future.exception()
                if error is None:
                    complete(key, future.result())
                else:
                    failed.add(key)
                    fail(key, error)
    except BaseException:
        cancelled.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return waiting_on


def _hold_back(waiting_on: dict[str, set[str]], failed: set[str]) -> None:
    """Drop the nodes that depend, directly or not, on a failed one: they cannot run now."""
    changed = True
    while changed:
        changed = False
        for key in [k for k, deps in waiting_on.items() if deps & failed]:
            del waiting_on[key]
            failed.add(key)
            changed = True
