"""How the stack commands (up, plan, status, down) show plans, progress and outcomes.

Imported inside command bodies only. Everything printed goes through the app's console: a line
per step with its state and elapsed time, waits as rate-limited progress lines, and in
``--json`` mode exactly one document on stdout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from efsctl.console import Console
from efsctl.units import human_bytes, human_duration

if TYPE_CHECKING:
    from efsctl.operations import DownOutcome, DownPreview, PlanOutcome, StatusOutcome, UpOutcome
    from efsctl.stack.execute import StepResult
    from efsctl.stack.plan import Action

DONE = {"create": "created", "update": "updated", "skip": "in sync"}


STARTED = {"create": "creating", "update": "updating", "skip": "waiting until it is ready", "delete": "deleting"}


def _unless_the_reader_left(method):
    """Steps report from the executor's threads: if nobody reads the output any more (a closed
    pipe), the work goes on; the main thread ends quietly when it next prints."""
    import functools

    @functools.wraps(method)
    def report(self, *args):
        try:
            method(self, *args)
        except BrokenPipeError:
            pass

    return report


class ConsoleReporter:
    """The executor's reporter: a running step is a live line (its state, elapsed time ticking),
    replaced by one permanent line when it ends."""

    def __init__(self, console: Console) -> None:
        self.console = console

    @_unless_the_reader_left
    def step_started(self, action: "Action") -> None:
        self.console.activity(action.key, STARTED.get(action.verb, action.verb), log=False)

    @_unless_the_reader_left
    def step_finished(self, result: "StepResult") -> None:
        quick = result.elapsed if result.elapsed >= 0.05 else None
        if result.verb == "delete":
            self.console.line("ok", result.key, f"{result.id}  {result.detail}".strip(), quick)
        elif result.verb == "skip":
            self.console.line("skip", result.key, f"{result.id}  in sync", quick)
        else:
            detail = f"{DONE.get(result.verb, result.verb)} {result.id}"
            if result.verb == "update":
                detail += f"  ({'; '.join(result.reasons)})"
            self.console.line("ok", result.key, detail, result.elapsed)

    @_unless_the_reader_left
    def step_failed(self, key: str, error: BaseException, elapsed: float) -> None:
        self.console.line("fail", key, "failed", elapsed)

    @_unless_the_reader_left
    def waiting(self, key: str, what: str, elapsed: float, detail: str) -> None:
        self.console.activity(key, detail or f"waiting for {what}", elapsed)


# --- plan (`plan` and `up --dry-run`: one document, one rendering) ------------------------------

def plan_document(outcome: "PlanOutcome") -> dict[str, Any]:
    return {"stack": outcome.stack, "target": outcome.target, "region": outcome.region, "dry_run": True,
            "live": outcome.live, "notes": outcome.notes, **outcome.plan.to_dict()}


def render_plan(console: Console, outcome: "PlanOutcome", json_out: bool) -> None:
    if json_out:
        console.emit_json(plan_document(outcome))
        return
    console.info(f"Plan for stack {outcome.stack} ({outcome.target}, {outcome.region}), dry run: nothing will change.")
    for note in outcome.notes:
        console.warn(note)
    for action in outcome.plan:
        if action.verb == "skip":
            console.line("skip", action.key, f"{action.id}  in sync" if action.id else "in sync")
        elif action.verb == "create":
            console.line("run", action.key, "create")
        else:
            console.line("run", action.key, f"update {action.id}: {'; '.join(action.reasons)}")
    for warning in outcome.plan.warnings:
        console.warn(warning)
    counts = outcome.plan.counts()
    console.info(f"Plan: {counts['create']} to create, {counts['update']} to update, {counts['skip']} in sync.")
    for blocker in outcome.plan.blockers:
        console.error(blocker)


# --- up ---------------------------------------------------------------------------------------

def up_document(outcome: "UpOutcome") -> dict[str, Any]:
    deployment, outputs = outcome.deployment, outcome.outputs
    plan = deployment.preview.plan
    results = deployment.execution.results
    return {"stack": outcome.stack, "target": outcome.target, "region": deployment.preview.config.region,
            "account": deployment.preview.config.account,
            "actions": [results[a.key].to_dict() if a.key in results else {**a.to_dict(), "done": False}
                        for a in plan],
            "summary": plan.counts(), "warnings": plan.warnings,
            "elapsed": round(deployment.execution.elapsed, 3), "seconds": round(outcome.seconds, 3),
            "api_url": outputs.get("api_url"),
            "outputs": outputs}


def render_up(console: Console, outcome: "UpOutcome", json_out: bool) -> None:
    if json_out:
        console.emit_json(up_document(outcome))
        return
    deployment, outputs = outcome.deployment, outcome.outputs
    counts = deployment.preview.plan.counts()
    for warning in deployment.preview.plan.warnings:
        console.warn(warning)
    console.success(f"Stack {outcome.stack} is up on {outcome.target} ({deployment.preview.config.region}): "
                    f"{counts['create']} created, {counts['update']} updated, {counts['skip']} in sync "
                    f"in {human_duration(outcome.seconds)}.")
    console.info(f"  API:    {outputs.get('api_url')}")
    console.info(f"  Bucket: s3://{outputs['bucket']}/models/  (`efsctl upload PATH` adds a model)")


# --- status -----------------------------------------------------------------------------------

def render_status(console: Console, outcome: "StatusOutcome", json_out: bool) -> None:
    state, rows, local = outcome.state, outcome.rows, outcome.local_cloud
    if json_out:
        console.emit_json({"stack": state.stack, "exists": True, "target": state.target, "region": state.region,
                           "account": state.account, "live": outcome.live is not None, "error": outcome.problem,
                           "api_url": outcome.api_url, "resources": {row["key"]: row for row in rows},
                           "outputs": state.outputs, "local": state.local, "lambda_enis": outcome.lambda_enis,
                           **({"local_cloud": local} if local else {}), **({"iam": outcome.iam} if outcome.iam else {}),
                           **({"api_signing": outcome.api_signing} if outcome.api_signing else {})})
        return
    where = f"{state.target}, {state.region or 'region unknown'}" + (f", account {state.account}" if state.account else "")
    console.info(f"Stack {state.stack} ({where})")
    if outcome.problem:
        console.warn(f"{outcome.problem} Showing the ids cached by the last `efsctl up`.")
    console.table(["resource", "id", "state", "drift"],
                  [(r["key"], r.get("id") or "-", r.get("state") or "", r.get("drift") or "") for r in rows])
    console.info(f"API: {outcome.api_url or '-'}")
    if local:
        console.info(local_cloud_line(local))
        signing = outcome.api_signing
        console.info(f"API signing: SigV4 for execute-api in {signing['region']} with access key "
                     f"{signing['aws_access_key_id']} and secret {signing['aws_secret_access_key']}, or {signing['also']}.")
        from efsctl.cli.iam_view import show_iam_report

        show_iam_report(console, outcome.iam)


def local_cloud_line(local: dict[str, Any]) -> str:
    """The local cloud, in one sentence that says only what is known."""
    health, log = local.get("health"), local.get("log_file")
    data = local.get("data") or {}
    kept = f", {human_bytes(data['total_bytes'])} of saved state and data in {data['dir']}" if data.get("dir") else ""
    if health == "healthy":
        return (f"Local cloud: running (pid {local['pid']}), AWS endpoint {local['endpoint_url']}, "
                f"API {local['gateway_url']}{kept}, log {log}.")
    if health == "not started":
        return "Local cloud: not started; `efsctl up --local` starts it."
    problem = local.get("problem") or "it does not answer"
    return (f"Local cloud: {health} ({problem}){kept}; `efsctl up --local` (or any command that needs it) starts "
            f"it again over its saved state. Log: {log}.")


# --- down -------------------------------------------------------------------------------------

def show_down_preview(console: Console, preview: "DownPreview") -> str:
    """What will go (a table, the bucket's contents, what is kept); returns the prompt's words."""
    resources = preview.resources
    if resources:
        console.table(["resource", "kind", "id"], [(o.key, o.kind, o.id) for o in resources],
                      title=f"Stack {preview.stack}: {len(resources)} resources to delete")
    if preview.bucket_contents is not None:
        count, size = preview.bucket_contents
        console.info(f"The bucket holds {count} objects (versions included), {human_bytes(size)}: "
                     "all of them are deleted with it.")
    for kept in preview.kept:
        console.info(f"Kept: {kept.key} {kept.id}" + (" (--keep-bucket)" if kept.state != "foreign" else
                                                       " (owned by another account)"))
    if preview.local:
        console.info("The stack's local cloud is stopped, and its saved state and data are removed." if preview.plan
                     is not None else "The stack's local cloud is not running: its saved state and data (every "
                     "resource and model of the stack) are removed.")
    if preview.plan is None:
        return "its local cloud's data"
    return f"{len(resources)} resources" + (" and the local cloud" if preview.local else "")


def render_down(console: Console, outcome: "DownOutcome", json_out: bool) -> None:
    if not outcome.existed:
        if json_out:
            console.emit_json({"stack": outcome.stack, "existed": False, "deleted": [], "seconds": 0.0,
                               **({"note": outcome.note} if outcome.note else {})})
        else:
            console.info(f"Nothing to delete: stack {outcome.stack!r} has no resources here."
                         + (f" {outcome.note}" if outcome.note else ""))
        return
    body = outcome.summary()
    if json_out:
        console.emit_json({"stack": outcome.stack, "target": outcome.target, "region": outcome.region,
                           "account": outcome.account, **body, "total_seconds": round(outcome.seconds, 3),
                           "local_cloud_stopped": outcome.local_cloud_stopped,
                           "state_file_deleted": outcome.state_file_deleted})
        return
    waited = body["waits"].get("lambda-enis")
    extra = f" (Lambda's network interfaces took {human_duration(waited)})" if waited else ""
    if body["deleted"]:
        console.success(f"Stack {outcome.stack} deleted: {len(body['deleted'])} resources in "
                        f"{human_duration(outcome.seconds)}{extra}.")
    else:
        console.success(f"Nothing was left of stack {outcome.stack}; its local records are removed.")
    for kept in body["kept"]:
        console.info(f"Kept {kept['key']} {kept['id']}.")
