from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from efsctl.cli.context import get_app


def upload(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The model file to upload.", show_default=False)],
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="Model name (default: the file's name).")] = None,
    wait: Annotated[Optional[bool], typer.Option("--wait/--no-wait", help="Wait until the model is on EFS "
                                                 "with the same SHA-256 (default: on in a terminal).",
                                                 show_default=False)] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for EFS.", min=1)] = 300.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    declared_sha256: Annotated[Optional[str], typer.Option("--declared-sha256", hidden=True,
                                                           help="Send this SHA-256 instead of the file's "
                                                           "(to exercise the producer's check).")] = None,
) -> None:
    """Upload a model to the stack's bucket; the producer copies it to EFS, checking its SHA-256."""
    import re

    from efsctl.drive.upload import check_file, default_name, upload_model, wait_on_efs
    from efsctl.errors import ConfigError
    from efsctl.units import human_bytes, human_duration

    app = get_app(ctx, json_out)
    path = check_file(path)
    name = default_name(path, name)
    if declared_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", declared_sha256):
        raise ConfigError("--declared-sha256 must be 64 lower-case hex digits.")
    if wait is None:
        wait = sys.stdout.isatty()
    conn = app.ops.connect()
    api = conn.api() if wait else None  # fails before uploading if there is no API
    result = upload_model(conn.aws, conn.target, path, name, console=app.console, declared_sha256=declared_sha256,
                          resume_dir=conn.uploads_dir)
    if api is not None:
        with api:
            result.wait = wait_on_efs(api, name, result.sha256, declared_sha256=declared_sha256, etag=result.etag,
                                      stored_at=result.stored_at, timeout=timeout, progress=app.console.progress)
        if result.wait.on_efs:
            app.console.line("ok", "on EFS", f"models/{name}, sha256 matches; S3 → EFS in "
                             f"{human_duration(result.wait.latency_s)}")
    if json_out:
        app.console.emit_json(result.to_dict())
    if not result.ok:
        app.console.error(result.wait.error or "The model did not reach EFS.",
                          result.wait.hint or "See `efsctl tail-logs --function producer` for the producer's side.")
        raise typer.Exit(1)
    if not json_out:
        app.console.success(f"{name} ({human_bytes(result.size)}) uploaded"
                            + (" and on EFS." if result.wait else "; the producer copies it to EFS."))
