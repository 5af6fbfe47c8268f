"""Claim 1, event-driven: uploads reach EFS by themselves, each with its SHA-256.

The model set is uploaded a few at a time; for each, the upload's own wait
(:func:`~efsctl.drive.upload.wait_on_efs`) polls the consumer until it reports the uploader's
SHA-256 as what the producer installed. The S3 -> EFS latency runs from the end of the upload
to the first answer that shows the file, to within the poll interval. Nothing but S3's event
moves a model: efsctl never calls the producer for it.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from efsctl.drive.validate import dataset as ds
from efsctl.drive.validate.core import FINE_POLL, ClaimResult, Run, result, short, summarize
from efsctl.errors import EfsctlError
from efsctl.units import human_bytes


def seed(run: Run, progress=None) -> ds.Dataset:
    """Upload the model set once (the claims that read models share it)."""
    if run.dataset is not None:
        return run.dataset
    data = ds.build(run.workdir, run.profile.sizes(), run.name)
    run.dataset = data
    if progress:
        progress(f"uploading {len(data.models)} models ({human_bytes(data.total_bytes)})")
    done = [0]
    lock = threading.Lock()

    def one(model: ds.ModelFile) -> None:
        try:
            with run.api() as api:
                uploaded = run.upload(model.path, model.name, api=api)
        except EfsctlError as exc:
            model.error = exc.message
            return
        finally:
            with lock:
                done[0] += 1
                if progress:
                    progress(f"{done[0]}/{len(data.models)} uploads ({human_bytes(data.total_bytes)} in all)",
                             log=done[0] == len(data.models))
        model.uploaded_s = uploaded.uploaded_s
        wait = uploaded.wait
        model.on_efs = bool(wait and wait.on_efs)
        model.latency_s = wait.latency_s if wait else None
        if wait and not wait.on_efs:
            model.error, model.reason = wait.error, wait.reason

    with ThreadPoolExecutor(max_workers=run.profile.parallel_uploads, thread_name_prefix="validate-upload") as pool:
        list(pool.map(one, data.models))
    return data


def claim(run: Run, progress=None) -> ClaimResult:
    data = seed(run, progress)
    latencies = [m.latency_s for m in data.arrived if m.latency_s is not None]
    lat = summarize(latencies)
    sizes = [m.size for m in data.models]
    per_model = [{"name": short(m.name, run), "size": m.size, "format": m.format, "sha256": m.sha256,
                  "on_efs": m.on_efs, "upload_s": None if m.uploaded_s is None else round(m.uploaded_s, 3),
                  "s3_to_efs_s": None if m.latency_s is None else round(m.latency_s, 3),
                  **({"error": m.error} if m.error else {})} for m in data.models]
    measurements = {"uploads": len(data.models), "bytes": data.total_bytes, "arrived": len(data.arrived),
                    "s3_to_efs_s": lat, "poll_s": FINE_POLL.floor, "models": per_model}
    span = f"{human_bytes(min(sizes))}–{human_bytes(max(sizes))}" if sizes else "none"
    ok = bool(data.models) and len(data.arrived) == len(data.models)
    figures = (f"S3→EFS p50 {lat['p50']:.2f} s, p90 {lat['p90']:.2f} s, max {lat['max']:.2f} s"
               if latencies else "no latency measured")
    summary = (f"{len(data.arrived)}/{len(data.models)} uploads ({span}, {human_bytes(data.total_bytes)}) "
               f"on EFS with their sha256; {figures}")
    reason = None if ok else failure_reason(run, data)
    return result(1, ok, summary, reason, measurements=measurements,
                  samples={"s3_to_efs_s": latencies, "sizes": [m.size for m in data.arrived]})


def failure_reason(run: Run, data: ds.Dataset) -> str:
    missing = [m for m in data.models if not m.on_efs]
    example = missing[0]
    what = f"{len(missing)} of {len(data.models)} uploads did not reach EFS"
    cause = diagnose_producer(run)
    if cause:
        return f"{what}: {cause}"
    return f"{what}; {short(example.name, run)}: {example.error or 'no reason given'}"


def diagnose_producer(run: Run) -> str | None:
    """Why the producer copies nothing, when its configuration says so (else ``None``)."""
    from efsctl.aws import lambda_, s3

    name = run.target.functions.get("producer")
    try:
        reserved = lambda_.reserved_concurrency(run.aws, name)
    except EfsctlError:
        reserved = None
    if reserved == 0:
        return (f"the producer {name} is stopped (its reserved concurrency is 0, so Lambda throttles every S3 event "
                "and nothing is copied); remove the limit (`aws lambda delete-function-concurrency`) to start it")
    try:
        config = s3.notification_configuration(run.aws, run.target.bucket)
    except EfsctlError:
        return None
    targets = [c for c in config.get("LambdaFunctionConfigurations", [])
               if str(c.get("LambdaFunctionArn", "")).endswith(f":function:{name}")]
    if not targets:
        return (f"the bucket {run.target.bucket} sends no events to the producer {name}; "
                "`efsctl up` puts the notification back")
    return None
