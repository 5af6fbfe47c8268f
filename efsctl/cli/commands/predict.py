from __future__ import annotations

from typing import Annotated, Optional

import typer

from efsctl.cli.context import get_app


def predict(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name, as `efsctl models` lists it.", show_default=False)],
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash the model on EFS instead of trusting "
                                         "the cached checksum.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    concurrency: Annotated[Optional[int], typer.Option(help="Load mode: requests in flight at once.", min=1,
                                                       max=256, show_default=False)] = None,
    requests: Annotated[Optional[int], typer.Option(help="Load mode: how many requests to send.", min=1,
                                                    max=1_000_000, show_default=False)] = None,
) -> None:
    """Run the consumer on a model (signed POST /predict) and show what it found.

    With --concurrency/--requests, send many requests and report latency percentiles,
    throughput and errors.
    """
    import time

    from efsctl.cli.commands._drive import print_rows
    from efsctl.drive.names import validate_model_name
    from efsctl.drive.predict import load_rows, predict_once, run_load, summary_rows

    app = get_app(ctx, json_out)
    validate_model_name(name)
    conn = app.ops.connect()
    if concurrency is None and requests is None:
        with conn.api() as api:
            prediction = predict_once(api, name, verify)
        if json_out:
            app.console.emit_json(prediction.body)
            return
        app.console.line("ok", "predict", name, prediction.round_trip_ms / 1000.0)
        print_rows(app, summary_rows(prediction, conn.target.bucket))
        return

    concurrency = concurrency or 4
    requests = requests or 100
    start = time.monotonic()
    with conn.api(max_connections=concurrency) as api:
        with app.console.status("load") as update:
            result = run_load(api, name, verify=verify, concurrency=concurrency, requests=requests,
                              progress=lambda done, errors, p50: update(
                                  f"{done}/{requests} requests, {concurrency} at a time, p50 "
                                  + (f"{p50:.1f} ms" if p50 is not None else "-")
                                  + (f", {errors} failed" if errors else "")))
    doc = {"model": name, **result.to_dict()}
    if json_out:
        app.console.emit_json(doc)
    else:
        app.console.line("ok" if not result.errors else "fail", "load", name, time.monotonic() - start)
        print_rows(app, load_rows(result))
    if result.errors:
        first = result.error_messages.most_common(1)[0][0]
        app.console.error(f"{result.errors} of {requests} requests failed; the most common error: {first}")
        raise typer.Exit(1)
