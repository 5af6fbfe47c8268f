from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from efsctl.cli.context import get_app


def package(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Where to write: new, empty, or an earlier `efsctl package` "
                                                   "output.", show_default=False)],
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="cloudformation|terraform",
                                     help="CloudFormation template or Terraform configuration.")] = "cloudformation",
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Write the stack as a CloudFormation template or a Terraform configuration, with the handlers' zip.

    Generated from the same stack model `up` deploys; parameters default to the settings `up`
    remembered for the stack. Needs no AWS account or network, and deploys nothing.
    """
    app = get_app(ctx, json_out)
    result = app.ops.package(directory, fmt.lower())
    if json_out:
        app.console.emit_json(result.to_dict())
        return
    app.console.success(f"Stack {app.stack} as {fmt.lower()} in {directory}: {', '.join(result.files)}")
    for name in result.removed:
        app.console.info(f"  removed {name} (an earlier `efsctl package` wrote it; this format does not)")
    for name in result.kept:
        app.console.warn(f"{name} is from an earlier `efsctl package` run but was changed since: left as it is.")
    app.console.info(f"Deploy (see {directory / 'README.md'}):")
    for command in result.to_dict()["deploy"]:
        app.console.info(f"  {command}")
