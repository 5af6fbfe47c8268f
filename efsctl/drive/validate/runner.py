"""Runs the selected claims in order, one live line each, then removes what the run wrote."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from efsctl.drive.validate import atomic, concurrency, events, persistence, privilege, shared
from efsctl.drive.validate.cleanup import cleanup
from efsctl.drive.validate.core import BY_NUMBER, CLAIMS, FAIL, PASS, SKIP, ClaimResult, Run, Stack
from efsctl.drive.validate.dataset import Profile, profile
from efsctl.errors import EfsctlError
from efsctl.waits import Clock

EXPERIMENTS: dict[int, Callable[..., ClaimResult]] = {
    1: events.claim, 2: shared.claim, 3: concurrency.claim, 4: atomic.claim, 5: persistence.claim,
    6: privilege.claim,
}
ALL = tuple(c.number for c in CLAIMS)


@dataclass(frozen=True)
class ValidateOptions:
    claims: tuple[int, ...] = ALL
    quick: bool = False
    largest: int | None = None     # --size: the largest model of claim 1's set
    timeout: float = 120.0         # how long one upload may take to reach EFS
    keep: bool = False
    remove: str | None = None      # --remove RUN: no claims; remove what that (kept) run left

    @property
    def profile(self) -> Profile:
        return profile(self.quick, self.largest)


@dataclass
class Report:
    stack: str
    target: str
    run_id: str
    folder: str
    options: ValidateOptions
    results: list[ClaimResult] = field(default_factory=list)
    cleanup: dict[str, Any] | None = None
    cleanup_error: str | None = None
    seconds: float = 0.0
    started_at: float = field(default_factory=time.time)

    @property
    def failed(self) -> list[ClaimResult]:
        return [r for r in self.results if r.failed]

    @property
    def ok(self) -> bool:
        return not self.failed and self.cleanup_error is None

    def to_dict(self) -> dict[str, Any]:
        return {"stack": self.stack, "target": self.target, "run": self.run_id, "folder": self.folder,
                "ok": self.ok, "quick": self.options.quick, "profile": self.options.profile.to_dict(),
                "claims": [r.to_dict() for r in self.results],
                "passed": [r.claim.number for r in self.results if r.verdict == PASS],
                "failed": [r.claim.number for r in self.failed],
                "not_measured": [r.claim.number for r in self.results if r.verdict == SKIP],
                "kept": self.options.keep, "removed_run": self.options.remove, "cleanup": self.cleanup, "cleanup_error": self.cleanup_error,
                "seconds": round(self.seconds, 3),
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at))}


def run_validation(stack: Stack, console: Any, options: ValidateOptions, *, clock: Clock | None = None,
                   run_id: str | None = None) -> Report:
    """Measure each selected claim on ``stack``; remove what was written unless ``options.keep``.
    With ``options.remove``, measure nothing: remove what that earlier run left."""
    started = time.monotonic()
    if options.remove:
        return _remove_run(stack, console, options, run_id=options.remove, started=started)
    with tempfile.TemporaryDirectory(prefix="efsctl-validate-") as work:
        run = Run(stack, console, options.profile, Path(work), clock=clock or Clock(), timeout=options.timeout)
        if run_id:
            run.run_id = run_id
        report = Report(stack.target.stack, "local" if stack.target.is_local else "aws", run.run_id, run.folder,
                        options)
        if 6 in options.claims:
            run.iam_before = stack.iam_report()
        try:
            for number in sorted(set(options.claims)):
                report.results.append(_measure(run, number, console))
        finally:
            if not options.keep:
                report.cleanup, report.cleanup_error = _cleanup(run, console)
    report.seconds = time.monotonic() - started
    return report


def _remove_run(stack: Stack, console: Any, options: ValidateOptions, *, run_id: str, started: float) -> Report:
    with tempfile.TemporaryDirectory(prefix="efsctl-validate-") as work:
        run = Run(stack, console, options.profile, Path(work), run_id=run_id)
        report = Report(stack.target.stack, "local" if stack.target.is_local else "aws", run.run_id, run.folder,
                        options)
        report.cleanup, report.cleanup_error = _cleanup(run, console, scan_outputs=True)
    report.seconds = time.monotonic() - started
    return report


def _measure(run: Run, number: int, console: Any) -> ClaimResult:
    claim = BY_NUMBER[number]
    label = f"claim {number}"
    started = time.monotonic()

    def progress(detail: str, *, log: bool = True) -> None:
        """The claim's live line; ``log=False``: a counter, shown in a terminal, not logged."""
        console.activity(label, f"{claim.title}: {detail}", time.monotonic() - started, log=log)

    console.activity(label, claim.title, 0.0)
    try:
        outcome = EXPERIMENTS[number](run, progress)
    except EfsctlError as exc:
        outcome = ClaimResult(claim, FAIL, "could not be measured", exc.message)
    except Exception as exc:  # noqa: BLE001 - one claim's fault must not hide the others' verdicts
        if getattr(console, "debug", False):
            raise
        outcome = ClaimResult(claim, FAIL, "could not be measured", f"{type(exc).__name__}: {exc}")
    finally:
        console.end(label)
    outcome.seconds = time.monotonic() - started
    status = {PASS: "ok", FAIL: "fail", SKIP: "skip"}[outcome.verdict]
    console.line(status, label, f"{claim.title}: {outcome.reason if outcome.failed else outcome.summary}",
                 outcome.seconds)
    return outcome


def _cleanup(run: Run, console: Any, *, scan_outputs: bool = False) -> tuple[dict[str, Any] | None, str | None]:
    if not run.written.names and not run.written.outputs and not scan_outputs:
        return {"s3": {"objects": 0, "bytes": 0}, "efs": {}, "kept": [], "left_on_efs": []}, None
    started = time.monotonic()
    try:
        with console.status("cleanup") as update:
            update(f"removing {run.folder} from S3 and EFS")
            doc = cleanup(run, scan_outputs=scan_outputs)
    except EfsctlError as exc:
        console.line("fail", "cleanup", exc.message, time.monotonic() - started)
        return None, exc.message
    left = doc.get("left_on_efs")
    if left:
        message = f"{len(left)} of the run's models are still on EFS, e.g. {left[0]}"
        console.line("fail", "cleanup", message, time.monotonic() - started)
        return doc, message
    efs = doc["efs"]
    console.line("ok", "cleanup", f"{doc['s3']['objects']} objects from S3; {efs.get('models', 0)} models, "
                 f"{efs.get('outputs', 0)} results and {efs.get('records', 0)} records from EFS",
                 time.monotonic() - started)
    return doc, None
