"""What every command gets: the settings, the console, and the use cases for the selected stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily: this module loads on every `efsctl --help`
    import typer

    from efsctl.config import Settings
    from efsctl.console import Console
    from efsctl.operations import Operations


class AppContext:
    def __init__(self, settings: Settings, console: Console | None = None) -> None:
        from efsctl.console import Console

        self.settings = settings
        self.console = console or Console(debug=settings.debug)

    @property
    def stack(self) -> str:
        return self.settings.stack

    @property
    def ops(self) -> Operations:
        """The use cases (:mod:`efsctl.operations`) for the selected stack."""
        from efsctl.operations import Operations

        return Operations(self.settings, self.console)


def get_app(ctx: typer.Context, json_mode: bool = False) -> AppContext:
    """The command's :class:`AppContext`; switches the console to JSON mode when asked."""
    app_ctx: AppContext = ctx.find_object(AppContext)
    if json_mode:
        app_ctx.console.json_mode = True
    return app_ctx
