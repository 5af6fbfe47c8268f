"""The use cases every command runs, each one door: converge, preview, destroy, describe, connect.

They own what sits around the stack engine: the per-stack lock, which target a stack lives on,
the local cloud's start and stop, and the state record. Commands parse options, call one of
these and render the outcome; they never touch the AWS layer or the local cloud themselves.

- :meth:`Operations.converge` (`up`): under the lock, starts the local cloud if the stack is
  local, runs the `up` pipeline, records what exists.
- :meth:`Operations.preview` (`plan`, `up --dry-run`): read-only. It never starts, stops or
  replaces a local cloud and never writes state; with the cloud down it plans from the cache.
- :meth:`Operations.describe` (`status`): read-only, live when the target answers, else cached.
- :meth:`Operations.destroy` (`down`): observes and asks without holding the lock, then under the
  lock looks again and deletes; the only use case that deletes anything.
- :meth:`Operations.connect` (the drive commands): the stack's AWS context and drive target.
- :meth:`Operations.validate` (`validate`): the claims measured on the stack, under its lock
  (:mod:`efsctl.operations.validate`); :meth:`Operations.iam_report` and
  :meth:`Operations.restart_local_cloud` are what it needs of the local cloud.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from efsctl.config import Settings
from efsctl.errors import EfsctlError, StackNotFound
from efsctl.operations.target import LocalCloud, StackRef, check_cloud_options, check_not_moving, local_cloud_api
from efsctl.state import TARGET_AWS, TARGET_LOCAL, StackState, StateStore

if TYPE_CHECKING:
    from efsctl.drive.target import DriveTarget
    from efsctl.stack.deploy import Deployment, Preview, UpSettings
    from efsctl.stack.execute import Execution, Reporter
    from efsctl.stack.observed import Observed
    from efsctl.stack.plan import Plan
    from efsctl.waits import Clock


@dataclass(frozen=True)
class CloudProfile:
    """What ``--realism``, ``--time-scale`` and ``--throttle-rate`` asked of the local cloud."""

    realism: str | None = None
    time_scale: float | None = None
    throttle_rate: float | None = None

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.realism, self.time_scale, self.throttle_rate))

    def kwargs(self) -> dict[str, Any]:
        return {"realism": self.realism, "time_scale": self.time_scale, "throttle_rate": self.throttle_rate}

    def differences(self, running: dict[str, Any]) -> list[str]:
        """What differs from the running cloud's profile, as ``realism 'aws'`` phrases."""
        asked = {"realism": self.realism, "time_scale": self.time_scale, "throttle_rate": self.throttle_rate}
        shown = {"realism": lambda v: f"realism {v!r}", "time_scale": lambda v: f"time scale x{v:g}",
                 "throttle_rate": lambda v: f"throttle rate {v:g}"}
        return [shown[k](v) for k, v in asked.items()
                if v is not None and (v != running.get(k) if k == "realism" else float(v) != float(running.get(k)))]


@dataclass(frozen=True)
class UpRequest:
    """What `up` (or its dry run) was asked: the target and the operator's settings (``None``:
    what the stack already has, else the default)."""

    local: bool = False
    vpc_cidr: str | None = None
    memory: int | None = None
    architecture: str | None = None
    cloud: CloudProfile = CloudProfile()


@dataclass
class UpOutcome:
    stack: str
    target: str
    deployment: "Deployment"
    outputs: dict[str, Any]
    seconds: float = 0.0   # the whole use case: local cloud, observation, convergence, record


@dataclass
class PlanOutcome:
    """What `up` would do. ``live``: compared against the target itself, else against the cache."""

    stack: str
    target: str
    region: str
    plan: "Plan"
    live: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class StatusOutcome:
    stack: str
    state: StackState
    live: "Preview | None"
    problem: str | None
    local_cloud: dict[str, Any] | None
    iam: dict[str, Any] | None = None   # the local cloud's least-privilege report

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every resource: logical key, kind, id, state and drift (cached ids when not live)."""
        if self.live is None:
            return [{"key": key, **res} for key, res in self.state.resources.items()]
        rows = []
        for action in self.live.plan:
            found = action.observed
            drift = "missing" if action.verb == "create" else (
                "in sync" if action.verb == "skip" else "; ".join(action.reasons))
            rows.append({"key": action.key, "kind": action.kind, "id": found.id if found else None,
                         "state": (found.state or "ok") if found else "missing", "drift": drift})
        for extra in self.live.observed.duplicates:
            rows.append({"key": extra.key, "kind": extra.kind, "id": extra.id, "state": extra.state or "ok",
                         "drift": "extra copy (not used; `efsctl down` removes it)"})
        return rows

    @property
    def api_url(self) -> str | None:
        if self.state.is_local:
            return self.state.local.get("gateway_url") or self.state.outputs.get("api_url")
        if self.live is not None:
            api = self.live.observed.get("api")
            return self.live.config.names.api_url(api.id) if api else None
        return self.state.outputs.get("api_url")

    @property
    def lambda_enis(self) -> int | None:
        return len(self.live.observed.lambda_enis) if self.live else None

    @property
    def api_signing(self) -> dict[str, str] | None:
        """For a local stack: what signs requests to its API (SigV4, service execute-api)."""
        if not self.state.is_local:
            return None
        from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION

        return {**LOCAL_CREDENTIALS, "region": self.state.region or LOCAL_REGION, "service": "execute-api",
                "also": "any access key this local cloud's IAM or STS issued, with its secret (and session token)"}


@dataclass
class DownPreview:
    """What `down` would delete, shown before it asks."""

    stack: str
    target: str
    plan: "Plan | None"              # None: nothing to ask the target (a local cloud that is not running)
    bucket_contents: tuple[int, int] | None  # (object versions, bytes) in the bucket it deletes
    local: bool

    @property
    def resources(self) -> list["Observed"]:
        from efsctl.stack.teardown import resources

        return resources(self.plan) if self.plan is not None else []

    @property
    def kept(self) -> tuple["Observed", ...]:
        return self.plan.kept if self.plan is not None else ()

    @property
    def anything(self) -> bool:
        return self.local or (self.plan is not None and not self.plan.empty)


@dataclass
class DownOutcome:
    stack: str
    target: str
    region: str | None
    account: str | None
    execution: "Execution | None" = None
    existed: bool = True
    cancelled: bool = False
    local_cloud_stopped: bool = False
    state_file_deleted: bool = False
    note: str | None = None
    seconds: float = 0.0   # from the observation to the last step (and the local cloud's stop)

    def summary(self) -> dict[str, Any]:
        from efsctl.stack.execute import Execution
        from efsctl.stack.plan import Plan
        from efsctl.stack.teardown import summary

        return summary(self.execution or Execution(Plan(())))   # nothing ran: the same document, empty


@dataclass
class Connection:
    """A stack the drive commands can use: its state, AWS context and endpoints."""

    state: StackState
    aws: Any
    target: "DriveTarget"
    uploads_dir: Any = None   # where interrupted multipart uploads are remembered, to resume them

    def api(self, *, max_connections: int = 4):
        from efsctl.drive.target import api_client

        return api_client(self.target, self.aws, max_connections=max_connections)


class Operations:
    """The use cases for one stack (``settings.stack``). ``console`` receives the local cloud's
    start/stop lines; each call takes its own progress ``reporter``."""

    def __init__(self, settings: Settings, console: Any, *, store: StateStore | None = None,
                 clock: "Clock | None" = None) -> None:
        self.ref = StackRef(settings, store)
        self.console = console
        self.clock = clock

    @property
    def stack(self) -> str:
        return self.ref.name

    @property
    def store(self) -> StateStore:
        return self.ref.store

    def exists(self) -> bool:
        """Something of the stack is known here: a state file or a local cloud directory."""
        return self.ref.state() is not None

    # --- up ------------------------------------------------------------------------------------

    def _settings(self, state: StackState | None, request: UpRequest) -> "UpSettings":
        from efsctl.stack.deploy import UpSettings

        asked = UpSettings(request.vpc_cidr, request.memory, request.architecture).to_dict()
        return UpSettings.from_dict({**(state.settings if state else {}), **asked}).validated()

    def converge(self, request: UpRequest, reporter: "Reporter | None" = None) -> UpOutcome:
        """Create or converge the stack (starting its local cloud if it is local); records what
        exists even when a step fails, then raises that failure."""
        from efsctl.stack.deploy import apply, preview

        started = time.monotonic()
        with self.store.lock(self.stack, "efsctl up"):
            state = self.ref.state() or StackState(stack=self.stack)
            local = request.local or state.is_local
            check_cloud_options(request.cloud.given, local)
            check_not_moving(state, request.local)
            chosen = self._settings(state, request)
            if local:
                state.target = TARGET_LOCAL
                state.local = local_cloud_api().ensure_local_cloud(self.store, self.stack, self.console,
                                                              **request.cloud.kwargs())
                self.store.save(state)
                aws = self.ref.local_context(state.local["endpoint_url"])
            else:
                state.target = TARGET_AWS
                aws = self.ref.aws_context(state)
            # A local cloud's account never changes, and its record names it: no STS call.
            account = (state.account or state.local.get("account")) if local else None
            with self.console.status("looking up what the stack has"):
                seen = preview(aws, self.stack, chosen, account=account)
            deployment = apply(aws, seen, reporter=reporter, clock=self.clock)
            outputs = deployment.outputs(api_url=state.local.get("gateway_url") if local else None)
            self._record(state, deployment, chosen, outputs)
            deployment.execution.raise_for_error()
        return UpOutcome(self.stack, state.target, deployment, outputs, time.monotonic() - started)

    def _record(self, state: StackState, deployment: "Deployment", chosen: "UpSettings",
                outputs: dict[str, Any]) -> None:
        """Cache what exists (even after a failed step): ids, outputs, settings. Tags stay the truth."""
        config = deployment.preview.config
        state.region, state.account = config.region, config.account
        if not state.is_local:
            state.endpoint_url = self.ref.settings.endpoint_url
        state.resources = {key: observed.to_dict() for key, observed in deployment.resources.items()}
        state.outputs = outputs
        state.settings = chosen.to_dict()
        self.store.save(state)

    def preview(self, request: UpRequest = UpRequest()) -> PlanOutcome:
        """What :meth:`converge` would do with ``request``; changes nothing anywhere."""
        from efsctl.stack.deploy import preview

        state = self.ref.state()
        local = request.local or (state is not None and state.is_local)
        check_cloud_options(request.cloud.given, local)
        check_not_moving(state, request.local)
        chosen = self._settings(state, request)
        if not local:
            if state is None and not self.ref.has_aws_credentials(None):
                raise StackNotFound(f"There is no stack {self.stack!r} here, and no AWS credentials to plan one on AWS.",
                                    "Plan a local one with `efsctl up --local --dry-run`, or configure AWS credentials "
                                    "(`aws configure`) and run `efsctl plan` again.")
            aws = self.ref.aws_context(state)
            shown = preview(aws, self.stack, chosen)
            return PlanOutcome(self.stack, TARGET_AWS, shown.config.region, shown.plan, live=True)
        cloud = self.ref.local_cloud(state)
        if not cloud.healthy:
            return self._cached_preview(state, chosen, cloud)
        shown = preview(self.ref.local_context(cloud.endpoint_url), self.stack, chosen,
                        account=state.account if state else None)
        notes = []
        changes = request.cloud.differences(cloud.profile)
        if changes:
            notes.append(f"`up` would restart the local cloud with {', '.join(changes)}; this plan does not.")
        return PlanOutcome(self.stack, TARGET_LOCAL, shown.config.region, shown.plan, live=True, notes=notes)

    def _cached_preview(self, state: StackState | None, chosen: "UpSettings", cloud: LocalCloud) -> PlanOutcome:
        from efsctl.config import LOCAL_REGION
        from efsctl.stack.deploy import cached_plan

        region = (state.region if state else None) or LOCAL_REGION
        plan = cached_plan(self.stack, region, (state.account if state else None) or "", chosen,
                           state.resources if state else {})
        why = (f"The local cloud of stack {self.stack!r} is not running ({cloud.problem})"
               if cloud.record is not None else f"Stack {self.stack!r} has no local cloud yet")
        note = (f"{why}: this plan is from what the last `up` recorded, not checked; `up --local` starts it."
                if state is not None and state.resources else f"{why}: `up --local` starts one.")
        return PlanOutcome(self.stack, TARGET_LOCAL, region, plan, live=False, notes=[note])

    # --- status --------------------------------------------------------------------------------

    def describe(self) -> StatusOutcome | None:
        """Every resource, live where the target answers; ``None`` when there is no such stack."""
        from efsctl.stack.deploy import UpSettings, preview

        state = self.ref.state()
        section = iam = None
        live, problem = None, None
        if state is not None and state.is_local:
            api = local_cloud_api()
            health = api.local_cloud_health(self.store, self.stack)   # one probe serves the whole report
            cloud = self.ref.local_cloud(state, health=health)
            section = api.local_status_section(self.store, self.stack, health=health)
            iam = api.local_iam_report(self.store, self.stack, healthy=cloud.healthy)
            if not cloud.healthy:
                problem = f"The local cloud is {section['health']} ({section['problem'] or cloud.problem})."
            else:
                live = preview(self.ref.local_context(cloud.endpoint_url), self.stack,
                               UpSettings.from_dict(state.settings), account=state.account)
        else:
            try:
                live = preview(self.ref.aws_context(state), self.stack,
                               UpSettings.from_dict(state.settings if state else {}))
            except EfsctlError as exc:
                problem = exc.message
        if state is None and (live is None or live.observed.empty):
            return None
        state = state or StackState(stack=self.stack, region=live.config.region, account=live.config.account)
        return StatusOutcome(self.stack, state, live, problem, section, iam)

    # --- down ----------------------------------------------------------------------------------

    def destroy(self, *, confirm: Callable[[DownPreview], bool] | None, keep_bucket: bool = False,
                timeout: float | None = None, reporter: "Reporter | None" = None) -> DownOutcome:
        """Delete everything the stack owns. ``confirm`` (None: don't ask) sees what will go and
        answers; it is asked without the lock held, and what goes is looked up again after it."""
        from efsctl.stack import teardown

        started = time.monotonic()
        state = self.ref.state()
        local = state is not None and state.is_local
        with self.console.status("looking up what the stack has"):
            preview, aws, note = self._down_look(state, local, keep_bucket, count=confirm is not None)
        if preview is None:
            return DownOutcome(self.stack, TARGET_AWS, self.ref.settings.region, None, existed=False, note=note)
        if confirm is not None and preview.anything:
            if not confirm(preview):
                return DownOutcome(self.stack, preview.target, state.region if state else None,
                                   state.account if state else None, cancelled=True)
            started = time.monotonic()  # the time a person took to answer is not the command's
        with self.store.lock(self.stack, "efsctl down"):
            if confirm is not None and preview.plan is not None:
                with self.console.status("looking again, now that the stack is locked"):
                    state = self.ref.state()
                    again, again_aws, _ = self._down_look(state, local, keep_bucket, count=False)
                    if again is not None:
                        preview, aws = again, again_aws
            execution = None
            if preview.plan is not None:
                execution = teardown.run_teardown(preview.plan, aws, timeout=timeout or teardown.DEFAULT_TIMEOUT,
                                                  clock=self.clock, reporter=reporter)
                if execution.error is not None:
                    if state is not None:
                        state.resources = execution.remaining(preview.plan.observed.resources)
                        self.store.save(state)
                    execution.raise_for_error()
            if local:
                local_cloud_api().stop_local_cloud(self.store, self.stack, self.console)
            deleted = self.store.delete(self.stack)
            self.store.forget(self.stack, keep_uploads=keep_bucket)
        observed = preview.plan.observed if preview.plan is not None else None
        return DownOutcome(self.stack, preview.target,
                           observed.region if observed else state.region if state else None,
                           observed.account if observed else state.account if state else None,
                           execution=execution, local_cloud_stopped=local, state_file_deleted=deleted,
                           seconds=time.monotonic() - started)

    def _down_look(self, state: StackState | None, local: bool, keep_bucket: bool, *, count: bool
                   ) -> tuple[DownPreview | None, Any, str | None]:
        """What `down` would delete, the context to delete it with, and (when nothing of the stack
        is known anywhere we can look: no preview) why not. ``count``: also count the bucket's
        objects, for a confirmation to show (a big bucket takes a while to list)."""
        from efsctl.stack import teardown

        if local:
            cloud = self.ref.local_cloud(state)
            if not cloud.healthy:
                return DownPreview(self.stack, TARGET_LOCAL, None, None, local=True), None, None
            aws = self.ref.local_context(cloud.endpoint_url)
        elif state is None and not self.ref.has_aws_credentials(None):
            return None, None, "No AWS credentials are set, so AWS was not searched for it."
        else:
            aws = self.ref.aws_context(state)
        plan = teardown.prepare(aws, self.stack, keep_bucket=keep_bucket,
                                account=state.account if local and state else None)
        if plan.empty and state is None and not local:
            return None, aws, None
        contents = teardown.bucket_contents(aws, plan) if count else None
        return DownPreview(self.stack, TARGET_LOCAL if local else TARGET_AWS, plan, contents, local), aws, None

    # --- package -------------------------------------------------------------------------------

    def package(self, directory: Any, fmt: str) -> Any:
        """Write the stack as infrastructure as code into ``directory`` (no AWS call, nothing
        deployed); its parameters default to the settings `up` remembered for the stack."""
        from efsctl.stack.iac.output import package

        return package(directory, fmt, self.stack, self.store)

    # --- the drive commands --------------------------------------------------------------------

    def connect(self) -> Connection:
        """The stack's AWS context and drive target; fails with one sentence if it is not there."""
        from efsctl.drive.target import resolve_target

        state = self.ref.require_state()
        aws = self.ref.context_for(state, self.console)
        return Connection(state, aws, resolve_target(state, aws), self.store.uploads_dir(self.stack))

    # --- validate ------------------------------------------------------------------------------

    def validate(self, options: Any) -> Any:
        """Measure the claims ``options`` (a :class:`~efsctl.drive.validate.runner.ValidateOptions`)
        selects; returns the :class:`~efsctl.drive.validate.runner.Report`."""
        from efsctl.operations.validate import validate

        return validate(self, options)

    def iam_report(self) -> dict[str, Any] | None:
        """The local cloud's least-privilege report (what each role was asked to allow); ``None``
        for a stack on AWS, where no such report exists."""
        state = self.ref.require_state()
        if not state.is_local:
            return None
        return local_cloud_api().local_iam_report(self.store, self.stack)

    def restart_local_cloud(self, *, locked: bool = False) -> Connection:
        """Stop the stack's local cloud process and start it again with the same profile, over its
        saved state; returns the new connection (its ports may have moved). ``locked``: the caller
        holds the stack's lock."""
        if not locked:
            with self.store.lock(self.stack, "efsctl (local cloud restart)"):
                return self.restart_local_cloud(locked=True)
        from efsctl.errors import ConfigError

        state = self.ref.require_state()
        if not state.is_local:
            raise ConfigError(f"Stack {self.stack!r} lives on AWS; only a local cloud can be restarted.")
        api = local_cloud_api()
        profile = LocalCloud(api.local_cloud_record(self.store, self.stack) or dict(state.local), False).profile
        api.halt_local_cloud(self.store, self.stack, self.console, clock=self.clock)
        state.local = api.ensure_local_cloud(self.store, self.stack, self.console, **profile)
        if state.outputs.get("api_url"):  # the gateway serves the stack's API: it moves with the cloud
            state.outputs["api_url"] = state.local.get("gateway_url") or state.outputs["api_url"]
        self.store.save(state)
        return self.connect()
