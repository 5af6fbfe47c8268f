"""How ``validate`` shows its report: a table of claims with their verdicts and figures, then
what failed and why (or one JSON document with ``--json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from efsctl.console import Console

MARKS = {"pass": "✓", "fail": "✗", "not measured": "·"}


def rows(report: Any) -> list[tuple[str, ...]]:
    out = []
    for r in report.results:
        figures = r.summary if not r.failed else f"{r.summary} — {r.reason}"
        if r.verdict == "not measured" and r.reason:
            figures = r.reason
        out.append((MARKS.get(r.verdict, "?"), f"{r.claim.number} {r.claim.title}", r.verdict.upper(), figures,
                    f"{r.seconds:.1f}s"))
    return out


def render(console: Console, report: Any, json_out: bool, written: Path | None = None) -> None:
    if json_out:
        doc = report.to_dict()
        doc["report_file"] = str(written) if written else None
        console.emit_json(doc)
    elif report.options.remove:
        if report.cleanup_error is None:
            done = report.cleanup or {}
            efs = done.get("efs") or {}
            console.success(f"Run {report.run_id} on stack {report.stack}: removed {(done.get('s3') or {}).get('objects', 0)} "
                            f"objects from S3, {efs.get('models', 0)} models and {efs.get('outputs', 0)} results from EFS.")
    else:
        console.table(["", "claim", "verdict", "figures", "time"], rows(report),
                      title=f"efsctl validate: stack {report.stack} ({report.target}), {report.seconds:.1f} s")
        for r in report.results:
            for note in r.notes:
                console.info(f"  claim {r.claim.number}: {note}")
        if report.options.keep:
            console.info(f"Kept models/{report.folder} and the run's results in S3 and on EFS; remove them with "
                         f"`efsctl validate --remove {report.run_id}`.")
        if written:
            console.info(f"Report: {written}")
    for r in report.failed:
        console.error(f"Claim {r.claim.number} ({r.claim.title}) failed: {r.reason}")
    if report.cleanup_error:
        console.error(f"Cleanup failed: {report.cleanup_error}",
                      f"`efsctl validate --remove {report.run_id}` tries again.")
    if report.ok and not json_out and not report.options.remove:
        held = [r for r in report.results if r.verdict == "pass"]
        console.success(f"{len(held)} of {len(report.results)} claims hold"
                        + (f" ({len(report.results) - len(held)} not measured)." if len(held) < len(report.results) else "."))
