from __future__ import annotations

from typing import Annotated

import typer

from efsctl.cli.context import get_app

DEMO_STACK = "demo"


def demo(
    ctx: typer.Context,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the stack up at the end.")] = False,
) -> None:
    """Run the whole round trip offline: up --local, upload a sample model, predict, list models,
    show the logs, down.

    It runs on a new local stack, 'demo' unless --stack is given on the command line
    (EFSCTL_STACK does not choose it), and removes that stack at the end unless --keep. It never
    touches a stack that already exists: it refuses to start on one.
    """
    import dataclasses
    import tempfile
    from pathlib import Path

    from efsctl.cli import stackview
    from efsctl.cli.context import AppContext
    from efsctl.drive.demo import DemoStack, run_demo
    from efsctl.errors import ConfigError
    from efsctl.operations import UpRequest

    app = get_app(ctx)
    source = ctx.parent.get_parameter_source("stack") if ctx.parent else None
    stack = app.stack if getattr(source, "name", "") == "COMMANDLINE" else DEMO_STACK  # typer's ParameterSource
    ops = AppContext(dataclasses.replace(app.settings, stack=stack), app.console).ops
    if ops.exists():
        raise ConfigError(f"Stack {stack!r} already exists, and the demo runs only on a stack it creates (it removes "
                          "it at the end).", f"Pick a new name: `efsctl --stack {stack[:18]}-2 demo`, or remove "
                          f"this one first: `efsctl --stack {stack} down`.")
    reporter = stackview.ConsoleReporter(app.console)

    def connect():
        conn = ops.connect()
        return conn.aws, conn.target

    stack_ops = DemoStack(up=lambda: ops.converge(UpRequest(local=True), reporter),
                          down=lambda: ops.destroy(confirm=None, reporter=reporter), connect=connect)
    app.console.info(f"efsctl demo on a new local stack {stack!r}" + (" (kept at the end)" if keep else ""))
    with tempfile.TemporaryDirectory(prefix="efsctl-demo-") as work:
        run = run_demo(stack_ops, app.console, Path(work), keep=keep)
    if run.failed:
        raise typer.Exit(1)
    if keep:
        app.console.info(f"The stack is still up: try `efsctl --stack {stack} models`; remove it with "
                         f"`efsctl --stack {stack} down --yes`.")
