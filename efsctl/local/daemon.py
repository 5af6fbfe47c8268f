"""The local cloud process: ``python -m efsctl.local.daemon --stack S --data-dir D --ready-file F``.

One per stack, started detached by :func:`efsctl.local.ensure_local_cloud`. Inside: moto's server
(every AWS API on one loopback port, IAM managed policies loaded), the fidelity patches, the
Lambda runtime with its asynchronous queue, and the execute-api gateway on a second port. It
first restores the stack's persisted state (``efsctl.local.persist``: moto's backends, S3 bodies,
log events, queued events, the fidelity layer's timeline) and refuses to start on a snapshot it
cannot load (exit 3, the snapshot untouched) or on a data directory another process holds (4).
Once both ports are bound it writes the ready file (pid, ports, version, token) and keeps serving
until SIGTERM. Backends are warmed in the background after that, while the caller gets going.

Control paths on the AWS port (S3 bucket names cannot start with ``_``, so nothing collides):
``GET /_efsctl/health``, ``GET /_efsctl/stats`` (warm environments, async outcomes) and
``GET /_efsctl/drain?timeout=S`` (wait for the asynchronous queue to empty; tests and benches),
``GET /_efsctl/inventory`` (what the cloud still holds, by kind), ``GET /_efsctl/iam`` (the
least-privilege report: what each function's role used, was denied, and grants unused).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION
from efsctl.local.clock import CloudClock
from efsctl.local.options import CloudOptions
from efsctl.local.startup import configure_moto, fast_moto_import
from efsctl.local.version import EXIT_DAMAGED, EXIT_INCOMPATIBLE, EXIT_LOCKED, cloud_version

log = logging.getLogger("efsctl.local")

WARM_APPS = ("sts", "iam", "ec2", "efs", "s3", "awslambda", "logs", "apigateway", "resourcegroupstaggingapi")
REAP_EVERY = 30.0
CHECK_DATA_EVERY = 2.0


class CannotStart(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def _clear_scratch(data_dir: Path) -> None:
    """Lambda's /tmp does not outlive its environment: remove what environments of a previous
    run left in ``functions/*/tmp`` (the extracted code next to it is kept)."""
    import shutil

    for scratch in (data_dir / "functions").glob("*/tmp"):
        shutil.rmtree(scratch, ignore_errors=True)


class LocalCloud:
    def __init__(self, *, stack: str, data_dir: Path, options: CloudOptions, token: str) -> None:
        self.stack = stack
        self.data_dir = data_dir
        self.options = options
        self.token = token
        self.version = cloud_version()
        self.clock = CloudClock(time_scale=options.time_scale)   # replaced by one on the persisted clock
        self.persist: Any = None
        self.started_at = time.time()
        self.stopping = threading.Event()
        self.region = LOCAL_REGION
        self.account_id = ""
        self.endpoint_port = 0
        self.gateway_port = 0
        self._servers: list[Any] = []

    # --- start ---------------------------------------------------------------------------------

    def start(self, endpoint_port: int = 0, gateway_port: int = 0) -> None:
        """Restore the persisted state, then bind both ports; raises :class:`CannotStart`."""
        configure_moto()
        fast_moto_import()
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        from efsctl.local import fidelity, moto_models
        from efsctl.local.deferral import Deferral
        from efsctl.local.fidelity import s3_bodies
        from efsctl.local.fidelity.lambda_invoke import locator
        from efsctl.local.gateway.server import Gateway, serve
        from efsctl.local.persist import wsgi as persist_wsgi
        from efsctl.local.runtime import LambdaRuntime, RuntimeConfig
        from efsctl.local.runtime.asyncq import AsyncInvoker
        from efsctl.local.runtime.logs import LogSink

        self.persist = self._open_state()
        self.clock = CloudClock(time_scale=self.options.time_scale, now=self.persist.monotonic)
        self.account_id = DEFAULT_ACCOUNT_ID
        self.dispatcher = DomainDispatcherApplication(create_backend_app)
        self._create_app = create_backend_app
        self.deferral = Deferral()
        app = self._control(s3_bodies.wrap_wsgi(persist_wsgi.wrap_wsgi(self.deferral.wrap_wsgi(self.dispatcher),
                                                                       self.persist)))
        moto_server = _bind(lambda port: make_server("127.0.0.1", port, app, threaded=True,
                                                     request_handler=MotoRequestHandler), endpoint_port, "AWS")
        self.endpoint_port = moto_server.server_address[1]
        self.endpoint_url = f"http://127.0.0.1:{self.endpoint_port}"

        self.runtime = LambdaRuntime(
            RuntimeConfig(self.data_dir, self.endpoint_url, self.region, dict(LOCAL_CREDENTIALS),
                          concurrency=self.options.concurrency, idle_seconds=self.options.idle_seconds),
            LogSink(self.account_id, gate=self.persist.gate.shared))
        self.invoker = AsyncInvoker(self.runtime, delays=self.options.retry_delays, clock=self.clock, log=log,
                                    persist=self.persist)
        self.persist.jobs = self.invoker.jobs
        ctx = fidelity.PatchContext(account_id=self.account_id, region=self.region, profile=self.options.realism,
                                    clock=self.clock, runtime=self.runtime, invoker=self.invoker,
                                    deferral=self.deferral, data_dir=self.data_dir, extra=dict(self.options.extra),
                                    persist=self.persist)
        self.patcher = fidelity.install(ctx)
        self.fidelity_ctx = ctx
        restored = self._restore()
        gateway = Gateway(stack=self.stack, account_id=self.account_id, runtime=self.runtime,
                          spec_of=lambda fn: moto_models.function_spec(fn, self.data_dir),
                          credentials=dict(LOCAL_CREDENTIALS))
        gateway_server, _ = _bind(lambda port: serve(gateway, "127.0.0.1", port), gateway_port, "gateway")
        self.gateway_port = gateway_server.server_address[1]
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        self._gateway_server = gateway_server

        thread = threading.Thread(target=moto_server.serve_forever, kwargs={"poll_interval": 0.1},
                                  name="moto-server", daemon=True)
        thread.start()
        self._servers = [moto_server, gateway_server]
        # Events acknowledged before the last stop run again now that the endpoints answer.
        requeued = self.invoker.restore(list(restored.jobs.values()), lambda arn: locator(ctx, arn))
        if requeued:
            log.info("%d queued asynchronous events from before the restart queued again", requeued)
        log.info("local cloud for stack %s: AWS %s, API %s (pid %d, %s, realism %s x%s)", self.stack,
                 self.endpoint_url, self.gateway_url, os.getpid(), self.version, self.options.realism,
                 self.options.time_scale)

    def _open_state(self) -> Any:
        from efsctl.local.persist.store import Persister, StateLocked

        persist = Persister(self.data_dir)
        try:
            persist.lock()
        except StateLocked as exc:
            raise CannotStart(EXIT_LOCKED, f"{exc}; it is already running") from None
        incompatible = persist.incompatible()
        if incompatible is not None:
            raise CannotStart(EXIT_INCOMPATIBLE, f"the saved state {incompatible.what()}; it is kept untouched in "
                                                 f"{incompatible.state_dir}")
        return persist

    def _restore(self) -> Any:
        started = time.perf_counter()
        try:
            restored = self.persist.restore()
        except Exception as exc:  # noqa: BLE001 - nothing was written: the state stays as it was
            log.exception("restoring the saved state failed")
            raise CannotStart(EXIT_DAMAGED, f"the saved state in {self.persist.dir} could not be loaded "
                                            f"({type(exc).__name__}: {exc}); it is left as it is") from None
        self.persist.start()
        _clear_scratch(self.data_dir)
        if restored.clock is not None:
            log.info("state restored in %.2f s (%d journal records%s); %d queued events", time.perf_counter() - started,
                     restored.records, ", a torn last record dropped" if restored.torn else "", len(restored.jobs))
        return restored

    def warm(self) -> None:
        """Create the backends and apps the stack uses, so the first calls do not pay for it."""
        started = time.perf_counter()
        try:
            for name in WARM_APPS:
                with self.dispatcher.lock:
                    if name not in self.dispatcher.app_instances:
                        self.dispatcher.app_instances[name] = self._create_app(name)
            from moto.backends import get_backend

            for service, region in (("iam", "global"), ("ec2", self.region), ("efs", self.region), ("s3", "aws"),
                                    ("lambda", self.region), ("logs", self.region), ("apigatewayv2", self.region)):
                with self.persist.gate.shared():
                    get_backend(service)[self.account_id][region]
            if self.runtime.sessions is not None:
                self.runtime.sessions.prepare()   # the STS client the first cold start would make
        except Exception:  # noqa: BLE001 - warming is an optimisation only
            log.exception("warming the backends failed")
        log.info("backends warm in %.2f s", time.perf_counter() - started)

    # --- control -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid(), "token": self.token, "version": self.version, "stack": self.stack,
                "endpoint_port": self.endpoint_port, "gateway_port": self.gateway_port,
                "realism": self.options.realism, "time_scale": self.options.time_scale,
                "gateway_alive": not self.stopping.is_set(), "started_at": self.started_at,
                "uptime": time.time() - self.started_at, "data_dir": str(self.data_dir),
                "account": self.account_id}

    def stats(self, query: dict[str, list[str]] | None = None) -> dict[str, Any]:
        extra = self.fidelity_ctx.extra
        fidelity = {"realism": self.options.realism, "time_scale": self.options.time_scale,
                    "pending_transitions": extra["_timeline"].pending if "_timeline" in extra else 0,
                    "throttled": extra["_throttle"].refused if "_throttle" in extra else 0}
        return {"functions": self.runtime.stats(), "async_outcomes": self.invoker.outcomes[-100:],
                "async_pending": self.invoker.pending, "fidelity": fidelity, "persistence": self.persist.stats()}

    def drain(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """Wait (bounded by ``?timeout=``) until every queued asynchronous event has finished."""
        timeout = min(60.0, float((query.get("timeout") or ["10"])[0]))
        deadline = time.monotonic() + timeout
        # First what requests have deferred (S3 events still being handed over), then the queue.
        drained = self.deferral.wait_idle(timeout) and self.invoker.drain(max(0.0, deadline - time.monotonic()))
        return {"drained": drained, **self.stats()}

    def inventory(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """What the cloud still holds, by kind (a check that ``down`` left nothing)."""
        from efsctl.local import moto_models

        return moto_models.inventory(self.account_id, self.region)

    def iam(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """What each function's role was asked to allow, against what it grants (``iam_enforcement``)."""
        from efsctl.local.fidelity import iam_enforcement

        if "flush" in query and "_iam_usage" in self.fidelity_ctx.extra:
            self.fidelity_ctx.extra["_iam_usage"].flush()   # tests and benches: the file is current
        return iam_enforcement.report(self.fidelity_ctx)

    def _control(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        routes = {"/_efsctl/health": lambda q: self.health(), "/_efsctl/stats": self.stats,
                  "/_efsctl/drain": self.drain, "/_efsctl/inventory": self.inventory,
                  "/_efsctl/iam": self.iam}

        def control_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            handler = routes.get(environ.get("PATH_INFO", ""))
            if handler is None:
                return app(environ, start_response)
            from urllib.parse import parse_qs

            body = json.dumps(handler(parse_qs(environ.get("QUERY_STRING", ""))), default=str).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

        return control_app

    # --- run and stop --------------------------------------------------------------------------

    def serve_until_stopped(self, ready_file: Path) -> None:
        # Short waits: a signal delivered to another thread does not interrupt the main thread's
        # wait, and Python runs the handler only when the main thread next runs bytecode.
        next_reap = time.monotonic() + REAP_EVERY
        next_check = time.monotonic() + CHECK_DATA_EVERY
        while not self.stopping.wait(0.1):
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + CHECK_DATA_EVERY
                if not ready_file.exists():
                    # Nobody can find or stop a cloud whose record is gone (its state directory was
                    # removed, say a test's temporary home): it ends itself rather than linger.
                    log.warning("the data directory %s is gone; stopping", self.data_dir)
                    return
            if time.monotonic() >= next_reap:
                next_reap = time.monotonic() + REAP_EVERY
                try:
                    self.runtime.reap_idle()
                except Exception:  # noqa: BLE001
                    log.exception("reaping idle environments failed")

    def stop(self) -> None:
        self.stopping.set()
        started = time.perf_counter()
        log.info("stopping the local cloud for stack %s", self.stack)
        for server in self._servers:
            try:
                server.shutdown()
                server.server_close()
            except Exception:  # noqa: BLE001
                pass
        self.invoker.shutdown()
        self.runtime.shutdown()
        self.fidelity_ctx.stop()   # the usage log is written out
        self.persist.close()
        log.info("local cloud for stack %s stopped in %.2f s", self.stack, time.perf_counter() - started)


def _bind(make: Callable[[int], Any], preferred: int, what: str) -> Any:
    """Bind ``preferred`` if free, else any free port (the caller reports the change)."""
    if preferred and _free(preferred):
        try:
            return make(preferred)
        except (OSError, SystemExit):   # werkzeug exits instead of raising when the port is taken
            pass
    if preferred:
        log.warning("%s port %d is taken by another process; using a free one", what, preferred)
    return make(0)


def _free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def write_ready(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m efsctl.local.daemon")
    p.add_argument("--stack", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--endpoint-port", type=int, default=0)
    p.add_argument("--gateway-port", type=int, default=0)
    p.add_argument("--realism", default="instant")
    p.add_argument("--time-scale", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--idle-seconds", type=float, default=300.0)
    p.add_argument("--async-retry-delays", default=None)
    p.add_argument("--option", action="append", default=[])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    delays = tuple(float(d) for d in args.async_retry_delays.split(",")) if args.async_retry_delays else None
    options = CloudOptions(realism=args.realism, time_scale=args.time_scale, async_retry_delays=delays,
                           concurrency=args.concurrency, idle_seconds=args.idle_seconds,
                           extra=dict(o.split("=", 1) for o in args.option))
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    cloud = LocalCloud(stack=args.stack, data_dir=data_dir, options=options, token=args.token)
    signal.signal(signal.SIGTERM, lambda *_: cloud.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: cloud.stopping.set())
    try:
        cloud.start(args.endpoint_port, args.gateway_port)
    except CannotStart as exc:
        log.error("the local cloud cannot start: %s", exc)
        return exc.code
    except Exception as exc:  # noqa: BLE001 - the parent reads the reason from the log
        log.exception("the local cloud failed to start: %s", exc)
        return 1
    write_ready(Path(args.ready_file), cloud.health())
    # Warm the backends on this core while the caller gets going on the other.
    threading.Thread(target=cloud.warm, name="warm", daemon=True).start()
    cloud.serve_until_stopped(Path(args.ready_file))
    cloud.stop()
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    os._exit(code)
