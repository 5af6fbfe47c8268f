from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from efsctl.cli.context import AppContext, get_app
from efsctl.errors import ConfigError, EfsctlError

if TYPE_CHECKING:
    from efsctl.stack.teardown import Task, TeardownPlan, TeardownResult
    from efsctl.state import StackState


def down(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking for confirmation.")] = False,
    keep_bucket: Annotated[bool, typer.Option("--keep-bucket", help="Keep the S3 bucket and its objects.")] = False,
    timeout: Annotated[str, typer.Option("--timeout", metavar="DURATION",
                                         help="Give up waiting after this long (30m, 90s, 1h); a re-run resumes.")]
    = "30m",
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Delete everything the stack owns; idempotent and resumable.

    Resources are found by tag and name, so this works without the state file and after an
    interrupted `up` or `down`. Lambda releases its network interfaces asynchronously (minutes
    on AWS): `down` waits for them, showing how many are left.
    """
    app = get_app(ctx, json_out)
    seconds = parse_duration(timeout)
    from efsctl.stack import teardown as td

    with app.store.lock(app.stack, "efsctl down"):
        state = app.state()
        local = state is not None and state.is_local
        cloud_alive = _local_cloud_alive(app) if local else False
        aws = app.aws(state) if not local or cloud_alive else None
        plan = td.prepare(aws, app.stack, keep_bucket=keep_bucket, account=state.account if state else None) \
            if aws is not None else None
        if (plan is None or plan.empty) and state is None and not local:
            return _nothing(app, json_out)
        if not yes and (local or (plan is not None and not plan.empty)):
            _confirm(app, plan, td.bucket_contents(aws, plan) if plan else None, local)
        result = td.run_teardown(plan, aws, timeout=seconds, reporter=ConsoleReporter(app.console)) if plan else None
        if result is not None and result.error is not None:
            if state is not None:
                state.resources = result.remaining()
                app.store.save(state)
            result.raise_for_error()
        if local:
            _stop_local_cloud(app)
        state_deleted = app.store.delete(app.stack)
    _render(app, json_out, state, plan, result, state_deleted, local)


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text or "")
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"--timeout {text!r} is not a duration.", "Use seconds or a unit: 90s, 30m, 1h.")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _interactive() -> bool:
    return sys.stdin.isatty()


def _local_cloud_alive(app: AppContext) -> bool:
    try:
        from efsctl.local import local_cloud_health
    except ImportError:
        raise EfsctlError(f"Stack {app.stack!r} runs in the local cloud, but this efsctl has no local cloud "
                          "support to stop it.", "Reinstall efsctl, then run `efsctl down` again.") from None
    health = local_cloud_health(app.store, app.stack)
    return bool(health and health.get("endpoint_ok", health.get("healthy")))


def _stop_local_cloud(app: AppContext) -> None:
    from efsctl.local import stop_local_cloud

    stop_local_cloud(app.store, app.stack, app.console)


def _nothing(app: AppContext, json_out: bool) -> None:
    if json_out:
        app.console.emit_json({"stack": app.stack, "existed": False, "deleted": [], "seconds": 0.0})
    else:
        app.console.info(f"Nothing to delete: stack {app.stack!r} has no resources here.")


def _confirm(app: AppContext, plan: "TeardownPlan | None", contents: tuple[int, int] | None, local: bool) -> None:
    if not _interactive():
        raise ConfigError(f"Not deleting stack {app.stack!r} without confirmation, and there is no terminal to ask on.",
                          "Pass --yes to delete without asking.")
    console = app.console
    resources = plan.resources() if plan else []
    if resources:
        console.table(["resource", "kind", "id"], [(o.key, o.kind, o.id) for o in resources],
                      title=f"Stack {app.stack}: {len(resources)} resources to delete")
    if contents is not None:
        console.info(f"The bucket holds {contents[0]} objects (versions included), {_size(contents[1])}: "
                     "all of them are deleted with it.")
    for kept in plan.kept if plan else []:
        console.info(f"Kept: {kept.key} {kept.id}" + (" (--keep-bucket)" if kept.state != "foreign" else
                                                       " (owned by another account)"))
    if local:
        console.info("The stack's local cloud is stopped and its data removed." if plan is not None else
                     "The stack's local cloud is not running (its resources went with it): its data is removed.")
    if plan is None:
        what = "its local cloud's data"
    else:
        what = f"{len(resources)} resources" + (" and the local cloud" if local else "")
    if not typer.confirm(f"Delete stack {app.stack!r} ({what})?", default=False, err=True):
        console.info("Nothing was deleted.")
        raise typer.Exit(1)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


class ConsoleReporter:
    """A line per finished step; waits as rate-limited progress (what is left, seconds elapsed)."""

    def __init__(self, console: Any) -> None:
        self.console = console

    def task_finished(self, task: "Task", detail: str, elapsed: float) -> None:
        self.console.line("ok", task.key, f"{task.ids}  {detail}".strip(), elapsed if elapsed >= 0.05 else None)

    def task_failed(self, task: "Task", error: BaseException, elapsed: float) -> None:
        self.console.line("fail", task.key, f"{task.ids}  failed".strip(), elapsed)

    def waiting(self, task: "Task", what: str, elapsed: float, detail: str) -> None:
        self.console.progress(what, elapsed, detail)


def _render(app: AppContext, json_out: bool, state: "StackState | None", plan: "TeardownPlan | None",
            result: "TeardownResult | None", state_deleted: bool, local: bool) -> None:
    from efsctl.stack.teardown import summary

    body = summary(result) if result else {"deleted": [], "kept": [], "steps": [], "waits": {}, "objects_deleted": 0,
                                           "bytes_deleted": 0, "left": [], "seconds": 0.0}
    if json_out:
        observed = plan.observed if plan else None
        app.console.emit_json({"stack": app.stack, "target": state.target if state else "aws",
                               "region": observed.region if observed else state.region if state else None,
                               "account": observed.account if observed else state.account if state else None, **body,
                               "local_cloud_stopped": local, "state_file_deleted": state_deleted})
        return
    waited = body["waits"].get("lambda-enis")
    extra = f" (Lambda's network interfaces took {waited:.1f} s)" if waited else ""
    if body["deleted"]:
        app.console.success(f"Stack {app.stack} deleted: {len(body['deleted'])} resources in {body['seconds']:.1f} s"
                            f"{extra}.")
    else:
        app.console.success(f"Nothing was left of stack {app.stack}; its local records are removed.")
    for kept in body["kept"]:
        app.console.info(f"Kept {kept['key']} {kept['id']}.")
