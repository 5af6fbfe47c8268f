from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from efsctl.cli.context import get_app


class Function(str, Enum):
    all = "all"
    producer = "producer"
    consumer = "consumer"


def tail_logs(
    ctx: typer.Context,
    function: Annotated[Function, typer.Option("--function", help="Whose logs to show.")] = Function.all,
    since: Annotated[str, typer.Option(help="How far back: 30s, 10m, 1h, 2d, or an ISO time (UTC unless "
                                       "it says otherwise).")] = "10m",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C.")] = False,
    filter_text: Annotated[Optional[str], typer.Option("--filter", help="Only events containing TEXT.",
                                                       metavar="TEXT", show_default=False)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show both functions' logs interleaved by time; -f follows them live."""
    from efsctl.drive.logs import parse_since, render, tail_stack

    app = get_app(ctx, json_out)
    since_ms = parse_since(since)
    conn = app.ops.connect()
    whose = "both functions'" if function.value == "all" else f"the {function.value}'s"
    matching = f" matching {filter_text!r}" if filter_text else ""
    events = tail_stack(conn.aws, conn.target, function=function.value, since_ms=since_ms, follow=follow,
                        filter_text=filter_text, notice=app.console.warn,
                        following=lambda: app.console.activity(
                            "following", f"{whose} logs{matching} as they arrive; Ctrl-C stops"))
    count = 0
    try:
        for event in events:
            count += 1
            if json_out:
                app.console.emit_json_line(event.to_dict())
            else:
                app.console.print(render(event), soft_wrap=True)
    except KeyboardInterrupt:
        events.close()
        return  # Ctrl-C is how a follow ends: not an error
    if count == 0:
        app.console.info(f"No log events since {since}"
                         f"{' matching the filter' if filter_text else ''} (the functions may not have run yet).")
