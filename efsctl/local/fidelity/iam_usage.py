"""What each function's role was asked to allow, kept for the least-privilege report.

Every authorisation made for a function's role is recorded: the handler's own calls (signed with
the role's session credentials) and the calls Lambda makes with the role on the function's behalf
(its network interfaces, its log streams, the file system mount). An allowed request is counted
against the identity-policy grants that allowed it; a denied one keeps AWS's message.

The log lives in ``<data dir>/iam-usage.json`` (written atomically, at most once a second and
when the cloud stops), so it covers the cloud's whole lifetime, restarts included. The report
(:func:`build_report`) sets it against what each role grants today: used, denied, and granted but
never used, each with where the use comes from.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from efsctl.local.fidelity.iam_policy import Decision, Grant

USAGE_FILE = "iam-usage.json"
FORMAT = 1
MAX_EXAMPLES = 5          # distinct resources kept per allowed entry
MAX_DENIED = 50           # distinct denied resources kept per function (the rest are counted)
FLUSH_EVERY = 1.0

HANDLER, LAMBDA = "handler", "lambda"
HANDLER_WHY = "the function's code, through the AWS SDK, with the role's session credentials"

# Who uses each action Lambda itself needs, and when (AWS: AWSLambdaVPCAccessExecutionRole,
# AWSLambdaBasicExecutionRole, "Configuring file system access for Lambda functions").
LAMBDA_OWN = {
    "ec2:createnetworkinterface": "Lambda, when it creates the function's network interfaces in its subnets "
                                  "(at CreateFunction, or when the VPC configuration changes)",
    "ec2:describenetworkinterfaces": "Lambda, when it creates or releases the function's network interfaces",
    "ec2:describesubnets": "Lambda, when it places the function's network interfaces in its subnets",
    "ec2:deletenetworkinterface": "Lambda, when it deletes the function's network interfaces after the function "
                                  "leaves its VPC or is deleted (never while the function is attached)",
    "ec2:assignprivateipaddresses": "Lambda, to manage the addresses of the function's network interfaces "
                                    "(AWSLambdaVPCAccessExecutionRole grants it; not exercised by the local cloud)",
    "ec2:unassignprivateipaddresses": "Lambda, to manage the addresses of the function's network interfaces "
                                      "(AWSLambdaVPCAccessExecutionRole grants it; not exercised by the local cloud)",
    "logs:createloggroup": "Lambda, when the function's log group is missing",
    "logs:createlogstream": "Lambda, for each execution environment's log stream",
    "logs:putlogevents": "Lambda, writing the function's output and its START/END/REPORT lines",
    "elasticfilesystem:clientmount": "Lambda, mounting the file system when an execution environment starts "
                                     "(required once the file system has a resource policy)",
    "elasticfilesystem:clientwrite": "Lambda, mounting the file system read-write",
    "elasticfilesystem:clientrootaccess": "Lambda, mounting the file system as root",
}


def lambda_why(action: str) -> str | None:
    return LAMBDA_OWN.get(action.lower())


class UsageLog:
    """Thread-safe, persisted record of the authorisations made for functions' roles."""

    def __init__(self, path: Path | None, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._dirty = False
        self._closed = threading.Event()
        self._doc = self._load()
        self._thread: threading.Thread | None = None
        if path is not None:
            self._thread = threading.Thread(target=self._flusher, name="iam-usage", daemon=True)
            self._thread.start()

    def _load(self) -> dict[str, Any]:
        if self.path is not None:
            try:
                doc = json.loads(self.path.read_text())
                if doc.get("format") == FORMAT:
                    return doc
            except (OSError, ValueError):
                pass
        return {"format": FORMAT, "since": self._clock(), "functions": {}}

    @property
    def since(self) -> float:
        return float(self._doc["since"])

    def record(self, *, function: str, role_arn: str, principal_arn: str, by: str, action: str, resource: str,
               decision: Decision, message: str = "") -> None:
        now = self._clock()
        with self._lock:
            fn = self._doc["functions"].setdefault(function, {"role": role_arn, "principal": principal_arn,
                                                             "entries": {}})
            fn.update(role=role_arn, principal=principal_arn)
            entries = fn["entries"]
            if decision.allowed:
                pattern = decision.grants[0].resource if decision.grants else "(the resource's policy)"
                key = f"{by}|{action}|allowed|{pattern}"
            else:
                denied = sum(1 for e in entries.values() if e["decision"] == "denied")
                key = f"{by}|{action}|denied|{resource}"
                if key not in entries and denied >= MAX_DENIED:
                    key, resource = f"{by}|{action}|denied|*", "(other resources)"
            entry = entries.get(key)
            if entry is None:
                entry = entries[key] = {"by": by, "action": action, "count": 0, "first": now, "grants": [],
                                        "decision": "allowed" if decision.allowed else "denied",
                                        "resource": pattern if decision.allowed else resource,
                                        "examples": [], "message": ""}
            entry["count"] += 1
            entry["last"] = now
            if decision.allowed:
                entry["grants"] = sorted(set(entry["grants"]) | {g.key() for g in decision.grants})
                if resource != "*" and resource not in entry["examples"] and len(entry["examples"]) < MAX_EXAMPLES:
                    entry["examples"].append(resource)
            else:
                entry["message"] = message
            self._dirty = True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._doc)

    def flush(self) -> None:
        if self.path is None:
            return
        with self._lock:
            if not self._dirty:
                return
            data = json.dumps(self._doc, sort_keys=True)
            self._dirty = False
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(data)
            os.replace(tmp, self.path)
        except OSError:
            with self._lock:
                self._dirty = True

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _flusher(self) -> None:
        while not self._closed.wait(FLUSH_EVERY):
            self.flush()


# --- the report ----------------------------------------------------------------------------

@dataclass(frozen=True)
class FunctionGrants:
    """A function as it is now: its role and every (action, resource) its identity policies allow."""

    name: str
    role_arn: str
    grants: tuple[Grant, ...]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _why(by: str, action: str) -> str:
    return HANDLER_WHY if by == HANDLER else (lambda_why(action) or "Lambda, on the function's behalf")


def function_report(name: str, logged: dict[str, Any] | None, current: FunctionGrants | None,
                    known: bool = True) -> dict[str, Any]:
    """One function's part of the report; ``known`` False: its grants are not known (cloud down)."""
    entries = list((logged or {}).get("entries", {}).values())
    used_keys = {key for e in entries if e["decision"] == "allowed" for key in e["grants"]}
    used = [{"action": e["action"], "resource": e["resource"], "by": e["by"], "count": e["count"],
             "examples": e["examples"], "last": _iso(e.get("last")), "why": _why(e["by"], e["action"])}
            for e in sorted(entries, key=lambda e: (e["by"] != HANDLER, e["action"], e["resource"]))
            if e["decision"] == "allowed"]
    denied = [{"action": e["action"], "resource": e["resource"], "by": e["by"], "count": e["count"],
               "last": _iso(e.get("last")), "message": e["message"]}
              for e in sorted(entries, key=lambda e: (e["action"], e["resource"])) if e["decision"] == "denied"]
    unused = []
    for grant in (current.grants if current else ()):
        if grant.key() in used_keys:
            continue
        why = lambda_why(grant.action)
        unused.append({"action": grant.action, "resource": grant.resource, "statement": f"{grant.policy}/{grant.sid}",
                       "why": why, "explained": why is not None})
    role = current.role_arn if current else (logged or {}).get("role")
    if not known:
        return {"function": name, "role": role, "exists": None, "used": used, "denied": denied, "unused": None,
                "unexplained": None}
    return {"function": name, "role": role, "exists": current is not None, "used": used, "denied": denied,
            "unused": unused, "unexplained": [u for u in unused if not u["explained"]]}


def build_report(log: dict[str, Any], functions: list[FunctionGrants] | None) -> dict[str, Any]:
    """Per function: the permissions used (by whom), denied (with AWS's message), and granted but
    never used in the cloud's lifetime (with who would use them, when Lambda would).
    ``functions`` None: the grants are unknown (only the log is at hand)."""
    current = {f.name: f for f in functions or []}
    logged = log.get("functions", {})
    names = sorted(set(current) | set(logged))
    return {"since": _iso(log.get("since")),
            "functions": {name: function_report(name, logged.get(name), current.get(name), functions is not None)
                          for name in names}}
