from __future__ import annotations

from typing import Annotated, Any

import typer

from efsctl.cli.context import AppContext, get_app
from efsctl.errors import EfsctlError
from efsctl.state import StackState


def status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Show every resource of the stack, its id and health, the API URL and the target.

    Resources are looked up live (by tag and name); if the target cannot be reached, the ids
    cached by the last `up` are shown instead.
    """
    app = get_app(ctx, json_out)
    state = app.state()
    local = iam = None
    if state is not None and state.is_local:
        from efsctl.local import local_iam_report, local_status_section

        local = local_status_section(app.store, state.stack)
        iam = local_iam_report(app.store, state.stack)
    if local is not None and local["health"] != "healthy":
        live, problem = None, f"The local cloud is {local['health']} ({local['problem']})."
    else:
        live, problem = _observe(app, state)
    if state is None and (live is None or live.observed.empty):
        if json_out:
            app.console.emit_json({"stack": app.stack, "exists": False})
        app.console.info(f"There is no stack {app.stack!r} here. Create it with `efsctl up --local` "
                         "(offline) or `efsctl up` (AWS).")
        raise typer.Exit(1)
    state = state or StackState(stack=app.stack, region=live.config.region, account=live.config.account)
    rows = _rows(live, state)
    api_url = _api_url(live, state)
    if json_out:
        app.console.emit_json({"stack": state.stack, "exists": True, "target": state.target, "region": state.region,
                               "account": state.account, "live": live is not None, "error": problem,
                               "api_url": api_url, "resources": {row["key"]: row for row in rows},
                               "outputs": state.outputs, "local": state.local,
                               "lambda_enis": len(live.observed.lambda_enis) if live else None,
                               **({"local_cloud": local} if local else {}), **({"iam": iam} if iam else {})})
        return
    where = f"{state.target}, {state.region or 'region unknown'}" + (f", account {state.account}" if state.account else "")
    app.console.info(f"Stack {state.stack} ({where})")
    if problem:
        app.console.warn(f"{problem} Showing the ids cached by the last `efsctl up`.")
    app.console.table(["resource", "id", "state", "drift"],
                      [(r["key"], r.get("id") or "-", r.get("state") or "", r.get("drift") or "") for r in rows])
    app.console.info(f"API: {api_url or '-'}")
    if local:
        app.console.info(f"Local cloud: {local['health']} (pid {local['pid']}), AWS endpoint {local['endpoint_url']}, "
                         f"API {local['gateway_url']}, log {local['log_file']}"
                         + (f"; {local['problem']}" if local.get("problem") else ""))
        from efsctl.cli.iam_view import show_iam_report

        show_iam_report(app.console, iam)


def _observe(app: AppContext, state: StackState | None) -> tuple[Any, str | None]:
    """The live view (observed + plan) or ``(None, why not)``."""
    try:
        aws = app.aws(state)
        from efsctl.stack.deploy import UpSettings, preview

        return preview(aws, app.stack, UpSettings.from_dict(state.settings if state else {})), None
    except EfsctlError as exc:
        return None, exc.message


def _rows(live: Any, state: StackState) -> list[dict[str, Any]]:
    if live is None:
        return [{"key": key, **res} for key, res in state.resources.items()]
    rows = []
    for action in live.plan:
        found = action.observed
        drift = "missing" if action.verb == "create" else (
            "in sync" if action.verb == "skip" else "; ".join(action.reasons))
        rows.append({"key": action.key, "kind": action.kind, "id": found.id if found else None,
                     "state": (found.state or "ok") if found else "missing", "drift": drift})
    for extra in live.observed.duplicates:
        rows.append({"key": extra.key, "kind": extra.kind, "id": extra.id, "state": extra.state or "ok",
                     "drift": "extra copy (not used; `efsctl down` removes it)"})
    return rows


def _api_url(live: Any, state: StackState) -> str | None:
    if state.is_local:
        return state.local.get("gateway_url") or state.outputs.get("api_url")
    if live is not None:
        api = live.observed.get("api")
        return live.config.names.api_url(api.id) if api else None
    return state.outputs.get("api_url")
