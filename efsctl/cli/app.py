"""The typer application: global options, command registration, and the one place that
maps errors to exit codes (0 ok, 1 failed, 2 usage/configuration, 130 interrupted)."""

from __future__ import annotations

import errno
import importlib
import os
import sys
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from efsctl import __version__
from efsctl.cli.context import AppContext
from efsctl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, EfsctlError

DEFAULT_STACK = "default"  # efsctl.config.DEFAULT_STACK, inlined to keep `--help` light


class EfsctlGroup(TyperGroup):
    """Loads each command's module only when that command runs (``--help`` reads names and
    one-line help from the registry), and turns every failure into one sentence and an exit code."""

    def list_commands(self, ctx: Any) -> list[str]:
        from efsctl.cli.commands import COMMANDS

        return [entry[0] for entry in COMMANDS]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name not in self.commands:
            from efsctl.cli.commands import COMMANDS

            entry = next((e for e in COMMANDS if e[0] == name), None)
            if entry is None:
                return None
            from typer.main import get_command_from_info
            from typer.models import CommandInfo

            module = importlib.import_module(f"efsctl.cli.commands.{entry[1]}")
            self.commands[name] = get_command_from_info(
                CommandInfo(name=name, callback=getattr(module, entry[2])),
                pretty_exceptions_short=True, rich_markup_mode=None)
        return self.commands[name]

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        from efsctl.cli.commands import COMMANDS

        with formatter.section("Commands"):
            formatter.write_dl([(entry[0], entry[3]) for entry in COMMANDS])

    def make_context(self, info_name: Any, args: list[str], parent: Any = None, **extra: Any) -> Any:
        self.json_requested = "--json" in args
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except OSError as exc:   # `efsctl --help | head -1`: help is printed while parsing
            if exc.errno != errno.EPIPE:
                raise
            _quiet_stdout()
            raise typer.Exit(0) from None
        except Exception as exc:
            if _is_usage_error(exc):
                _usage_error_json(exc, self.json_requested)
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            try:
                return super().invoke(ctx)
            finally:
                app_ctx = ctx.find_object(AppContext)
                if app_ctx is not None:
                    app_ctx.console.close()  # no live line outlives its command
        except (typer.Exit, typer.Abort) as exc:
            if isinstance(exc, typer.Abort) and isinstance(exc.__context__, KeyboardInterrupt):
                raise typer.Exit(_interrupted(ctx)) from None
            raise
        except KeyboardInterrupt:
            raise typer.Exit(_interrupted(ctx)) from None
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise typer.Exit(report_error(ctx, exc)) from None
            _quiet_stdout()
            raise typer.Exit(0) from None
        except Exception as exc:  # noqa: BLE001 - this is the one place errors are mapped
            if _is_usage_error(exc):
                _usage_error_json(exc, getattr(self, "json_requested", False))
                raise
            raise typer.Exit(report_error(ctx, exc)) from None


def _quiet_stdout() -> None:
    """The reader went away (`efsctl tail-logs --json | head`): stop quietly, and point stdout at
    /dev/null so the interpreter's final flush does not complain again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


# Commands whose re-run picks up where an interrupted run stopped.
RESUMABLE = {"up": "Run `efsctl up` again: it finishes the job, creating nothing twice.",
             "down": "Run `efsctl down` again: it finds what is left and deletes it.",
             "upload": "Run the same `efsctl upload` again: a large file's upload picks up where it stopped."}


def _interrupted(ctx: Any) -> int:
    command = ctx.invoked_subcommand or ""
    _console(ctx).error("Interrupted.", RESUMABLE.get(command))
    return EXIT_INTERRUPTED


def _is_usage_error(exc: BaseException) -> bool:
    return isinstance(exc, typer.BadParameter) or (type(exc).__module__.startswith(("click", "typer"))
                                                   and hasattr(exc, "format_message"))


def _usage_error_json(exc: BaseException, json_requested: bool) -> None:
    """With ``--json``, a usage error is one JSON document on stdout too (typer prints the message)."""
    if json_requested and hasattr(exc, "format_message"):
        import json

        sys.stdout.write(json.dumps({"error": {"message": exc.format_message(), "exit_code": EXIT_USAGE,
                                               "hint": "See the command's --help."}}, indent=2) + "\n")
        sys.stdout.flush()


def _console(ctx: Any):
    from efsctl.console import Console

    app_ctx = ctx.find_object(AppContext)
    return app_ctx.console if app_ctx else Console()


def report_error(ctx: Any, exc: BaseException) -> int:
    debug = bool(ctx.find_object(AppContext) and ctx.find_object(AppContext).settings.debug) or \
        bool(ctx.params.get("debug"))
    err = exc
    if not isinstance(err, EfsctlError) and "botocore" in sys.modules:
        from efsctl.aws.errors import translate

        err = translate(exc) or exc
    console = _console(ctx)
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(err, EfsctlError):
        console.error(err.message, err.hint)
        code = err.exit_code
    else:
        console.error(f"Unexpected error: {type(exc).__name__}: {exc}",
                      None if debug else "Re-run with --debug for the traceback.")
        code = EXIT_FAILED
    if console.json_mode and not console.json_emitted:
        message = err.message if isinstance(err, EfsctlError) else f"{type(exc).__name__}: {exc}"
        console.emit_json({"error": {"message": message, "exit_code": code,
                                     "hint": getattr(err, "hint", None)}})
    return code


app = typer.Typer(
    cls=EfsctlGroup,
    name="efsctl",
    help="Provision, drive and tear down two AWS Lambda functions sharing one Amazon EFS file system, "
    "on AWS or in an embedded local cloud.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"efsctl {__version__}")
        raise typer.Exit()


def _stack(value: str) -> str:
    from efsctl.config import validate_stack_name

    try:
        return validate_stack_name(value)
    except EfsctlError as exc:
        raise typer.BadParameter(exc.message) from None


@app.callback()
def main_options(
    ctx: typer.Context,
    stack: Annotated[str, typer.Option("--stack", "-s", envvar="EFSCTL_STACK", callback=_stack,
                                       help="Stack name.")] = DEFAULT_STACK,
    region: Annotated[Optional[str], typer.Option(help="AWS region (default: as the AWS CLI resolves it).")] = None,
    profile: Annotated[Optional[str], typer.Option(help="AWS profile (default: AWS_PROFILE or 'default').")] = None,
    endpoint_url: Annotated[Optional[str], typer.Option("--endpoint-url", envvar="AWS_ENDPOINT_URL",
                                                        help="Send every AWS call to this endpoint.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Two Lambda functions sharing one EFS file system, on AWS or offline."""
    from efsctl.config import Settings

    ctx.obj = AppContext(Settings(stack=stack, region=region, profile=profile,
                                  endpoint_url=endpoint_url or None, debug=debug))


def main() -> None:
    try:
        app(prog_name="efsctl")
    finally:
        # The interpreter's last garbage collection walks every object botocore loaded (about
        # half a second once a command has made its clients); nothing is left to collect then.
        import gc

        gc.freeze()
