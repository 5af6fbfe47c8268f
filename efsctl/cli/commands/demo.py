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
    show the logs, down. Uses the stack 'demo' unless --stack is given."""
    import dataclasses
    import tempfile
    from pathlib import Path

    from efsctl.cli.commands._drive import connect
    from efsctl.cli.context import AppContext
    from efsctl.drive.demo import DemoStack, run_demo
    from efsctl.errors import ConfigError

    app = get_app(ctx)
    source = ctx.parent.get_parameter_source("stack") if ctx.parent else None
    explicit = getattr(source, "name", "") in ("COMMANDLINE", "ENVIRONMENT")  # typer's own ParameterSource
    stack = app.stack if explicit else DEMO_STACK
    demo_app = AppContext(dataclasses.replace(app.settings, stack=stack), app.console)
    existing = demo_app.state()
    if existing is not None and not existing.is_local:
        raise ConfigError(f"Stack {stack!r} lives on AWS; the demo runs on a local stack.",
                          "Pick another name: `efsctl --stack demo2 demo`.")
    global_args = ["--stack", stack]
    if app.settings.region:
        global_args += ["--region", app.settings.region]
    if app.settings.debug:
        global_args.append("--debug")

    def invoke(*args: str) -> None:
        run_command(global_args + list(args))

    stack_ops = DemoStack(up=lambda: invoke("up", "--local"), down=lambda: invoke("down", "--yes"),
                          connect=lambda: connect(demo_app)[1:])
    app.console.info(f"efsctl demo on the local stack {stack!r}" + (" (kept at the end)" if keep else ""))
    with tempfile.TemporaryDirectory(prefix="efsctl-demo-") as work:
        run = run_demo(stack_ops, app.console, Path(work), keep=keep)
    if run.failed:
        raise typer.Exit(1)
    if keep:
        app.console.info(f"The stack is still up: try `efsctl --stack {stack} models`; remove it with "
                         f"`efsctl --stack {stack} down --yes`.")


def run_command(argv: list[str]) -> None:
    """Run an efsctl command in this process (not a subprocess); raise if it fails."""
    from efsctl.cli.app import app
    from efsctl.errors import EfsctlError

    shown = "efsctl " + " ".join(argv)
    try:
        code = app(argv, standalone_mode=False, prog_name="efsctl")
    except typer.Abort:
        raise EfsctlError(f"`{shown}` was aborted.") from None
    except Exception as exc:
        # usage errors (an unknown command or option) come from typer's click
        if hasattr(exc, "format_message") and type(exc).__module__.startswith(("click", "typer")):
            raise EfsctlError(f"`{shown}` could not run: {exc.format_message()}") from None
        raise
    if code == 130:
        raise KeyboardInterrupt  # the user pressed Ctrl-C inside it: stop the demo too
    if isinstance(code, int) and code != 0:
        raise EfsctlError(f"`{shown}` failed (exit {code}).")
