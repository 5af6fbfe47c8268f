from __future__ import annotations

from typing import Annotated

import typer

from efsctl.cli.context import get_app


def models(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """List the models on EFS, as the consumer sees them (GET /models)."""
    from efsctl.drive.models import fetch_listing, table_columns, table_rows

    app = get_app(ctx, json_out)
    with app.ops.connect().api() as api:
        listing = fetch_listing(api)
    if json_out:
        app.console.emit_json(listing.to_json())
        return
    if not listing.models:
        app.console.info("No models on EFS yet. Upload one with `efsctl upload PATH`.")
    else:
        app.console.table(table_columns(listing.models), table_rows(listing.models))
    for note in listing.warnings():
        app.console.warn(note)
