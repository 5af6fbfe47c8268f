"""Work that must wait until the current API request has been answered.

S3 sends an event notification once the object is committed, after PutObject has answered;
moto sends it from inside ``put_object``, before the response (and before it stores some of
the object's metadata). The daemon captures what patches :meth:`Deferral.defer` while moto
handles a request, and runs it when the server closes the response.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterable, Iterator

log = logging.getLogger("efsctl.local")

Work = Callable[[], None]


class Deferral:
    def __init__(self) -> None:
        self._local = threading.local()
        # Deferred work not yet run. Counted from the moment it is deferred (inside the
        # request), so a caller who has its response can wait for what the request started.
        self._pending = 0
        self._idle = threading.Condition()

    def defer(self, work: Work) -> None:
        queue = getattr(self._local, "queue", None)
        if queue is None:
            run(work)
            return
        with self._idle:
            self._pending += 1
        queue.append(work)

    def _ran(self, count: int) -> None:
        with self._idle:
            self._pending -= count
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every deferred piece of work has run; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def wrap_wsgi(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        """A WSGI app that runs the work ``app`` deferred once its response is closed."""

        def deferred_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            queue: list[Work] = []
            self._local.queue = queue
            try:
                body = app(environ, start_response)
            finally:
                self._local.queue = None
            return _AfterClose(body, queue, self._ran) if queue else body

        return deferred_app


class _AfterClose:
    def __init__(self, body: Iterable[bytes], queue: list[Work], ran: Callable[[int], None]) -> None:
        self._body = body
        self._queue = queue
        self._ran = ran

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            try:
                for work in self._queue:
                    run(work)
            finally:
                self._ran(len(self._queue))


def run(work: Work) -> None:
    try:
        work()
    except Exception:  # noqa: BLE001 - like S3, a failed notification never fails the upload
        log.exception("deferred work failed")
