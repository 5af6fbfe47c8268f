from __future__ import annotations

from typing import Annotated

import typer

from efsctl.cli.context import get_app
from efsctl.state import StackState


def plan(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Show what `up` would do, without doing it (same as `up --dry-run`)."""
    app = get_app(ctx, json_out)
    from efsctl.cli import stackview
    from efsctl.stack.deploy import UpSettings, preview

    state = app.state() or StackState(stack=app.stack)
    shown = preview(app.aws(state), app.stack, UpSettings.from_dict(state.settings))
    if json_out:
        app.console.emit_json(stackview.plan_document(shown.plan, stack=app.stack, target=state.target,
                                                      region=shown.config.region, dry_run=True))
        return
    stackview.show_plan(app.console, shown.plan, f"Plan for stack {app.stack} ({state.target}, {shown.config.region}):")
