"""Claim 6, least privilege: each function used only what its role grants, and needs all of it.

The local cloud authorises every call a function's role makes (the handler's, and Lambda's own
on its behalf) and keeps the least-privilege report ``efsctl status`` shows. Taken before the
run and after it, the report tells what each function was asked to allow while the claims ran:
nothing may have been denied, and no grant may be left that nothing used and nothing explains
(a grant Lambda itself uses at another moment, such as deleting network interfaces after the
function leaves its VPC, is explained). On AWS no such report exists; the claim is not measured.
"""

from __future__ import annotations

from typing import Any

from efsctl.drive.validate.core import SKIP, BY_NUMBER, ClaimResult, Run, result

NOT_ON_AWS = ("not measured: only the local cloud reports what each role was asked to allow; on AWS, "
              "IAM's last-accessed data and CloudTrail show it")


def _denials(report: dict[str, Any] | None, function: str) -> dict[tuple, dict]:
    fn = ((report or {}).get("functions") or {}).get(function) or {}
    return {(d["by"], d["action"], d["resource"]): d for d in fn.get("denied") or []}


def _used(report: dict[str, Any] | None, function: str) -> dict[tuple, int]:
    fn = ((report or {}).get("functions") or {}).get(function) or {}
    return {(u["by"], u["action"], u["resource"]): int(u["count"]) for u in fn.get("used") or []}


def claim(run: Run, progress=None) -> ClaimResult:
    after = run.stack.iam_report()
    if after is None:
        return ClaimResult(BY_NUMBER[6], SKIP, "no least-privilege report here", NOT_ON_AWS)
    before = run.iam_before or {}
    functions: dict[str, Any] = {}
    problems = []
    for role, name in sorted(run.target.functions.items()):
        fn = (after.get("functions") or {}).get(name)
        if fn is None:
            problems.append(f"the local cloud recorded nothing for the {role} {name}")
            continue
        old_denied, new_denied = _denials(before, name), _denials(after, name)
        denied = [{"action": key[1], "resource": key[2], "by": key[0], "count": d["count"] - old_denied.get(key, {}).get("count", 0),
                   "message": d["message"]} for key, d in new_denied.items()
                  if d["count"] > old_denied.get(key, {}).get("count", 0)]
        old_used, new_used = _used(before, name), _used(after, name)
        used = [{"action": key[1], "resource": key[2], "by": key[0], "count": count - old_used.get(key, 0)}
                for key, count in new_used.items() if count > old_used.get(key, 0)]
        unexplained = [{"action": u["action"], "resource": u["resource"], "statement": u["statement"]}
                       for u in fn.get("unexplained") or []]
        functions[role] = {"function": name, "role": fn.get("role"), "used_during_run": used,
                           "denied_during_run": denied, "unexplained_grants": unexplained,
                           "handler_actions": sorted({u["action"] for u in used if u["by"] == "handler"})}
        for d in denied:
            problems.append(f"the {role}'s role was denied {d['action']} on {d['resource']} {d['count']}× "
                            f"({d['message'][:160]})")
        for u in unexplained:
            problems.append(f"the {role}'s role grants {u['action']} on {u['resource']}, which nothing used "
                            f"({u['statement']})")
    measurements = {"since": after.get("since"), "functions": functions}
    parts = [f"{role}: {', '.join(f['handler_actions']) or 'no handler calls'}, {len(f['denied_during_run'])} denied, "
             f"{len(f['unexplained_grants'])} unused grants" for role, f in functions.items()]
    summary = "; ".join(parts) or "no function recorded"
    return result(6, not problems, summary, "; ".join(problems[:3]) or None, measurements=measurements)
