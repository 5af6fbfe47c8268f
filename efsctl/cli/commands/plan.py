from __future__ import annotations

from typing import Annotated

import typer

from efsctl.cli.context import get_app


def plan(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Show what `up` would do, without doing it (same as `up --dry-run`).

    Read-only: it never starts or restarts a local cloud; when the stack's local cloud is not
    running, the plan comes from what the last `up` recorded.
    """
    from efsctl.cli import stackview

    app = get_app(ctx, json_out)
    stackview.render_plan(app.console, app.ops.preview(), json_out)
