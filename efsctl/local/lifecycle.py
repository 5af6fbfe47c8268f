"""Start, find, check and stop a stack's local cloud process. Standard library only (no moto here).

Files in ``<state>/local/<stack>/``: ``cloud.json`` (the record: pid, ports, version, token,
log file), ``cloud.log`` (the process's log), ``ready.json`` (the process's handshake), and the
data the process keeps: ``state/`` (the persisted AWS state), ``s3/`` (object bodies), ``efs/``
(the file systems), ``functions/`` (deployed code). A process is *ours* when its command line
names this data directory; it is *healthy* when its AWS port answers ``/_efsctl/health`` with the
recorded token and its gateway port accepts connections.

Nothing here deletes data except :func:`stop` (``efsctl down``). A process that is gone is
started again over the persisted state; one that is alive but slow to answer is waited for (up
to :data:`HEALTH_PATIENCE`), never replaced; another efsctl version or another realism profile
restarts the process over the same state. A snapshot this efsctl cannot load (another moto or
Python) stops the command with the choices, and is left untouched.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from efsctl.errors import EfsctlError
from efsctl.local.options import CloudOptions
from efsctl.local.persist import manifest
from efsctl.local.version import EXIT_DAMAGED, EXIT_INCOMPATIBLE, EXIT_LOCKED, cloud_version
from efsctl.waits import Clock, Outcome, Poll, wait_until

RECORD = "cloud.json"
READY = "ready.json"
LOG = "cloud.log"
START_TIMEOUT = 60.0       # a large saved state takes a while to load
STOP_TIMEOUT = 20.0        # SIGTERM lets the process write what it has pending first
HEALTH_PATIENCE = 30.0     # how long a live process that does not answer is waited for
STATUS_TIMEOUT = 2.0       # one health probe for `status`
START_POLL = Poll(floor=0.02, ceiling=0.25, fraction=0.1)
HEALTH_POLL = Poll(floor=0.2, ceiling=2.0, fraction=0.2)

_children: dict[int, subprocess.Popen] = {}


class LocalCloudError(EfsctlError):
    """The local cloud could not be started, reached or stopped."""


# --- record and probes ---------------------------------------------------------------------------

def read_record(data_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data_dir / RECORD).read_text())
    except (FileNotFoundError, ValueError):
        return None


def write_record(data_dir: Path, record: dict[str, Any]) -> None:
    path = data_dir / RECORD
    tmp = path.with_name(f".{RECORD}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def pid_alive(pid: int) -> bool:
    """True for a running process (a zombie, dead but not yet reaped, counts as gone)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def cmdline(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return None


def is_ours(pid: int, data_dir: Path) -> bool:
    """The process at ``pid`` is a local cloud daemon serving ``data_dir`` (pids get reused)."""
    if not pid_alive(pid):
        return False
    args = cmdline(pid)
    if args is None:   # no /proc: rely on the health token instead
        return True
    return "efsctl.local.daemon" in args and str(data_dir) in args


def daemons_for(data_dir: Path) -> list[int]:
    """Every live daemon serving ``data_dir`` (normally none or one)."""
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            args = cmdline(int(entry.name))
            if args and "efsctl.local.daemon" in args and str(data_dir) in args and pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def http_json(port: int, path: str, timeout: float = 1.0) -> dict[str, Any] | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        if response.status != 200:
            return None
        return json.loads(response.read())
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def probe(data_dir: Path, record: dict[str, Any], timeout: float = STATUS_TIMEOUT) -> dict[str, Any]:
    """What is true of a recorded local cloud right now (its health call given ``timeout`` s)."""
    pid = int(record.get("pid") or 0)
    alive = pid_alive(pid)
    ours = alive and is_ours(pid, data_dir)
    port = int(record.get("endpoint_port") or 0)
    health = http_json(port, "/_efsctl/health", timeout=timeout) if port else None
    endpoint_ok = bool(health) and health.get("token") == record.get("token") and health.get("pid") == pid
    gateway_ok = endpoint_ok and port_open(int(record.get("gateway_port") or 0))
    problem = None
    if not alive:
        problem = f"its process (pid {pid}) is gone"
    elif not ours:
        problem = f"pid {pid} now belongs to another program"
    elif health and not endpoint_ok:
        problem = f"port {record.get('endpoint_port')} answers for another process"
    elif not endpoint_ok:
        problem = f"it does not answer on port {record.get('endpoint_port')} within {timeout:g} s"
    elif not gateway_ok:
        problem = f"its API gateway does not answer on port {record.get('gateway_port')}"
    if not alive and health is not None:
        problem += f", and port {record.get('endpoint_port')} now answers for another process"
    elif not alive and record.get("endpoint_port") and port_open(int(record["endpoint_port"])):
        problem += f", and another program now holds port {record['endpoint_port']}"
    return {"healthy": problem is None, "pid": pid, "pid_alive": alive, "ours": ours,
            "endpoint_ok": endpoint_ok, "gateway_ok": gateway_ok, "problem": problem,
            "running_version": (health or {}).get("version") if endpoint_ok else None}


# --- start ---------------------------------------------------------------------------------------

def ensure(store: Any, stack: str, console: Any, options: CloudOptions, *, clock: Clock | None = None,
           start_timeout: float = START_TIMEOUT) -> dict[str, Any]:
    data_dir = store.local_dir(stack)
    version = cloud_version()
    clock = clock or Clock()
    record = read_record(data_dir)
    if record is None:
        _stop_processes(data_dir, None, console, clock)
        return _start(store, stack, console, options, version, record, clock, start_timeout)
    state = settle(data_dir, record, console, clock)
    if state["healthy"]:
        same = (record.get("version") == version and state.get("running_version") in (None, version)
                and _identity(record) == options.identity())
        if same:
            console.line("ok", "local cloud", f"running (pid {record['pid']}) at {record['endpoint_url']}")
            return public(record)
        why = _mismatch(record, version, options)
        blocker = _cannot_move(data_dir)
        if blocker is not None:
            console.warn(f"The local cloud of stack {stack!r} {why}, but {blocker}; it keeps running as it is.")
            return public(record)
        console.line("run", "local cloud", f"restarting: it {why}; its state is kept")
    elif state["pid_alive"] and state["ours"]:
        raise LocalCloudError(
            f"The local cloud of stack {stack!r} (pid {state['pid']}) is running but has not answered for "
            f"{HEALTH_PATIENCE:.0f} s.",
            f"It may be busy: see {data_dir / LOG}, and run the command again (`efsctl down` stops it and "
            "deletes its data).")
    elif record.get("halted"):   # stopped on purpose (a restart): nothing to warn about
        console.progress("local cloud", 0.0, "starting again over its saved state")
    else:
        console.warn(f"The local cloud of stack {stack!r} had stopped: {state['problem']}; it starts again over "
                     "its saved state.")
    _stop_processes(data_dir, record, console, clock)
    return _start(store, stack, console, options, version, record, clock, start_timeout)


def settle(data_dir: Path, record: dict[str, Any], console: Any, clock: Clock) -> dict[str, Any]:
    """Probe a recorded cloud; if its process is alive but slow to answer (a busy cloud, a loaded
    machine), ask again with longer timeouts for up to :data:`HEALTH_PATIENCE` seconds."""
    state = probe(data_dir, record, timeout=0.5)
    if state["healthy"] or not (state["pid_alive"] and state["ours"]):
        return state
    attempts = [state]

    def answered() -> Outcome[dict[str, Any]]:
        latest = probe(data_dir, record, timeout=min(5.0, 0.5 * 2 ** len(attempts)))
        attempts.append(latest)
        if latest["healthy"] or not (latest["pid_alive"] and latest["ours"]):
            return Outcome(True, latest)
        return Outcome(False, detail=f"pid {latest['pid']} is alive; {latest['problem']}")

    try:
        found = wait_until(answered, what="the local cloud to answer", timeout=HEALTH_PATIENCE, clock=clock,
                           poll=HEALTH_POLL,
                           progress=lambda what, elapsed, detail: console.progress("local cloud", elapsed, detail))
    except EfsctlError:
        return attempts[-1]
    assert found is not None
    return found


def _identity(record: dict[str, Any]) -> dict[str, object]:
    if isinstance(record.get("options"), dict):
        try:
            return CloudOptions.from_dict(record["options"]).identity()
        except (TypeError, ValueError):
            pass
    return CloudOptions(realism=str(record.get("realism", "instant")),
                        time_scale=float(record.get("time_scale", 1.0))).identity()


def _mismatch(record: dict[str, Any], version: str, options: CloudOptions) -> str:
    running = _identity(record)
    if record.get("version") != version:
        return f"was started by {record.get('version')}, not {version}"
    if running["throttle_rate"] != options.throttle_rate:
        return f"throttles {running['throttle_rate']:g} of calls, not {options.throttle_rate:g}"
    return (f"runs the {record.get('realism')!r} profile at x{record.get('time_scale')}, not "
            f"{options.realism!r} at x{options.time_scale}")


def _cannot_move(data_dir: Path) -> str | None:
    """Why a running cloud must not be restarted by this efsctl (its state would not come back)."""
    incompatible = manifest.check(data_dir)
    if incompatible is not None:
        return f"its saved state {incompatible.what()}"
    if manifest.read_manifest(manifest.state_dir(data_dir)) is None:
        return ("that version keeps its AWS state in memory only, so a restart would lose it (`efsctl down` then "
                "`efsctl up --local` moves the stack to a cloud that keeps it)")
    return None


def incompatible_error(stack: str, found: manifest.Incompatible) -> LocalCloudError:
    return LocalCloudError(
        f"The local cloud of stack {stack!r} cannot start: its saved state {found.what()}; the state is kept "
        f"untouched in {found.state_dir}.",
        f"Either {found.remedy()} and run the command again, or run `efsctl down` to delete the local stack's data "
        "and start afresh.")


def _start(store: Any, stack: str, console: Any, options: CloudOptions, version: str,
           previous: dict[str, Any] | None, clock: Clock | None, timeout: float) -> dict[str, Any]:
    data_dir = store.local_dir(stack)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    found = manifest.check(data_dir)
    if found is not None:
        raise incompatible_error(stack, found)
    token = secrets.token_hex(12)
    ready, log_file = data_dir / READY, data_dir / LOG
    ready.unlink(missing_ok=True)
    wanted = {"endpoint": int((previous or {}).get("endpoint_port") or 0),
              "gateway": int((previous or {}).get("gateway_port") or 0)}
    command = [sys.executable, "-m", "efsctl.local.daemon", "--stack", stack, "--data-dir", str(data_dir),
               "--ready-file", str(ready), "--token", token, "--endpoint-port", str(wanted["endpoint"]),
               "--gateway-port", str(wanted["gateway"]), *options.to_args()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    clock = clock or Clock()
    started = clock.now()
    console.progress("local cloud", 0.0, f"starting for stack {stack}")
    with open(log_file, "ab") as log_fh:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
                                cwd=str(data_dir), env=env, start_new_session=True, close_fds=True)
    _children[proc.pid] = proc
    _prefetch_aws_layer()

    def check() -> Outcome[dict[str, Any]]:
        code = proc.poll()
        if code == EXIT_INCOMPATIBLE and (found := manifest.check(data_dir)) is not None:
            raise incompatible_error(stack, found)
        if code == EXIT_DAMAGED:
            raise LocalCloudError(f"The local cloud of stack {stack!r} cannot start: its saved state could not be "
                                  f"loaded ({_last_line(log_file)}); it is left untouched in {data_dir / 'state'}.",
                                  f"See {log_file}; `efsctl down` deletes the local stack's data to start afresh.")
        if code == EXIT_LOCKED:
            raise LocalCloudError(f"Another process is already serving the local cloud of stack {stack!r}.",
                                  f"See {log_file}; stop that process (or run `efsctl down`) and try again.")
        if code is not None:
            raise LocalCloudError(f"The local cloud failed to start (exit code {code}): {_last_line(log_file)}",
                                  f"See {log_file}; fix the cause and run `efsctl up --local` again.")
        try:
            doc = json.loads(ready.read_text())
        except (FileNotFoundError, ValueError):
            return Outcome(False, detail="starting")
        health = http_json(int(doc["endpoint_port"]), "/_efsctl/health")
        if not health or health.get("token") != token:
            return Outcome(False, detail="waiting for its AWS endpoint")
        if not port_open(int(doc["gateway_port"])):
            return Outcome(False, detail="waiting for its API gateway")
        return Outcome(True, health)

    try:
        health = wait_until(check, what="the local cloud to start", timeout=timeout, clock=clock, poll=START_POLL,
                            progress=lambda what, elapsed, detail: console.progress("local cloud", elapsed, detail),
                            hint=f"See {log_file}; run `efsctl up --local` again to retry.")
    except BaseException:
        _terminate(proc.pid, clock, console)
        raise
    assert health is not None
    for what, key in (("endpoint", "endpoint_port"), ("gateway", "gateway_port")):
        if wanted[what] and wanted[what] != health[key]:
            console.warn(f"Port {wanted[what]} is taken by another program; the local cloud's {what} moved to "
                         f"port {health[key]}.")
    record = {
        "stack": stack, "pid": proc.pid, "token": token, "version": version,
        "endpoint_port": health["endpoint_port"], "gateway_port": health["gateway_port"],
        "endpoint_url": f"http://127.0.0.1:{health['endpoint_port']}",
        "gateway_url": f"http://127.0.0.1:{health['gateway_port']}",
        "log_file": str(log_file), "data_dir": str(data_dir), "realism": options.realism,
        "time_scale": options.time_scale, "options": options.to_dict(), "started_at": time.time(),
        "account": health.get("account"),
    }
    write_record(data_dir, record)
    console.line("ok", "local cloud", f"{record['endpoint_url']} (API {record['gateway_url']}, pid {proc.pid})",
                 clock.now() - started)
    return public(record)


def public(record: dict[str, Any]) -> dict[str, Any]:
    """The record as callers keep it (``state.local``): without the process's token."""
    return {k: v for k, v in record.items() if k != "token"}


def _prefetch_aws_layer() -> None:
    """Import the AWS layer and parse botocore's models while the process starts: the caller
    talks to the cloud next, and that work (boto3, then the JSON of a client per service: about
    half a second) then runs beside the process's own start, on the other core, instead of after it."""
    import threading

    def load() -> None:
        try:
            from efsctl.aws.session import preload

            preload()
        except Exception:  # noqa: BLE001 - an optimisation only
            pass

    threading.Thread(target=load, name="prefetch-aws-layer", daemon=True).start()


def _last_line(log_file: Path) -> str:
    try:
        lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "no output"


# --- stop ----------------------------------------------------------------------------------------

def stop(store: Any, stack: str, console: Any, *, clock: Clock | None = None) -> None:
    """Stop the stack's process(es) and delete its local directory: the one deletion there is."""
    data_dir = store.local_dir(stack)
    record = read_record(data_dir)
    stopped = _stop_processes(data_dir, record, console, clock, keep_state=False)
    ports = [int(record[k]) for k in ("endpoint_port", "gateway_port") if record and record.get(k)]
    shutil.rmtree(data_dir, ignore_errors=True)
    if stopped:
        freed = f"; ports {', '.join(map(str, ports))} free" if ports else ""
        console.line("ok", "local cloud", f"stopped (pid {', '.join(map(str, stopped))}){freed}, data removed")
    elif record is not None:
        console.line("skip", "local cloud", "was not running; data removed")


def halt(store: Any, stack: str, console: Any, *, clock: Clock | None = None) -> list[int]:
    """Stop the stack's local cloud process and keep its data; its record says it was stopped on
    purpose, so the next :func:`ensure` starts it again without a warning."""
    data_dir = store.local_dir(stack)
    record = read_record(data_dir)
    stopped = _stop_processes(data_dir, record, console, clock)
    if record is not None:
        write_record(data_dir, {**record, "halted": True})
    return stopped


def _stop_processes(data_dir: Path, record: dict[str, Any] | None, console: Any, clock: Clock | None, *,
                    keep_state: bool = True) -> list[int]:
    """Stop every daemon serving ``data_dir``. ``keep_state=False`` (its data is deleted next):
    kill it at once, as a graceful stop would only save state that is about to go."""
    pids = set(daemons_for(data_dir))
    if record and record.get("pid") and is_ours(int(record["pid"]), data_dir):
        pids.add(int(record["pid"]))
    for pid in sorted(pids):
        if keep_state:
            _terminate(pid, clock, console)
        else:
            _kill(pid, clock)
    if record:
        _wait_ports_closed([int(record[k]) for k in ("endpoint_port", "gateway_port") if record.get(k)],
                           pids, clock)
    return sorted(pids)


def _kill(pid: int, clock: Clock | None) -> None:
    """SIGKILL to the process group (the daemon and its workers), then a bounded wait for it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        wait_until(lambda: Outcome(_gone_or_reaped(pid)), what=f"the local cloud (pid {pid}) to end",
                   timeout=STOP_TIMEOUT, clock=clock or Clock(), poll=START_POLL)
    except EfsctlError:
        pass


def _terminate(pid: int, clock: Clock | None, console: Any) -> None:
    """SIGTERM, a bounded wait, then SIGKILL to the process group (its workers included)."""
    clock = clock or Clock()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        wait_until(lambda: Outcome(_gone_or_reaped(pid), None, f"stopping (pid {pid})"),
                   what=f"the local cloud (pid {pid}) to stop", timeout=STOP_TIMEOUT, clock=clock, poll=START_POLL,
                   progress=(lambda what, elapsed, detail: console.progress("local cloud", elapsed, detail))
                   if console else None)
    except EfsctlError:
        pass
    try:
        os.killpg(pid, signal.SIGKILL)   # its process group: leftover workers, or itself if it hung
    except (ProcessLookupError, PermissionError):
        pass
    _gone_or_reaped(pid)


def _gone_or_reaped(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            _children.pop(pid, None)
            return True
        return False
    return not pid_alive(pid)


def _wait_ports_closed(ports: list[int], pids: set[int], clock: Clock | None) -> None:
    if not pids:
        return
    try:
        wait_until(lambda: Outcome(not any(port_open(p, 0.2) for p in ports)), what="local cloud ports to close",
                   timeout=5.0, clock=clock or Clock(), poll=START_POLL)
    except EfsctlError:
        pass
