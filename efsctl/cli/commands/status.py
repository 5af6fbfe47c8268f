from __future__ import annotations

from typing import Annotated

import typer

from efsctl.cli.context import get_app


def status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Show every resource of the stack, its id and health, and the API URL."""
    app = get_app(ctx, json_out)
    state = app.state()
    if state is None:
        if json_out:
            app.console.emit_json({"stack": app.stack, "exists": False})
        app.console.info(f"There is no stack {app.stack!r} here. Create it with `efsctl up --local` "
                         "(offline) or `efsctl up` (AWS).")
        raise typer.Exit(1)
    local = None
    if state.is_local:
        from efsctl.local import local_status_section

        local = local_status_section(app.store, state.stack)
    if json_out:
        app.console.emit_json({"stack": state.stack, "exists": True, "target": state.target,
                               "region": state.region, "resources": state.resources,
                               "outputs": state.outputs, **({"local_cloud": local} if local else {})})
        return
    app.console.info(f"Stack {state.stack} ({state.target}, {state.region or 'region unknown'})")
    rows = [(key, res.get("id", ""), res.get("state", "")) for key, res in sorted(state.resources.items())]
    app.console.table(["resource", "id", "state"], rows)
    if local:
        app.console.info(f"Local cloud: {local['health']} (pid {local['pid']}), AWS endpoint {local['endpoint_url']}, "
                         f"API {local['gateway_url']}, log {local['log_file']}"
                         + (f"; {local['problem']}" if local.get("problem") else ""))
