"""What the drive commands share: printing aligned rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from efsctl.cli.context import AppContext


def print_rows(app: "AppContext", rows: list[tuple[str, str]]) -> None:
    """Aligned ``label  value`` lines."""
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        app.console.info(f"  {label:<{width}}  {value}".rstrip())
