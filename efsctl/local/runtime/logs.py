"""CloudWatch Logs output of the local Lambda runtime, written into moto's logs backend in-process.

Lambda writes each execution environment's output to its own stream of ``/aws/lambda/<fn>``,
named ``YYYY/MM/DD/[<version>]<32 hex>``, and re-creates the group or stream if they are gone.
moto's logs backend is not thread-safe (event ids come from a class counter), so every write
goes through one lock, and through the persister's gate (``gate``: a context manager factory),
as every other change to moto's models does.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from typing import Any, Callable, ContextManager

from efsctl.local import moto_models

Writer = Callable[[str, str, str, str, list[dict]], None]


def stream_name(version: str, wall: float | None = None) -> str:
    day = time.strftime("%Y/%m/%d", time.gmtime(wall if wall is not None else time.time()))
    return f"{day}/[{version}]{uuid.uuid4().hex}"


class LogSink:
    def __init__(self, account_id: str, writer: Writer | None = None, wall: Callable[[], float] = time.time,
                 gate: Callable[[], ContextManager[Any]] = contextlib.nullcontext) -> None:
        self.account_id = account_id
        self._writer = writer or moto_models.put_log_lines
        self._wall = wall
        self._lock = threading.Lock()
        self._gate = gate

    def write(self, region: str, group: str, stream: str, lines: list[str]) -> None:
        if not lines:
            return
        ts = int(self._wall() * 1000)
        events = [{"timestamp": ts, "message": line} for line in lines]
        with self._gate(), self._lock:
            self._writer(self.account_id, region, group, stream, events)


class MemorySink(LogSink):
    """Keeps lines in memory (tests of the runtime without moto)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str]] = []
        super().__init__("000000000000", writer=self._keep)

    def _keep(self, account_id: str, region: str, group: str, stream: str, events: list[dict]) -> None:
        self.lines.extend((group, stream, e["message"]) for e in events)

    def messages(self, group: str | None = None) -> list[str]:
        return [m for g, _, m in self.lines if group is None or g == group]
