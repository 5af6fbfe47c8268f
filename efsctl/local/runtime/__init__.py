"""The local Lambda runtime: runs the deployed zip in warm worker processes, as Lambda does.

One pool of execution environments per function. An invocation takes an idle environment whose
configuration still matches (same code, handler, environment, timeout, memory, mounts), or
starts one (a cold start: a fresh ``python`` running ``bootstrap.py`` over the zip extracted to
``<data>/functions/<name>/<code sha256>/``), up to the function's concurrency. The function's
timeout is enforced by killing the environment, which Lambda also discards after a timeout.
Each invocation writes START, END and REPORT lines around the handler's output.

Each environment holds temporary credentials for the function's execution role (see
``credentials``), so the handler's calls are held to the role's policies. What Lambda itself
does with the role (write the logs, mount the file system) is authorised through
``lambda_actions`` when the local cloud sets it (``fidelity/iam_enforcement``): a role that may
not write its log stream loses its output, one that may not mount the file system cannot start.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, Protocol

from efsctl.local.runtime.credentials import RoleSessions, SessionCredentials, StsAssumeRole
from efsctl.local.runtime.logs import LogSink, stream_name
from efsctl.local.runtime.spec import FunctionSpec
from efsctl.local.runtime.worker import InitFailed, Worker, WorkerDied, WorkerTimeout

TAIL_BYTES = 4096   # Invoke's LogType=Tail returns the last 4 KB of the log


class Throttled(Exception):
    """No execution environment may be started: the function is at its concurrency limit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Invocation:
    request_id: str
    payload: bytes
    error: dict[str, Any] | None
    status: str                 # success | error | timeout
    duration_ms: float
    billed_ms: int
    memory_mb: int
    max_memory_mb: int
    init_ms: float | None = None
    log: list[str] = field(default_factory=list)

    @property
    def function_error(self) -> str | None:
        return "Unhandled" if self.error is not None else None

    def log_tail(self) -> str:
        text = "\n".join(self.log) + "\n"
        return text.encode()[-TAIL_BYTES:].decode(errors="ignore")


class _Pool:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.idle: list[Worker] = []
        self.count = 0
        self.busy: set[Worker] = set()


@dataclass
class RuntimeConfig:
    data_dir: Path
    endpoint_url: str
    region: str
    credentials: dict[str, str]
    concurrency: int = 10
    idle_seconds: float = 300.0
    python: str = sys.executable
    role_sessions: bool = True     # each environment gets its role's session credentials


class LambdaActions(Protocol):
    """What Lambda does with a function's role, authorised (the local cloud provides it)."""

    def logs(self, spec: FunctionSpec, group: str, stream: str, new_stream: bool) -> bool:
        """May Lambda write these lines to ``stream`` (creating it when ``new_stream``)?"""

    def mount(self, spec: FunctionSpec) -> str | None:
        """None if the role may mount the function's file systems, else why not."""


class _AuthorizedSink:
    """The log sink as one environment writes to it: Lambda writes only what the role allows."""

    def __init__(self, sink: LogSink, spec: FunctionSpec, actions: LambdaActions) -> None:
        self._sink, self._spec, self._actions = sink, spec, actions
        self._streams: set[str] = set()

    def write(self, region: str, group: str, stream: str, lines: list[str]) -> None:
        new = stream not in self._streams
        if self._actions.logs(self._spec, group, stream, new):
            self._streams.add(stream)
            self._sink.write(region, group, stream, lines)


class LambdaRuntime:
    def __init__(self, config: RuntimeConfig, sink: LogSink) -> None:
        self.config = config
        self.sink = sink
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._extract_lock = threading.Lock()
        self.sessions = (RoleSessions(StsAssumeRole(config.endpoint_url, config.region, config.credentials))
                         if config.role_sessions else None)
        self.lambda_actions: LambdaActions | None = None

    # --- public --------------------------------------------------------------------------------

    def invoke(self, spec: FunctionSpec, event: bytes, *, request_id: str | None = None,
               queue_seconds: float | None = None) -> Invocation:
        """Run ``event`` through ``spec``'s handler and return what Lambda would report.

        With reserved concurrency exhausted a synchronous caller is throttled, as on AWS; under
        the local cap (which stands for the machine, not an account quota) callers queue for up to
        ``queue_seconds`` (default: the function's timeout).
        """
        request_id = request_id or str(uuid.uuid4())
        if spec.reserved_concurrency == 0:
            raise Throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
        if queue_seconds is None:
            queue_seconds = 0.0 if spec.reserved_concurrency is not None else spec.timeout
        try:
            worker, cold = self._acquire(spec, queue_seconds)
        except InitFailed as exc:
            return self._init_failure(spec, request_id, exc)
        reusable = False
        try:
            result = self._run(worker, spec, request_id, event, cold)
            reusable = result.status != "timeout" and worker.alive
            return result
        finally:
            self._release(spec.name, worker, reusable)

    def retire(self, function_name: str) -> None:
        """Stop the function's idle environments (it was deleted); busy ones end after their call."""
        pool = self._pools.get(function_name)
        if pool is None:
            return
        with pool.cond:
            idle, pool.idle = pool.idle, []
            pool.count -= len(idle)
        for worker in idle:
            worker.close()

    def reap_idle(self, now: float | None = None) -> int:
        """Stop environments idle for longer than ``idle_seconds``; return how many."""
        now = time.monotonic() if now is None else now
        stopped = []
        for pool in list(self._pools.values()):
            with pool.cond:
                keep = [w for w in pool.idle if now - w.last_used < self.config.idle_seconds]
                stopped += [w for w in pool.idle if w not in keep]
                pool.count -= len(pool.idle) - len(keep)
                pool.idle = keep
        for worker in stopped:
            worker.close()
        return len(stopped)

    def stats(self) -> dict[str, dict[str, int]]:
        out = {}
        for name, pool in list(self._pools.items()):
            with pool.cond:
                out[name] = {"environments": pool.count, "idle": len(pool.idle), "busy": len(pool.busy),
                             "pids": sorted(w.pid for w in pool.idle + list(pool.busy) if w.pid)}
        return out

    def shutdown(self) -> None:
        self._closed = True
        for pool in list(self._pools.values()):
            with pool.cond:
                workers = pool.idle + list(pool.busy)
                pool.idle, pool.count = [], 0
                pool.cond.notify_all()
            for worker in workers:
                worker.kill()

    # --- environments --------------------------------------------------------------------------

    def _pool(self, name: str) -> _Pool:
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                pool = self._pools[name] = _Pool()
            return pool

    def _acquire(self, spec: FunctionSpec, queue_seconds: float) -> tuple[Worker, bool]:
        pool = self._pool(spec.name)
        cap = spec.reserved_concurrency if spec.reserved_concurrency is not None else self.config.concurrency
        stale: list[Worker] = []
        deadline = time.monotonic() + queue_seconds
        try:
            with pool.cond:
                while True:
                    if self._closed:
                        raise Throttled("the local cloud is stopping")
                    while pool.idle:
                        worker = pool.idle.pop()
                        if worker.fingerprint == spec.fingerprint and worker.alive and worker.lasts(spec.timeout):
                            pool.busy.add(worker)
                            return worker, False
                        pool.count -= 1
                        stale.append(worker)
                    if pool.count < cap:
                        pool.count += 1
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise Throttled("ReservedFunctionConcurrentInvocationLimitExceeded"
                                        if spec.reserved_concurrency is not None
                                        else "ConcurrentInvocationLimitExceeded")
                    pool.cond.wait(remaining)
        finally:
            for worker in stale:
                worker.close()
        try:
            worker = self._spawn(spec)
        except BaseException:
            with pool.cond:
                pool.count -= 1
                pool.cond.notify()
            raise
        with pool.cond:
            pool.busy.add(worker)
        return worker, True

    def _release(self, name: str, worker: Worker, reusable: bool) -> None:
        pool = self._pool(name)
        with pool.cond:
            pool.busy.discard(worker)
            if reusable and not self._closed:
                pool.idle.append(worker)
            else:
                pool.count -= 1
            pool.cond.notify()
        if not reusable:
            worker.kill()

    def _spawn(self, spec: FunctionSpec) -> Worker:
        task_dir = self._task_dir(spec)
        wid = uuid.uuid4().hex[:12]
        tmp_dir = self.config.data_dir / "functions" / spec.name / "tmp" / wid
        stream = stream_name(spec.version)
        refused = self.lambda_actions.mount(spec) if self.lambda_actions is not None and spec.efs else None
        if refused:
            raise InitFailed({"errorType": "EFSMountFailureException", "errorMessage": refused, "stackTrace": []}, 0.0)
        try:
            credentials = self._credentials(spec)
        except Exception as exc:  # noqa: BLE001 - STS refused or failed: the environment cannot start
            raise InitFailed({"errorType": "Runtime.Unknown", "stackTrace": [],
                              "errorMessage": f"Lambda could not assume the role {spec.role}: {exc}"}, 0.0) from None
        env = self._environment(spec, stream, task_dir, tmp_dir, credentials)
        worker = Worker(spec, env=env, task_dir=task_dir, tmp_dir=tmp_dir, sink=self._sink_for(spec), stream=stream,
                        python=self.config.python)
        worker.credentials = credentials
        worker.start()
        return worker

    def _credentials(self, spec: FunctionSpec) -> SessionCredentials | None:
        """The role's session for a new environment, lasting at least one invocation."""
        if self.sessions is None or not spec.role:
            return None
        return self.sessions.get(spec.role, spec.name, lasting=spec.timeout)

    def _sink_for(self, spec: FunctionSpec) -> Any:
        return self.sink if self.lambda_actions is None else _AuthorizedSink(self.sink, spec, self.lambda_actions)

    def _task_dir(self, spec: FunctionSpec) -> Path:
        """The deployed zip, extracted once per code version (never the source tree)."""
        target = self.config.data_dir / "functions" / spec.name / spec.code_digest
        if target.is_dir():
            return target
        with self._extract_lock:
            if target.is_dir():
                return target
            staging = target.with_name(f".{spec.code_digest}.{uuid.uuid4().hex[:8]}")
            staging.mkdir(parents=True)
            try:
                with zipfile.ZipFile(BytesIO(spec.code)) as archive:
                    for info in archive.infolist():
                        dest = (staging / info.filename).resolve()
                        if not dest.is_relative_to(staging.resolve()):
                            raise ValueError(f"zip member {info.filename!r} escapes the task root")
                        archive.extract(info, staging)
                        mode = (info.external_attr >> 16) & 0o777
                        if mode and not info.is_dir():
                            os.chmod(dest, mode | 0o400)
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return target

    def _environment(self, spec: FunctionSpec, stream: str, task_dir: Path, tmp_dir: Path,
                     credentials: SessionCredentials | None = None) -> dict[str, str]:
        """The function's variables, then Lambda's reserved ones (which a function cannot override)."""
        env = {k: _map_mount(v, spec) for k, v in spec.environment}
        env.pop("AWS_SESSION_TOKEN", None)
        if spec.efs:
            env["EFS_MOUNT_PATH"] = _map_mount(env.get("EFS_MOUNT_PATH", spec.efs[0].local_mount_path), spec)
        creds = self.config.credentials
        env.update({
            "PATH": os.pathsep.join([str(Path(self.config.python).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(task_dir),
            "LAMBDA_RUNTIME_DIR": str(Path(__file__).parent),
            "_HANDLER": spec.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_ACCESS_KEY_ID": creds["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": creds["aws_secret_access_key"],
            "AWS_ENDPOINT_URL": self.config.endpoint_url,
            # Nothing from the operator's ~/.aws may leak into a function.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "TMPDIR": str(tmp_dir),
        })
        if credentials is not None:
            env.update(credentials.environment())
        return env

    # --- one invocation ------------------------------------------------------------------------

    def _run(self, worker: Worker, spec: FunctionSpec, request_id: str, event: bytes, cold: bool) -> Invocation:
        worker.begin(request_id)
        worker.log([f"START RequestId: {request_id} Version: {spec.version}"])
        started = time.perf_counter()
        error_type = None
        try:
            reply = worker.invoke(request_id, event, spec.timeout, time.time() + spec.timeout)
            status = "error" if reply.error else "success"
            error, payload = reply.error, reply.body
            if reply.log:
                worker.log([reply.log])
            error_type = error["errorType"] if error and error["errorType"].startswith("Runtime.") else None
        except WorkerTimeout:
            status = "timeout"
            worker.kill()
            message = f"{_iso_now()} {request_id} Task timed out after {spec.timeout:.2f} seconds"
            worker.log([message])
            error = {"errorMessage": message}
            payload = _json(error)
        except WorkerDied as exc:
            status, error_type = "error", "Runtime.ExitError"
            message = f"RequestId: {request_id} Error: Runtime exited with error: {exc.detail}"
            worker.log([message])
            error = {"errorType": error_type, "errorMessage": message}
            payload = _json(error)
        duration = (time.perf_counter() - started) * 1000
        if status == "timeout":
            duration = max(duration, spec.timeout * 1000)
        init_ms = worker.init_ms if cold else None
        result = Invocation(request_id, payload, error, status, duration, max(1, math.ceil(duration)), spec.memory_mb,
                            max(1, round(worker.max_rss_kb / 1024)), init_ms)
        report = (f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\tBilled Duration: {result.billed_ms} ms\t"
                  f"Memory Size: {spec.memory_mb} MB\tMax Memory Used: {result.max_memory_mb} MB\t")
        if init_ms is not None:
            report += f"Init Duration: {init_ms:.2f} ms\t"
        if status == "timeout":
            report += "Status: timeout"
        elif error_type:
            report += f"Status: error\tError Type: {error_type}"
        worker.log([f"END RequestId: {request_id}", report.rstrip("\t")])
        result.log = worker.take_tail()
        return result

    def _init_failure(self, spec: FunctionSpec, request_id: str, exc: InitFailed) -> Invocation:
        """The handler could not be loaded: Lambda reports the init error for the invocation."""
        error = dict(exc.error)
        stream = stream_name(spec.version)
        text = f"[ERROR] {error.get('errorType')}: {error.get('errorMessage')}"
        lines = [text, f"INIT_REPORT Init Duration: {exc.init_ms:.2f} ms\tPhase: init\tStatus: error\t"
                 f"Error Type: {error.get('errorType')}",
                 f"START RequestId: {request_id} Version: {spec.version}", f"END RequestId: {request_id}",
                 f"REPORT RequestId: {request_id}\tDuration: {exc.init_ms:.2f} ms\tBilled Duration: "
                 f"{max(1, math.ceil(exc.init_ms))} ms\tMemory Size: {spec.memory_mb} MB\tMax Memory Used: 0 MB\t"
                 f"Status: error\tError Type: {error.get('errorType')}"]
        self._sink_for(spec).write(spec.region, spec.log_group, stream, lines)
        return Invocation(request_id, _json(error), error, "error", exc.init_ms, max(1, math.ceil(exc.init_ms)),
                          spec.memory_mb, 0, exc.init_ms, lines)


def _map_mount(value: str, spec: FunctionSpec) -> str:
    """A path under a function's LocalMountPath, moved to the local directory standing for it."""
    for mount in spec.efs:
        base = mount.local_mount_path.rstrip("/")
        if value == base or value.startswith(base + "/"):
            return mount.directory + value[len(base):]
    return value


def _iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _json(doc: dict[str, Any]) -> bytes:
    import json

    return json.dumps(doc).encode()
