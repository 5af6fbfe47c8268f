from __future__ import annotations

from typing import Annotated, Optional

import typer

from efsctl.cli.context import AppContext, get_app
from efsctl.state import TARGET_AWS, TARGET_LOCAL, StackState


def up(
    ctx: typer.Context,
    local: Annotated[bool, typer.Option("--local", help="Run the stack in the embedded local cloud (no AWS account).")]
    = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")] = False,
    vpc_cidr: Annotated[Optional[str], typer.Option("--vpc-cidr", help="The VPC's IPv4 block (default 10.42.0.0/16).")]
    = None,
    memory: Annotated[Optional[int], typer.Option("--memory", help="Memory (MB) for both functions (default 2048).")]
    = None,
    architecture: Annotated[Optional[str], typer.Option("--architecture",
                                                        help="Lambda architecture: arm64 (default) or x86_64.")]
    = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Create or converge the whole stack; idempotent and resumable.

    A second run changes nothing; a run after an interruption finishes the job. Settings given
    here (--memory, --vpc-cidr, --architecture) are remembered for later runs.
    """
    app = get_app(ctx, json_out)
    from efsctl.cli import stackview
    from efsctl.stack.deploy import UpSettings, deploy, preview

    state = app.state() or StackState(stack=app.stack)
    chosen = UpSettings.from_dict({**state.settings, **UpSettings(vpc_cidr, memory, architecture).to_dict()})
    chosen.validated()
    if dry_run:
        shown = preview(_target(app, state, local), app.stack, chosen)
        if json_out:
            app.console.emit_json(stackview.plan_document(shown.plan, stack=app.stack, target=state.target,
                                                          region=shown.config.region, dry_run=True))
        else:
            stackview.show_plan(app.console, shown.plan, f"Plan for stack {app.stack} ({state.target}, "
                                                         f"{shown.config.region}), dry run: nothing will change.")
        return
    with app.store.lock(app.stack, "efsctl up"):
        aws = _target(app, state, local)
        deployment = deploy(aws, app.stack, chosen, reporter=stackview.ConsoleReporter(app.console))
        outputs = deployment.outputs(api_url=state.local.get("gateway_url") if state.is_local else None)
        _record(app, state, deployment, chosen, outputs)
        deployment.execution.raise_for_error()
    if json_out:
        app.console.emit_json(stackview.up_document(deployment, stack=app.stack, target=state.target, outputs=outputs))
    else:
        stackview.show_up(app.console, deployment, stack=app.stack, target=state.target, outputs=outputs)


def _target(app: AppContext, state: StackState, local: bool):
    """The AWS context for the stack's target, starting the local cloud when it is local."""
    from efsctl.errors import ConfigError

    if local and not state.is_local and state.resources:
        raise ConfigError(f"Stack {app.stack!r} lives on AWS; it cannot move to the local cloud.",
                          "Use another --stack for a local one, or `efsctl down` this one first.")
    if local or state.is_local:
        from efsctl.local import ensure_local_cloud

        state.target = TARGET_LOCAL
        state.local = ensure_local_cloud(app.store, app.stack, app.console)
        app.store.save(state)
    else:
        state.target = TARGET_AWS
    return app.aws(state)


def _record(app: AppContext, state: StackState, deployment, chosen, outputs: dict) -> None:
    """Cache what exists (even after a failed step): ids, outputs, settings. Tags stay the truth."""
    config = deployment.preview.config
    state.region, state.account = config.region, config.account
    if not state.is_local:
        state.endpoint_url = app.settings.endpoint_url
    state.resources = {key: observed.to_dict() for key, observed in deployment.resources.items()}
    state.outputs = outputs
    state.settings = chosen.to_dict()
    app.store.save(state)
