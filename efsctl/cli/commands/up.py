from __future__ import annotations

from typing import Annotated, Optional

import typer

from efsctl.cli.context import get_app


def up(
    ctx: typer.Context,
    local: Annotated[bool, typer.Option("--local", help="Run the stack in the embedded local cloud (no AWS account).")]
    = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing (same as `efsctl plan`).")]
    = False,
    vpc_cidr: Annotated[Optional[str], typer.Option("--vpc-cidr", help="The VPC's IPv4 block (default 10.42.0.0/16).")]
    = None,
    memory: Annotated[Optional[int], typer.Option("--memory", help="Memory of both functions in MiB, 128-10240 (Lambda's MemorySize, which AWS labels MB; default 2048).")]
    = None,
    architecture: Annotated[Optional[str], typer.Option("--architecture",
                                                        help="Lambda architecture: arm64 (default) or x86_64.")]
    = None,
    realism: Annotated[Optional[str], typer.Option(
        "--realism", help="With --local: 'instant' (ready at once) or 'aws' (AWS's delays and rules). "
                          "Chosen when the local cloud starts; kept by later runs.")] = None,
    time_scale: Annotated[Optional[float], typer.Option(
        "--time-scale", help="With --realism aws: multiply AWS's delays (0.1 runs ten times faster; default 1).")]
    = None,
    throttle_rate: Annotated[Optional[float], typer.Option(
        "--throttle-rate", help="With --local: fraction of API calls the local cloud throttles (default 0).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Create or converge the whole stack; idempotent and resumable.

    A second run changes nothing; a run after an interruption finishes the job. Settings given
    here (--memory, --vpc-cidr, --architecture) are remembered for later runs.
    """
    from efsctl.cli import stackview
    from efsctl.operations import CloudProfile, UpRequest

    app = get_app(ctx, json_out)
    request = UpRequest(local=local, vpc_cidr=vpc_cidr, memory=memory, architecture=architecture,
                        cloud=CloudProfile(realism, time_scale, throttle_rate))
    if dry_run:
        stackview.render_plan(app.console, app.ops.preview(request), json_out)
        return
    outcome = app.ops.converge(request, stackview.ConsoleReporter(app.console))
    stackview.render_up(app.console, outcome, json_out)
