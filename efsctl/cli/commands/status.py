from __future__ import annotations

from typing import Annotated

import typer

from efsctl.cli.context import get_app


def status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Show every resource of the stack, its id and health, the API URL and the target.

    Resources are looked up live (by tag and name); if the target cannot be reached, the ids
    cached by the last `up` are shown instead. Read-only: a stopped local cloud stays stopped.
    """
    from efsctl.cli import stackview

    app = get_app(ctx, json_out)
    outcome = app.ops.describe()
    if outcome is None:
        if json_out:
            app.console.emit_json({"stack": app.stack, "exists": False})
        app.console.info(f"There is no stack {app.stack!r} here. Create it with `efsctl up --local` "
                         "(offline) or `efsctl up` (AWS).")
        raise typer.Exit(1)
    stackview.render_status(app.console, outcome, json_out)
