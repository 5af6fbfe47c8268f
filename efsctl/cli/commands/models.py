from __future__ import annotations

from typing import Annotated

import typer

from efsctl.cli.context import get_app


def models(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """List the models on EFS, as the consumer sees them (GET /models)."""
    from efsctl.drive.models import fetch_models, table_rows

    app = get_app(ctx, json_out)
    with app.ops.connect().api() as api:
        found, truncated = fetch_models(api)
    if json_out:
        app.console.emit_json({"models": found, **({"truncated": True} if truncated else {})})
        return
    if not found:
        app.console.info("No models on EFS yet. Upload one with `efsctl upload PATH`.")
        return
    app.console.table(["name", "size", "sha256", "modified"], table_rows(found))
    if truncated:
        app.console.warn(f"The consumer listed only the first {len(found)} models.")
