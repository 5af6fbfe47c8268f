"""One warm execution environment: a worker process running ``bootstrap.py``, seen from the daemon.

The worker's stdout and stderr share one pipe that a reader thread turns into log lines of the
environment's stream as they arrive (so a long handler's output can be tailed while it runs).
Requests and replies travel on two other pipes. A sentinel line after each invocation tells the
reader the invocation's output is complete, so END and REPORT follow the handler's last line.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from efsctl.local.runtime import bootstrap
from efsctl.local.runtime.credentials import SessionCredentials
from efsctl.local.runtime.logs import LogSink
from efsctl.local.runtime.spec import FunctionSpec

BOOTSTRAP = Path(bootstrap.__file__)
FRAME = bootstrap.FRAME
SENTINEL = bootstrap.SENTINEL
INIT_TIMEOUT = 10.0   # Lambda's limit for the init phase
MEMORY_POLL = 0.05    # how often a busy environment's memory is checked against its size
# Lambda's runtime reports a signal as Go prints it ("Runtime exited with error: signal: killed").
SIGNAL_TEXT = {signal.SIGKILL: "killed", signal.SIGTERM: "terminated", signal.SIGSEGV: "segmentation fault",
               signal.SIGABRT: "aborted", signal.SIGBUS: "bus error", signal.SIGINT: "interrupt"}


class WorkerTimeout(Exception):
    pass


class WorkerDied(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InitFailed(Exception):
    def __init__(self, error: dict[str, Any], init_ms: float) -> None:
        super().__init__(error.get("errorMessage", "init failed"))
        self.error = error
        self.init_ms = init_ms


@dataclass
class Reply:
    error: dict[str, Any] | None
    body: bytes
    max_rss_kb: int
    log: str | None = None


@dataclass
class _Current:
    request_id: str
    tail: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


class Worker:
    def __init__(self, spec: FunctionSpec, *, env: dict[str, str], task_dir: Path, tmp_dir: Path,
                 sink: LogSink, stream: str, python: str = sys.executable) -> None:
        self.spec = spec
        self.fingerprint = spec.fingerprint
        self.stream = stream
        self.task_dir = task_dir
        self.tmp_dir = tmp_dir
        self._env = env
        self._sink = sink
        self._python = python
        self._proc: subprocess.Popen | None = None
        self._current: _Current | None = None
        self._reader: threading.Thread | None = None
        self.init_ms: float | None = None   # reported once, on the first invocation
        self.max_rss_kb = 0
        self.last_used = time.monotonic()
        self.invocations = 0
        self.credentials: SessionCredentials | None = None   # its role session's, which run out

    def lasts(self, timeout: float) -> bool:
        """True if its credentials outlive an invocation starting now (with a minute to spare)."""
        return self.credentials is None or self.credentials.lasts(timeout, time.time())

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the process and run the init phase; raise :class:`InitFailed` on an init error."""
        req_r, self._req_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        out_r, out_w = os.pipe()
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        init = self._current = _Current("init")
        started = time.perf_counter()
        try:
            self._proc = subprocess.Popen(
                [self._python, "-I", "-u", "-B", str(BOOTSTRAP), str(req_r), str(resp_w)],
                stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w, pass_fds=(req_r, resp_w),
                env=self._env, cwd=str(self.task_dir), close_fds=True)
        finally:
            for fd in (req_r, resp_w, out_w):
                os.close(fd)
        self._reader = threading.Thread(target=self._read_output, args=(out_r,), daemon=True,
                                        name=f"lambda-out-{self.spec.name}-{self._proc.pid}")
        self._reader.start()
        try:
            header, _ = self._recv(time.monotonic() + INIT_TIMEOUT)
        except (WorkerTimeout, WorkerDied) as exc:
            self.kill()
            detail = "init timed out" if isinstance(exc, WorkerTimeout) else exc.detail
            raise InitFailed({"errorMessage": f"Runtime exited during init: {detail}",
                              "errorType": "Runtime.ExitError", "stackTrace": []},
                             (time.perf_counter() - started) * 1000) from None
        init.done.wait(timeout=2.0)   # the init phase's output comes before the first START
        self._current = None
        self.init_ms = float(header.get("init_ms") or (time.perf_counter() - started) * 1000)
        self.max_rss_kb = int(header.get("max_rss_kb") or 0)
        if header.get("error"):
            self.kill()
            raise InitFailed(header["error"], self.init_ms)

    def kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self.max_rss_kb = max(self.max_rss_kb, self.peak_rss_kb())
            try:
                proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for fd in (self._req_w, self._resp_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self._req_w = self._resp_r = -1
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=2)
        _rmtree(self.tmp_dir)

    def close(self) -> None:
        """Graceful end: closing the request pipe makes the worker exit on its own."""
        try:
            os.close(self._req_w)
        except OSError:
            pass
        self._req_w = -1
        if self._proc is not None:
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def peak_rss_kb(self) -> int:
        """VmHWM of the live process: its real peak resident set."""
        return self._status_kb(b"VmHWM:", self.max_rss_kb)

    def anon_rss_kb(self) -> int:
        """RssAnon of the live process: the memory it holds (file pages it maps are not counted,
        as Lambda's limit does not count the page cache)."""
        return self._status_kb(b"RssAnon:", 0)

    def _status_kb(self, field: bytes, default: int) -> int:
        """One kB figure of the live process's /proc status, or ``default``."""
        try:
            with open(f"/proc/{self.pid}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(field):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return default

    def _enforce_memory(self) -> None:
        """Lambda kills an environment that uses more than the function's memory size."""
        if self._proc is None or self._proc.poll() is not None:
            return
        if self.anon_rss_kb() > self.spec.memory_mb * 1024:
            self.max_rss_kb = max(self.max_rss_kb, self.peak_rss_kb())
            try:
                self._proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass

    def exit_detail(self) -> str:
        code = self._proc.poll() if self._proc else None
        if code is None:
            return "unknown"
        if code < 0:
            try:
                return f"signal: {SIGNAL_TEXT.get(-code) or signal.Signals(-code).name.lower().removeprefix('sig')}"
            except ValueError:
                return f"signal: {-code}"
        return f"exit status {code}"

    # --- invocations ---------------------------------------------------------------------------

    def begin(self, request_id: str) -> None:
        """Start collecting the log lines of the invocation ``request_id``."""
        self._current = _Current(request_id)

    def invoke(self, request_id: str, event: bytes, timeout: float, deadline_wall: float) -> Reply:
        """Run one invocation; :class:`WorkerTimeout` after ``timeout`` s, :class:`WorkerDied`."""
        current = self._current if self._current and self._current.request_id == request_id else _Current(request_id)
        self._current = current
        self.invocations += 1
        deadline = time.monotonic() + timeout
        header = {"request_id": request_id, "deadline_ms": deadline_wall * 1000, "arn": self.spec.arn}
        data = json.dumps(header).encode()
        try:
            _write_all(self._req_w, FRAME.pack(len(data), len(event)) + data + event, deadline)
            reply, body = self._recv(deadline)
        except BrokenPipeError:
            self._proc.wait(timeout=5)
            raise WorkerDied(self.exit_detail()) from None
        # Everything the handler printed precedes the sentinel, which precedes the reply.
        current.done.wait(timeout=2.0)
        self.max_rss_kb = max(self.max_rss_kb, int(reply.get("max_rss_kb") or 0))
        self.last_used = time.monotonic()
        return Reply(reply.get("error"), body, self.max_rss_kb, reply.get("log"))

    def take_tail(self) -> list[str]:
        current, self._current = self._current, None
        return current.tail if current else []

    def log(self, lines: list[str]) -> None:
        """Lines the runtime itself writes to this environment's stream (START, END, REPORT)."""
        if self._current is not None:
            self._current.tail.extend(lines)
        self._sink.write(self.spec.region, self.spec.log_group, self.stream, lines)

    def _recv(self, deadline: float) -> tuple[dict[str, Any], bytes]:
        head = self._read_exact(FRAME.size, deadline)
        hlen, blen = FRAME.unpack(head)
        header = json.loads(self._read_exact(hlen, deadline))
        body = self._read_exact(blen, deadline) if blen else b""
        return header, body

    def _read_exact(self, n: int, deadline: float) -> bytes:
        chunks = []
        while n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerTimeout()
            ready, _, _ = select.select([self._resp_r], [], [], min(remaining, MEMORY_POLL))
            if not ready:
                self._enforce_memory()   # over its size, it is killed: the read below then ends
                continue
            chunk = os.read(self._resp_r, n)
            if not chunk:
                if self._proc is not None:
                    try:
                        self._proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
                raise WorkerDied(self.exit_detail())
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _read_output(self, fd: int) -> None:
        buffer = b""
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                self._handle_lines(lines)
            if buffer:
                self._handle_lines([buffer])
        except OSError:
            pass
        finally:
            os.close(fd)
            current = self._current
            if current is not None:
                current.done.set()

    def _handle_lines(self, raw_lines: list[bytes]) -> None:
        pending: list[str] = []
        for raw in raw_lines:
            at = raw.find(SENTINEL)
            if at < 0:
                pending.append(raw.decode("utf-8", "replace").rstrip("\r"))
                continue
            if at:
                pending.append(raw[:at].decode("utf-8", "replace").rstrip("\r"))
            self._emit(pending)
            pending = []
            request_id = raw[at + len(SENTINEL):].decode(errors="replace")
            current = self._current
            if current is not None and current.request_id == request_id:
                current.done.set()
        self._emit(pending)

    def _emit(self, lines: list[str]) -> None:
        if not lines:
            return
        current = self._current
        if current is not None:
            current.tail.extend(lines)
        try:
            self._sink.write(self.spec.region, self.spec.log_group, self.stream, lines)
        except Exception:  # noqa: BLE001 - a log write must never take the worker down
            pass


def _write_all(fd: int, data: bytes, deadline: float) -> None:
    view = memoryview(data)
    while view:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WorkerTimeout()
        _, ready, _ = select.select([], [fd], [], remaining)
        if not ready:
            raise WorkerTimeout()
        view = view[os.write(fd, view[:65536]):]


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
