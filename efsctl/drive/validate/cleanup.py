"""Removing what a validation wrote: its models and the results of its predictions, in S3 and on EFS.

S3 first (every version of the objects under ``models/efsctl-validate/<run>/`` and of the result
objects its predictions wrote), so a late event for one of its uploads finds nothing to copy;
then EFS, through the producer (the only one of efsctl's parts that reaches the file system from
outside the VPC), invoked directly with a removal request it accepts only for a validation run's
folder and for results of predictions on it (``lambda_code/efs_scratch.py``). Finally
``GET /models`` must list nothing of the run.
"""

from __future__ import annotations

from typing import Any

from efsctl.drive.models import fetch_listing
from efsctl.drive.validate.core import Run
from efsctl.errors import EfsctlError

EVENT = "remove-validation-data"
BATCH = 2000            # names or outputs per invocation: far below Lambda's 6 MB request limit


def cleanup(run: Run, *, scan_outputs: bool = False) -> dict[str, Any]:
    """Remove the run's models and results; ``scan_outputs``: look at every result on EFS for the
    run's (a run whose list of results is not known here: ``efsctl validate --remove RUN``)."""
    from efsctl.aws import lambda_, s3

    written = run.written
    keys = sorted(k for k in written.outputs if not k.startswith("(efs only)"))
    objects, nbytes = s3.delete_objects(run.aws, run.target.bucket, prefix=f"models/{run.folder}", keys=keys)
    doc: dict[str, Any] = {"s3": {"objects": objects, "bytes": nbytes},
                           "efs": {"models": 0, "bytes": 0, "records": 0, "outputs": 0, "folders": 0}, "kept": []}
    names, outputs = sorted(written.names), sorted(set(written.outputs.values()))
    producer = run.target.functions["producer"]
    try:
        stopped = lambda_.reserved_concurrency(run.aws, producer) == 0
    except EfsctlError:   # (lambda:GetFunctionConcurrency denied): ask the producer; a refusal says why
        stopped = False
    if stopped:
        # A stopped producer cannot be asked (Lambda throttles the call), and it copied nothing to
        # EFS either: only results of predictions could be there.
        doc["efs"]["skipped"] = f"the producer {producer} is stopped (reserved concurrency 0)"
        doc["left_on_efs"] = leftovers(run)
        if doc["left_on_efs"] or outputs:
            raise EfsctlError(f"The producer {producer} is stopped (reserved concurrency 0), so the run's data on "
                              f"EFS stays under models/{run.folder} and in outputs/.",
                              f"Start the producer again, then run `efsctl validate --remove {run.run_id}`.")
        return doc
    found_outputs: list[str] = []
    for start in range(0, max(len(names), len(outputs), 1), BATCH):
        request = {"efsctl": EVENT, "run": run.run_id, "names": names[start:start + BATCH],
                   "outputs": outputs[start:start + BATCH], "scan_outputs": scan_outputs and start == 0}
        answer = lambda_.invoke(run.aws, producer, request)
        if not isinstance(answer, dict) or "removed" not in answer:
            error = (answer or {}).get("error") if isinstance(answer, dict) else None
            raise EfsctlError(f"The producer did not remove the validation data from EFS: "
                              f"{(error or {}).get('message') or answer!r}.",
                              "Deploy the current handlers with `efsctl up`, then run "
                              f"`efsctl validate --remove {run.run_id}`.")
        for key, value in answer["removed"].items():
            doc["efs"][key] = doc["efs"].get(key, 0) + int(value)
        doc["kept"] += answer.get("kept") or []
        found_outputs += answer.get("removed_outputs") or []
    if scan_outputs and found_outputs:   # their S3 copies have the same names
        more, more_bytes = s3.delete_objects(run.aws, run.target.bucket, keys=[f"outputs/{n}" for n in found_outputs])
        doc["s3"]["objects"] += more
        doc["s3"]["bytes"] += more_bytes
    doc["left_on_efs"] = leftovers(run)
    return doc


def leftovers(run: Run) -> list[str] | None:
    """The run's models ``GET /models`` still lists (none, after a cleanup; None: not known)."""
    try:
        with run.api() as api:
            listing = fetch_listing(api)
    except EfsctlError:
        return None
    return sorted(m["name"] for m in listing.models if str(m.get("name", "")).startswith(run.folder))
