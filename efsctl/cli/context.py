"""What every command gets: settings, the console, the state store and the AWS target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION, Settings
from efsctl.console import Console
from efsctl.errors import ConfigError, StackNotFound
from efsctl.state import StackState, StateStore

if TYPE_CHECKING:
    from efsctl.aws.session import AwsContext


@dataclass
class AppContext:
    settings: Settings
    console: Console = field(default_factory=Console)

    @property
    def store(self) -> StateStore:
        return StateStore(self.settings.state_home)

    @property
    def stack(self) -> str:
        return self.settings.stack

    def state(self) -> StackState | None:
        return self.store.load(self.stack)

    def require_state(self) -> StackState:
        state = self.state()
        if state is None:
            raise StackNotFound(
                f"There is no stack {self.stack!r} here.",
                "Create it with `efsctl up --local` (offline) or `efsctl up` (AWS), or pick another with --stack.",
            )
        return state

    def aws(self, state: StackState | None = None, *, local_endpoint: str | None = None) -> "AwsContext":
        """The AWS context for this stack's target.

        An explicit ``--endpoint-url`` wins; a stack whose state says ``local`` talks to its
        local cloud with the local credentials; anything else is real AWS, which needs
        credentials and a region.
        """
        from efsctl.aws.session import AwsContext

        s = self.settings
        if local_endpoint is None and state is not None and state.is_local:
            local_endpoint = state.local.get("endpoint_url")
            if not local_endpoint:
                raise ConfigError(f"Stack {self.stack!r} is local but its local cloud is not recorded.",
                                  "Run `efsctl up --local` to start it again.")
        if local_endpoint:
            return AwsContext(region=s.region or LOCAL_REGION, endpoint_url=local_endpoint,
                              credentials=dict(LOCAL_CREDENTIALS))
        ctx = AwsContext(region=s.region or (state.region if state else None), profile=s.profile,
                         endpoint_url=s.endpoint_url or (state.endpoint_url if state else None))
        ctx.require_credentials()
        return ctx


def get_app(ctx: typer.Context, json_mode: bool = False) -> AppContext:
    """The command's :class:`AppContext`; switches the console to JSON mode when asked."""
    app_ctx: AppContext = ctx.find_object(AppContext)
    if json_mode:
        app_ctx.console.json_mode = True
    return app_ctx
