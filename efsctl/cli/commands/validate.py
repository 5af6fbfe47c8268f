from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from efsctl.cli.context import get_app


def validate(
    ctx: typer.Context,
    claims: Annotated[Optional[str], typer.Option(help="Which claims, comma-separated: numbers 1-6 or names "
                                                  "(events, api, concurrency, atomic, persistence, privilege). "
                                                  "Default: all.", show_default=False)] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer and smaller models, fewer requests: a few "
                                        "seconds on the local cloud.")] = False,
    size: Annotated[Optional[str], typer.Option(help="The largest model claim 1 uploads (default 32MiB, "
                                                "--quick 1MiB), e.g. 1GiB.", show_default=False)] = None,
    timeout: Annotated[float, typer.Option(help="Seconds an upload may take to reach EFS.", min=1)] = 120.0,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the run's models and results in S3 and on EFS.")] = False,
    remove: Annotated[Optional[str], typer.Option("--remove", metavar="RUN", help="Measure nothing: remove what the "
                                                  "run RUN left (after --keep).", show_default=False)] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write a self-contained HTML page with the verdicts "
                                                   "and charts (needs `pip install 'efsctl[report]'`).",
                                                   show_default=False)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Prove the design's claims on the deployed stack: each claim is an experiment, PASS or FAIL
    with its figures.

    1 event-driven, 2 shared state over a REST API, 3 concurrent access, 4 atomic operations,
    5 persistence, 6 least privilege (local cloud only). Everything it writes is under
    models/efsctl-validate/<run>/ and is removed at the end unless --keep; your models are never
    touched. Exits 0 when every selected claim holds, 1 when one fails. --remove RUN removes what
    a run kept with --keep left behind.
    """
    from efsctl.cli.validate_view import render
    from efsctl.drive.validate.core import check_run_id, parse_claims
    from efsctl.drive.validate.runner import ValidateOptions
    from efsctl.errors import ConfigError
    from efsctl.units import parse_size

    app = get_app(ctx, json_out)
    chosen = parse_claims(claims)
    if remove is not None:
        check_run_id(remove)
        if keep or report is not None or claims is not None:
            raise ConfigError("--remove measures nothing, so it takes no --claims, --keep or --report.")
    largest = None
    if size is not None:
        try:
            largest = parse_size(size)
        except ValueError as exc:
            raise ConfigError(f"--size: {exc}.") from None
        if largest < 1024:
            raise ConfigError("--size must be at least 1KiB.")
    if report is not None:
        from efsctl.drive.validate.report import check_destination, require_charting

        require_charting()
        check_destination(report)
    outcome = app.ops.validate(ValidateOptions(claims=chosen, quick=quick, largest=largest, timeout=timeout,
                                               keep=keep, remove=remove))
    written = None
    if report is not None:
        from efsctl.drive.validate.report import write_report

        written = write_report(outcome, report)
    render(app.console, outcome, json_out, written)
    if not outcome.ok:
        raise typer.Exit(1)
