"""What the drive commands share: the stack's state, its AWS context and drive target."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from efsctl.cli.context import AppContext
    from efsctl.drive.target import DriveTarget
    from efsctl.state import StackState


def connect(app: "AppContext") -> tuple["StackState", Any, "DriveTarget"]:
    """``(state, aws, target)`` for the selected stack; fails if there is no such stack."""
    from efsctl.drive.target import resolve_target

    state = app.require_state()
    aws = app.aws(state)
    return state, aws, resolve_target(state, aws)


def print_rows(app: "AppContext", rows: list[tuple[str, str]]) -> None:
    """Aligned ``label  value`` lines."""
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        app.console.info(f"  {label:<{width}}  {value}".rstrip())
