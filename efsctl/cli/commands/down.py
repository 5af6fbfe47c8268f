from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from efsctl.cli.context import get_app
from efsctl.errors import ConfigError

if TYPE_CHECKING:
    from efsctl.console import Console
    from efsctl.operations import DownPreview


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
    from efsctl.cli import stackview

    app = get_app(ctx, json_out)
    seconds = parse_duration(timeout)
    if not yes and not _interactive():
        raise ConfigError(f"Not deleting stack {app.stack!r} without confirmation, and there is no terminal to ask on.",
                          "Pass --yes to delete without asking.")
    outcome = app.ops.destroy(confirm=None if yes else lambda preview: _confirm(app.console, preview),
                              keep_bucket=keep_bucket, timeout=seconds,
                              reporter=stackview.ConsoleReporter(app.console))
    if outcome.cancelled:
        app.console.info("Nothing was deleted.")
        raise typer.Exit(1)
    stackview.render_down(app.console, outcome, json_out)


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text or "")
    if not match:
        raise ConfigError(f"--timeout {text!r} is not a duration.", "Use seconds or a unit: 90s, 30m, 1h.")
    seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"--timeout {text} leaves no time to wait.", "Give it more than 0 s: 90s, 30m, 1h.")
    if seconds > 24 * 3600:
        raise ConfigError(f"--timeout {text} is more than a day.", "AWS releases everything within an hour: "
                          "try 1h, and run `efsctl down` again if it is not enough.")
    return seconds


def _interactive() -> bool:
    return sys.stdin.isatty()


def _confirm(console: "Console", preview: "DownPreview") -> bool:
    from efsctl.cli import stackview

    what = stackview.show_down_preview(console, preview)
    return typer.confirm(f"Delete stack {preview.stack!r} ({what})?", default=False, err=True)
