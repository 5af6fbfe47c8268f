"""Which stack a command means and where it lives: its state record, its local cloud, its AWS context.

Read-only: nothing here starts, stops or replaces a local cloud, and nothing writes state. The
use cases (:mod:`efsctl.operations`) decide when a cloud may start and when state is saved.

A stack is *local* when its state file says so, or, with the state file gone, when its local
cloud's directory is still there (``<state>/local/<stack>/``): that directory identifies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION, Settings
from efsctl.errors import ConfigError, StackNotFound
from efsctl.state import TARGET_LOCAL, StackState, StateStore

if TYPE_CHECKING:
    from efsctl.aws.session import AwsContext


@dataclass
class LocalCloud:
    """A local stack's cloud as it is right now (``record`` is None when none was ever started)."""

    record: dict[str, Any] | None
    healthy: bool
    problem: str | None = None
    recorded: bool = True   # the local cloud keeps a record of this stack's process

    @property
    def endpoint_url(self) -> str | None:
        return (self.record or {}).get("endpoint_url")

    @property
    def profile(self) -> dict[str, Any]:
        """The running cloud's realism, time scale and throttle rate."""
        record = self.record or {}
        options = record.get("options") or {}
        return {"realism": record.get("realism") or options.get("realism") or "instant",
                "time_scale": float(record.get("time_scale") or options.get("time_scale") or 1.0),
                "throttle_rate": float((options.get("extra") or {}).get("throttle_rate") or 0.0)}


def local_cloud_api() -> Any:
    """:mod:`efsctl.local`, the local cloud's public functions (looked up at call time)."""
    import importlib

    return importlib.import_module("efsctl.local")


class StackRef:
    """One stack, as the selected settings name it."""

    def __init__(self, settings: Settings, store: StateStore | None = None) -> None:
        self.settings = settings
        self.store = store or StateStore(settings.state_home)
        self.name = settings.stack

    # --- what is known locally -------------------------------------------------------------

    def has_local_dir(self) -> bool:
        return local_cloud_api().local_stack_present(self.store, self.name)

    def state(self) -> StackState | None:
        """The state file, or (it gone) what the stack's local cloud directory tells."""
        state = self.store.load(self.name)
        if state is None and self.has_local_dir():
            state = StackState(stack=self.name, target=TARGET_LOCAL, region=LOCAL_REGION,
                               local=dict(local_cloud_api().local_cloud_record(self.store, self.name) or {}))
        return state

    def require_state(self) -> StackState:
        state = self.state()
        if state is None:
            raise StackNotFound(
                f"There is no stack {self.name!r} here.",
                "Create it with `efsctl up --local` (offline) or `efsctl up` (AWS), or pick another with --stack.")
        return state

    def local_cloud(self, state: StackState | None = None, *, health: Any = ...) -> LocalCloud:
        """The stack's local cloud, probed (never started); ``state`` fills in what its record lacks.
        ``health``: a probe already made (``local_cloud_health``'s answer), not to be made again."""
        if health is ...:
            health = local_cloud_api().local_cloud_health(self.store, self.name)
        if health is None:
            return LocalCloud(dict(state.local) if state and state.local else None, False,
                              "no local cloud is recorded", recorded=False)
        healthy = bool(health.get("endpoint_ok", health.get("healthy")))
        record = {**(state.local if state else {}), **health}
        return LocalCloud(record, healthy, None if healthy else health.get("problem") or "it does not answer")

    # --- AWS contexts ------------------------------------------------------------------------

    def local_context(self, endpoint_url: str) -> "AwsContext":
        from efsctl.aws.session import AwsContext

        return AwsContext(region=self.settings.region or LOCAL_REGION, endpoint_url=endpoint_url,
                          credentials=dict(LOCAL_CREDENTIALS))

    def aws_context(self, state: StackState | None) -> "AwsContext":
        """Real AWS (or ``--endpoint-url``): flags, then what the state recorded."""
        from efsctl.aws.session import AwsContext

        s = self.settings
        ctx = AwsContext(region=s.region or (state.region if state else None), profile=s.profile,
                         endpoint_url=s.endpoint_url or (state.endpoint_url if state else None))
        ctx.require_credentials()
        return ctx

    def has_aws_credentials(self, state: StackState | None) -> bool:
        from efsctl.errors import CredentialsError

        try:
            self.aws_context(state)
        except CredentialsError:
            return False
        return True

    def context_for(self, state: StackState, console: Any) -> "AwsContext":
        """Where ``state``'s stack lives now. A local stack's cloud that has stopped (a reboot,
        ``kill -9``) is started again over its saved state, with its own profile (``console``
        shows the start)."""
        if not state.is_local:
            return self.aws_context(state)
        cloud = self.local_cloud(state)
        if cloud.healthy or (not cloud.recorded and cloud.endpoint_url):
            # (No process of ours recorded, but an endpoint is: a moto server the stack was pointed at.)
            return self.local_context(cloud.endpoint_url)
        record = local_cloud_api().ensure_local_cloud(self.store, self.name, console)
        return self.local_context(record["endpoint_url"])


def check_cloud_options(profile_given: bool, local: bool) -> None:
    if profile_given and not local:
        raise ConfigError("--realism, --time-scale and --throttle-rate shape the local cloud; they need --local.",
                          "Run `efsctl up --local --realism aws` for AWS's delays and rules offline.")


def check_not_moving(state: StackState | None, local: bool) -> None:
    if local and state is not None and not state.is_local and state.resources:
        raise ConfigError(f"Stack {state.stack!r} lives on AWS; it cannot move to the local cloud.",
                          "Use another --stack for a local one, or `efsctl down` this one first.")
