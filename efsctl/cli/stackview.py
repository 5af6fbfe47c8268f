"""How the stack commands (up, plan, status) show plans, progress and results.

Imported inside command bodies only. Everything printed goes through the app's console: a line
per step with its state and elapsed time, waits as rate-limited progress lines, and in
``--json`` mode exactly one document on stdout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from efsctl.console import Console

if TYPE_CHECKING:
    from efsctl.stack.execute import StepResult
    from efsctl.stack.plan import Action, Plan

DONE = {"create": "created", "update": "updated", "skip": "in sync"}


class ConsoleReporter:
    """The executor's reporter for a terminal: one line per finished step, waits as progress."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def step_started(self, action: "Action") -> None:
        pass

    def step_finished(self, result: "StepResult") -> None:
        if result.verb == "skip":
            self.console.line("skip", result.key, f"{result.id}  in sync",
                              result.elapsed if result.elapsed >= 0.05 else None)
            return
        detail = f"{DONE.get(result.verb, result.verb)} {result.id}"
        if result.verb == "update":
            detail += f"  ({'; '.join(result.reasons)})"
        self.console.line("ok", result.key, detail, result.elapsed)

    def step_failed(self, key: str, error: BaseException, elapsed: float) -> None:
        self.console.line("fail", key, "failed", elapsed)

    def waiting(self, key: str, what: str, elapsed: float, detail: str) -> None:
        self.console.progress(what, elapsed, detail)


def show_plan(console: Console, plan: "Plan", heading: str) -> None:
    console.info(heading)
    for action in plan:
        if action.verb == "skip":
            console.line("skip", action.key, f"{action.id}  in sync" if action.id else "in sync")
        elif action.verb == "create":
            console.line("run", action.key, "create")
        else:
            console.line("run", action.key, f"update {action.id}: {'; '.join(action.reasons)}")
    for warning in plan.warnings:
        console.warn(warning)
    counts = plan.counts()
    console.info(f"Plan: {counts['create']} to create, {counts['update']} to update, {counts['skip']} in sync.")
    for blocker in plan.blockers:
        console.error(blocker)


def plan_document(plan: "Plan", *, stack: str, target: str, region: str, dry_run: bool) -> dict[str, Any]:
    return {"stack": stack, "target": target, "region": region, "dry_run": dry_run, **plan.to_dict()}


def up_document(deployment: Any, *, stack: str, target: str, outputs: dict[str, Any]) -> dict[str, Any]:
    plan = deployment.preview.plan
    results = deployment.execution.results
    return {"stack": stack, "target": target, "region": deployment.preview.config.region,
            "account": deployment.preview.config.account,
            "actions": [results[a.key].to_dict() if a.key in results else {**a.to_dict(), "done": False}
                        for a in plan],
            "summary": plan.counts(), "warnings": plan.warnings,
            "elapsed": round(deployment.execution.elapsed, 3), "api_url": outputs.get("api_url"),
            "outputs": outputs}


def show_up(console: Console, deployment: Any, *, stack: str, target: str, outputs: dict[str, Any]) -> None:
    counts = deployment.preview.plan.counts()
    for warning in deployment.preview.plan.warnings:
        console.warn(warning)
    console.success(f"Stack {stack} is up on {target} ({deployment.preview.config.region}): "
                    f"{counts['create']} created, {counts['update']} updated, {counts['skip']} in sync "
                    f"in {deployment.execution.elapsed:.1f}s.")
    console.info(f"  API:    {outputs.get('api_url')}")
    console.info(f"  Bucket: s3://{outputs['bucket']}/models/  (`efsctl upload PATH` adds a model)")
