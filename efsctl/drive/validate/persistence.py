"""Claim 5, persistence: fresh execution environments read everything back intact.

Lambda keeps a function's execution environments warm only while its configuration stays the
same: a configuration change retires them, and every later invocation starts a new one. That
is the lever here, on AWS and in the local cloud alike (whose runtime keys its warm workers by
the function's configuration): one environment variable of the consumer
(``EFSCTL_VALIDATE_RECYCLE``) is set, and put back at the end.

1. Every model is read once (warm environments serve it), then the consumer's configuration
   changes, then every model is read again with ``verify``: the consumer hashes the whole file
   in environments that never held it, and each answer must carry the uploader's SHA-256;
   ``GET /models`` must list them all.
2. Fresh, not just different: each environment writes its own log stream, so the consumer's
   START and REPORT lines tell which environment served which request id. None that served a
   request after the change may have served one before it, and each new one reports its cold
   start (``Init Duration``).
3. With a local cloud that persists its state, the cloud itself is stopped and started, and
   everything is read back again. A cloud that would lose its state in a restart is not
   restarted: the claim says so ("not measured") instead.
"""

from __future__ import annotations

import re
import time
from typing import Any

from efsctl.drive.validate.core import ClaimResult, Run, result, summarize
from efsctl.drive.validate.events import seed
from efsctl.drive.validate.shared import listing_check, read_back
from efsctl.errors import AwsError, EfsctlError
from efsctl.waits import Outcome, Poll, retry, wait_until

RECYCLE_VARIABLE = "EFSCTL_VALIDATE_RECYCLE"
UPDATE_TIMEOUT = 300.0      # a VPC function's configuration update takes seconds to a minute on AWS
LOGS_TIMEOUT = 90.0         # CloudWatch Logs shows an event seconds after it is written
LOGS_POLL = Poll(floor=0.2, ceiling=3.0, fraction=0.2)
_START = re.compile(r"^START RequestId: (\S+)")
_INIT = re.compile(r"Init Duration: ([0-9.]+) ms")


def claim(run: Run, progress=None) -> ClaimResult:
    data = seed(run, progress)
    models = {m.name: (m.sha256, m.size) for m in data.arrived} or {m.name: (m.sha256, m.size) for m in data.models}
    models.update(run.extra_models)
    consumer = run.target.functions["consumer"]
    since_ms = int(time.time() * 1000) - 60_000
    measurements: dict[str, Any] = {"models": len(models)}
    with run.api() as api:
        warm_ids = _warm_up(run, api, models, progress)
        if progress:
            progress(f"changing {consumer}'s configuration, so Lambda retires its environments")
        started = time.monotonic()
        original = _variables(run, consumer)
        try:
            _update_environment(run, consumer, {**original, RECYCLE_VARIABLE: f"{run.run_id}-recycled"}, progress)
            measurements["recycle_s"] = round(time.monotonic() - started, 3)
            back = read_back(run, models, api, progress)
            listing = listing_check(api, models)
        finally:
            restore = _restore(run, consumer, original, progress)
    post_ids = [a["request_id"] for a in back["answers"] if isinstance(a.get("request_id"), str)]
    fresh = _environments(run, warm_ids, post_ids, since_ms, progress)
    measurements.update(read_back=_figures(back, listing, len(models)), environments=fresh,
                        mechanism=f"UpdateFunctionConfiguration of {consumer}: environment variable "
                                  f"{RECYCLE_VARIABLE} set, then removed")
    if restore:
        measurements["restore_problem"] = restore
    restart = _restart(run, models, progress)
    measurements["restart"] = restart
    return _verdict(run, measurements, back, listing, fresh, restart, len(models))


def _warm_up(run: Run, api, models: dict, progress) -> list[str]:
    ids = []
    for index, name in enumerate(sorted(models), 1):
        if progress:
            progress(f"warm read {index}/{len(models)}", log=index == 1)
        try:
            body = run.predict(api, name)
        except EfsctlError:
            continue  # the read-back after the change says what is wrong
        if isinstance(body.get("request_id"), str):
            ids.append(body["request_id"])
    return ids


# --- the configuration change ------------------------------------------------------------------

def _variables(run: Run, function: str) -> dict[str, str]:
    """The function's environment as the stack has it (to put back afterwards)."""
    from efsctl.aws import lambda_

    config = lambda_.function_configuration(run.aws, function) or {}
    variables = dict((config.get("Environment") or {}).get("Variables") or {})
    variables.pop(RECYCLE_VARIABLE, None)  # left by an interrupted run: not the stack's own
    return variables


def _restore(run: Run, function: str, variables: dict[str, str], progress) -> str | None:
    """Put the environment back; what went wrong, if anything (`efsctl up` repairs it then)."""
    try:
        _update_environment(run, function, variables, progress)
    except EfsctlError as exc:
        return f"{function}'s environment could not be put back ({exc.message}); `efsctl up` restores it"
    return None


def _update_environment(run: Run, function: str, variables: dict[str, str], progress) -> None:
    from efsctl.aws import lambda_

    retry(lambda: lambda_.update_configuration(run.aws, function, {"Environment": {"Variables": variables}}),
          what=f"{function} to accept the change", retryable=lambda_.update_in_progress, timeout=UPDATE_TIMEOUT,
          clock=run.clock)

    def check() -> Outcome[None]:
        config = lambda_.function_configuration(run.aws, function) or {}
        state, update = config.get("State", "Active"), config.get("LastUpdateStatus", "Successful")
        if update == "Failed":
            raise AwsError(f"Lambda could not update {function}: {config.get('LastUpdateStatusReason')}.")
        return Outcome(state == "Active" and update == "Successful", detail=f"{state}, update {update}")

    wait_until(check, what=f"{function}'s update", timeout=UPDATE_TIMEOUT, clock=run.clock,
               progress=(lambda what, elapsed, detail: progress(f"{what}: {detail}")) if progress else None)


# --- which environments served what ------------------------------------------------------------

def _environments(run: Run, warm_ids: list[str], post_ids: list[str], since_ms: int, progress) -> dict[str, Any]:
    """Log streams (one per execution environment) of the requests before and after the change."""
    from efsctl.aws.logs_tail import LogsReader
    from efsctl.drive.logs import read_window

    reader = LogsReader(run.aws)
    group = {"consumer": run.target.log_groups["consumer"]}
    wanted = set(warm_ids) | set(post_ids)
    found: dict[str, str] = {}
    init_ms: dict[str, float] = {}

    def check() -> Outcome[None]:
        for event in read_window(reader, group, since_ms):
            started = _START.match(event.message.strip())
            if started:
                found[started.group(1)] = event.stream
            elif event.message.startswith("REPORT RequestId:"):
                rid = event.message.split()[2]
                init = _INIT.search(event.message)
                if init:
                    init_ms[rid] = float(init.group(1))
        missing = wanted - set(found)
        return Outcome(not missing, detail=f"{len(missing)} request ids not in the consumer's log yet")

    if progress:
        progress("reading the consumer's log: which environment served which request")
    try:
        wait_until(check, what="the consumer's log lines", timeout=LOGS_TIMEOUT, clock=run.clock, poll=LOGS_POLL)
        complete = True
    except EfsctlError:
        complete = False
    before = {found[r] for r in warm_ids if r in found}
    after = {found[r] for r in post_ids if r in found}
    reused = sorted(before & after)
    cold = sorted({found[r] for r in post_ids if r in found and r in init_ms})
    return {"requests_before": len(warm_ids), "requests_after": len(post_ids), "environments_before": len(before),
            "environments_after": len(after), "reused": len(reused), "cold_starts": len(cold),
            "init_ms": summarize([init_ms[r] for r in post_ids if r in init_ms], 1),
            "unaccounted_requests": len([r for r in post_ids if r not in found]), "log_complete": complete}


# --- the local cloud's restart -----------------------------------------------------------------

def _restart(run: Run, models: dict, progress) -> dict[str, Any]:
    if run.stack.restart_cloud is None:
        return {"measured": False, "note": run.stack.restart_note or "not measured"}
    if progress:
        progress("restarting the local cloud")
    started = time.monotonic()
    try:
        run.stack.aws, run.stack.target = run.stack.restart_cloud()
    except EfsctlError as exc:
        return {"measured": True, "ok": False, "error": f"the local cloud did not come back: {exc.message}"}
    seconds = round(time.monotonic() - started, 3)
    with run.api() as api:
        back = read_back(run, models, api, progress)
        listing = listing_check(api, models)
    figures = _figures(back, listing, len(models))
    ok = figures["intact"] == len(models) and figures["listed"] == len(models)
    return {"measured": True, "ok": ok, "seconds": seconds, "read_back": figures}


def _figures(back: dict, listing: dict, total: int) -> dict[str, Any]:
    return {"intact": len(back["matched"]), "wrong": len(back["wrong"]), "errors": dict(back["errors"]),
            "listed": listing["listed"], "of": total}


def _verdict(run: Run, m: dict, back: dict, listing: dict, fresh: dict, restart: dict, total: int) -> ClaimResult:
    read = m["read_back"]
    problems = []
    if read["intact"] != total:
        message = next(iter(read["errors"]), None)
        problems.append(f"{total - read['intact']} of {total} models did not read back intact in fresh environments"
                        + (f" ({message})" if message else ""))
    elif read["listed"] != total:
        problems.append(f"GET /models listed {read['listed']} of {total} models after the change")
    if fresh["reused"]:
        problems.append(f"{fresh['reused']} environments that served requests before the change served some after it")
    elif not fresh["log_complete"]:
        problems.append(f"{fresh['unaccounted_requests']} requests after the change are not in the consumer's log, "
                        "so fresh environments are not shown")
    if restart.get("measured") and not restart.get("ok"):
        problems.append(restart.get("error") or "after the local cloud's restart, "
                        f"{total - restart['read_back']['intact']} of {total} models did not read back intact")
    if m.get("restore_problem"):
        problems.append(m["restore_problem"])
    restart_text = ("restarted, all back" if restart.get("ok") else
                    "restart not measured" if not restart.get("measured") else "restart failed")
    after = fresh["environments_after"]
    summary = (f"{read['intact']}/{total} intact after a configuration change, read in {after} new "
               f"environment{'s' if after != 1 else ''} ({fresh['cold_starts']} cold-started, {fresh['reused']} "
               f"from before); {restart_text}")
    res = result(5, not problems, summary, "; ".join(problems) or None, measurements=m)
    if not restart.get("measured"):
        res.notes.append(restart["note"])
    return res

