"""The embedded local cloud: moto, a Lambda runtime and an execute-api gateway in one process.

This module is what the rest of efsctl calls; it imports only the standard library at module
level (moto loads inside the daemon process, never in the CLI). What each does to the stack's
data (``<state>/local/<stack>/``: persisted AWS state, S3 bodies, EFS files, code):

- :func:`ensure_local_cloud` starts (or reuses) the stack's process over its persisted state and
  returns its record, which ``up`` stores as ``state.local``; it never deletes anything;
- :func:`stop_local_cloud` stops it and deletes the stack's local data: the only deletion
  (``down`` calls it);
- :func:`local_cloud_health`, :func:`local_cloud_record`, :func:`local_status_section` and
  :func:`local_stack_present` only look: they start, stop and change nothing.
- :func:`halt_local_cloud` stops its process only, keeping its data (a restart);
- :func:`local_iam_report` is the least-privilege report: what each function's role used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from efsctl.console import Console
    from efsctl.local.options import CloudOptions
    from efsctl.state import StateStore
    from efsctl.waits import Clock

__all__ = ["ensure_local_cloud", "stop_local_cloud", "halt_local_cloud", "local_cloud_health",
           "local_cloud_record", "local_status_section", "local_stack_present", "local_iam_report"]


def ensure_local_cloud(store: "StateStore", stack: str, console: "Console", *, realism: str | None = None,
                       time_scale: float | None = None, throttle_rate: float | None = None,
                       options: "CloudOptions | None" = None, clock: "Clock | None" = None) -> dict[str, Any]:
    """Start or reuse the stack's local cloud; wait (bounded, visibly) until it is healthy.

    Returns the record kept in ``<state>/local/<stack>/cloud.json``: ``endpoint_url`` (every AWS
    API), ``gateway_url`` (the HTTP API), ``pid``, ``log_file``, ``version``, ``data_dir`` and the
    ports. ``realism`` (``instant`` or ``aws``), ``time_scale`` and ``throttle_rate`` (a fraction of
    API calls refused as throttled) are chosen when the process starts; those not given keep the
    running process's (else ``instant``, 1.0 and 0). ``options`` sets more than the profile
    (retry delays, concurrency; tests use it).

    What it does to data: nothing is ever deleted. A healthy process of this version and profile
    is reused. Another efsctl version or another profile restarts the process over the same
    persisted state (a running cloud whose state this version cannot load keeps running, with a
    warning). A process that is gone is started again over its persisted state. A live process
    that is slow to answer is waited for (30 s, with progress), never replaced; if it still does
    not answer, :class:`LocalCloudError` says so. A snapshot saved by another moto or Python is
    refused, untouched, with a :class:`LocalCloudError` naming the two ways out (reinstall that
    moto, or ``efsctl down``).
    """
    from efsctl.local import lifecycle
    from efsctl.local.options import CloudOptions

    if options is None:
        running = (lifecycle.read_record(store.local_dir(stack)) or {}).get("options") or {}
        realism = realism if realism is not None else str(running.get("realism") or "instant")
        time_scale = time_scale if time_scale is not None else float(running.get("time_scale") or 1.0)
        if throttle_rate is None:
            throttle_rate = float((running.get("extra") or {}).get("throttle_rate") or 0.0)
        try:
            extra = {"throttle_rate": repr(float(throttle_rate))} if throttle_rate else {}
            options = CloudOptions(realism=realism, time_scale=time_scale, extra=extra)
        except ValueError as exc:
            from efsctl.errors import ConfigError

            raise ConfigError(f"Invalid local cloud option: {exc}.") from None
    return lifecycle.ensure(store, stack, console, options, clock=clock)


def stop_local_cloud(store: "StateStore", stack: str, console: "Console", *, clock: "Clock | None" = None) -> None:
    """Stop the stack's local cloud and delete its local data; idempotent.

    SIGTERM (the process writes what it has pending), a bounded wait, then SIGKILL to its process
    group; then ``<state>/local/<stack>/`` is removed whole: the persisted AWS state, S3 bodies,
    EFS files, deployed code and the log. This is the only function that deletes a stack's local
    data. With nothing there it does nothing and says nothing.
    """
    from efsctl.local import lifecycle

    lifecycle.stop(store, stack, console, clock=clock)


def halt_local_cloud(store: "StateStore", stack: str, console: "Console", *, clock: "Clock | None" = None) -> list[int]:
    """Stop the stack's local cloud process (SIGTERM, bounded wait, SIGKILL) and keep its data
    directory; returns the pids stopped. The next :func:`ensure_local_cloud` starts it again
    (``efsctl validate`` restarts a durable cloud this way)."""
    from efsctl.local import lifecycle

    return lifecycle.halt(store, stack, console, clock=clock)


def local_cloud_health(store: "StateStore", stack: str) -> dict[str, Any] | None:
    """None if the stack has no local cloud record; else the record plus what is true now
    (``healthy``, ``pid_alive``, ``endpoint_ok``, ``gateway_ok``, ``problem``). One probe (2 s);
    it changes nothing."""
    from efsctl.local import lifecycle

    data_dir = store.local_dir(stack)
    record = lifecycle.read_record(data_dir)
    if record is None:
        return None
    return {**lifecycle.public(record), **lifecycle.probe(data_dir, record)}


def local_cloud_record(store: "StateStore", stack: str) -> dict[str, Any] | None:
    """The local cloud's record (endpoints, pid, profile, version) without probing it; None if
    the stack has none."""
    from efsctl.local import lifecycle

    record = lifecycle.read_record(store.local_dir(stack))
    return None if record is None else lifecycle.public(record)


def local_stack_present(store: "StateStore", stack: str) -> bool:
    """True if the stack has local data (its directory identifies a local stack even when the
    stack's state file is gone); changes nothing."""
    return store.local_dir(stack).is_dir()


def local_status_section(store: "StateStore", stack: str, health: Any = ...) -> dict[str, Any]:
    """What ``status`` shows about the local cloud (text and ``--json``), including what its data
    directory holds (``data``: bytes by part, and the versions that saved its state). Changes
    nothing. ``health``: :func:`local_cloud_health`'s answer, if the caller has just probed."""
    data = _data_usage(store.local_dir(stack))
    if health is ...:
        health = local_cloud_health(store, stack)
    if health is None:
        return {"health": "not started", "endpoint_url": None, "gateway_url": None, "pid": None,
                "log_file": str(store.local_dir(stack) / "cloud.log"), "problem": "no local cloud is recorded",
                "data": data}
    alive = health["pid_alive"]
    return {"health": "healthy" if health["healthy"] else ("stopped" if not alive else "unresponsive"),
            "endpoint_url": health.get("endpoint_url"), "gateway_url": health.get("gateway_url"),
            "pid": health.get("pid"), "log_file": health.get("log_file"), "version": health.get("version"),
            "realism": health.get("realism"), "time_scale": health.get("time_scale"),
            "problem": health.get("problem"), "data": data}


def local_iam_report(store: "StateStore", stack: str, healthy: bool | None = None) -> dict[str, Any] | None:
    """What each function's role was asked to allow in the local cloud's lifetime, or None if the
    stack has no local cloud.

    Per function (``functions[name]``): ``used`` (action, the granting resource pattern, count, by
    the ``handler`` or by ``lambda`` itself, and why), ``denied`` (with AWS's message),
    ``unused`` (granted but never used; ``explained`` when Lambda itself needs it, saying when)
    and ``unexplained``. ``live`` is False when the cloud is not running: the report then comes
    from its usage log (``iam-usage.json`` in its data directory) and the grants are unknown.
    ``healthy``: whether the cloud answers, if the caller has just probed it.
    """
    import json

    from efsctl.local import lifecycle
    from efsctl.local.fidelity.iam_usage import USAGE_FILE, build_report

    data_dir = store.local_dir(stack)
    record = lifecycle.read_record(data_dir)
    if record is None:
        return None
    if healthy is None:
        healthy = lifecycle.probe(data_dir, record)["healthy"]
    if healthy:
        live = lifecycle.http_json(int(record["endpoint_port"]), "/_efsctl/iam", timeout=10.0)
        if live is not None:
            return {"live": True, **live}
    try:
        log = json.loads((data_dir / USAGE_FILE).read_text())
    except (OSError, ValueError):
        log = {"since": None, "functions": {}}
    return {"live": False, **build_report(log, None)}


def _data_usage(data_dir: "Path") -> dict[str, Any]:
    import os

    from efsctl.local.persist import manifest

    parts: dict[str, int] = {}
    if data_dir.is_dir():
        for part in ("state", "s3", "efs", "functions"):
            total = 0
            for root, _, files in os.walk(data_dir / part):
                for name in files:
                    try:
                        total += os.lstat(os.path.join(root, name)).st_size
                    except OSError:
                        pass
            parts[part] = total
    try:
        saved = (manifest.read_manifest(manifest.state_dir(data_dir)) or {}).get("written_by")
    except ValueError:
        saved = None
    return {"dir": str(data_dir), "bytes": parts, "total_bytes": sum(parts.values()), "saved_by": saved}
