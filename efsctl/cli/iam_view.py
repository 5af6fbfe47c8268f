"""How ``status`` shows the local cloud's least-privilege report (the report itself is data:
:func:`efsctl.local.local_iam_report`)."""

from __future__ import annotations

from typing import Any

from efsctl.console import Console


def _short(function: str) -> str:
    return function.rsplit("-", 1)[-1] if function.startswith("efsctl-") else function


def _reason(message: str) -> str:
    for marker in (" because ", " with an explicit deny"):
        if marker in message:
            return message[message.index(marker) + 1:]
    return message


def iam_lines(report: dict[str, Any]) -> list[str]:
    """Per function: what the handler used, what Lambda used, denials, grants never used."""
    lines = []
    for name, fn in sorted(report.get("functions", {}).items()):
        role = str(fn.get("role") or "?").rsplit("/", 1)[-1]
        lines.append(f"  {_short(name)} (role {role}{'' if fn.get('exists') is not False else ', function gone'})")
        handler = [u for u in fn["used"] if u["by"] == "handler"]
        lambda_own = sorted({u["action"] for u in fn["used"] if u["by"] != "handler"})
        lines.append("    used by the handler: " + (", ".join(
            f"{u['action']} on {u['resource']} ({u['count']}x)" for u in handler) or "nothing"))
        if lambda_own:
            lines.append("    used by Lambda itself: " + ", ".join(lambda_own))
        for denial in fn["denied"]:
            lines.append(f"    denied ({denial['by']}, {denial['count']}x): {denial['action']} on "
                         f"{denial['resource']}: {_reason(denial['message'])}")
        if fn["unused"] is None:
            continue
        explained = sorted({u["action"] for u in fn["unused"] if u["explained"]})
        if explained:
            lines.append("    granted, not used yet (Lambda's own): " + ", ".join(explained))
        lines.append("    granted, never used and unexplained: " + (", ".join(
            f"{u['action']} on {u['resource']} ({u['statement']})" for u in fn["unexplained"]) or "none"))
    return lines


def show_iam_report(console: Console, report: dict[str, Any] | None) -> None:
    """The report after ``status``'s resources (nothing when there is none)."""
    if not report or not report.get("functions"):
        return
    live = "" if report.get("live", True) else " (the cloud is not running: grants unknown)"
    console.info(f"IAM in the local cloud since {report.get('since') or '?'}{live}:")
    for line in iam_lines(report):
        console.info(line)
