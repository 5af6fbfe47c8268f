"""Claim 2, shared state over a REST API: the consumer serves the bytes the producer wrote.

For every model of the set, a signed ``POST /predict`` with ``verify`` makes the consumer hash
the whole file it reads from EFS; its answer must carry the uploader's SHA-256 and size. Then
``GET /models`` must list every one of them with that SHA-256.
"""

from __future__ import annotations

from collections import Counter

from efsctl.drive.api import ApiError
from efsctl.drive.models import fetch_listing
from efsctl.drive.validate.core import ClaimResult, Run, result, short, summarize
from efsctl.drive.validate.events import seed
from efsctl.errors import EfsctlError
from efsctl.units import human_bytes, human_rate


def read_back(run: Run, models: dict[str, tuple[str, int]], api, progress=None) -> dict:
    """Predict every ``name -> (sha256, size)`` with verify; what matched, what did not, and why."""
    matched, wrong, errors = [], [], Counter()
    durations_ms, sizes, answers = [], [], []
    for index, (name, (sha256, size)) in enumerate(sorted(models.items()), 1):
        if progress:
            progress(f"reading back {index}/{len(models)}", log=index == 1)
        try:
            body = run.predict(api, name, verify=True)
        except ApiError as exc:
            errors[exc.message] += 1
            continue
        answers.append(body)
        if body.get("sha256") == sha256 and body.get("size") == size:
            matched.append(name)
            if isinstance(body.get("duration_ms"), (int, float)):
                durations_ms.append(float(body["duration_ms"]))
                sizes.append(size)
        else:
            wrong.append({"name": short(name, run), "expected_sha256": sha256, "sha256": body.get("sha256"),
                          "expected_size": size, "size": body.get("size")})
    return {"matched": matched, "wrong": wrong, "errors": errors, "durations_ms": durations_ms, "sizes": sizes,
            "answers": answers}


def listing_check(api, models: dict[str, tuple[str, int]]) -> dict:
    """Which of ``models`` ``GET /models`` lists with their SHA-256 (and size)."""
    try:
        listed = {m.get("name"): m for m in fetch_listing(api).models}
    except EfsctlError as exc:
        return {"listed": 0, "missing": sorted(models), "differ": [], "error": exc.message}
    missing = sorted(n for n in models if n not in listed)
    differ = sorted(n for n, (sha, size) in models.items()
                    if n in listed and (listed[n].get("sha256") != sha or listed[n].get("size") != size))
    return {"listed": len(models) - len(missing) - len(differ), "missing": missing, "differ": differ}


def claim(run: Run, progress=None) -> ClaimResult:
    data = seed(run, progress)
    models = {m.name: (m.sha256, m.size) for m in data.models}
    with run.api() as api:
        back = read_back(run, models, api, progress)
        listing = listing_check(api, models)
    hashed = sum(back["sizes"])
    seconds = sum(back["durations_ms"]) / 1000.0
    rate = hashed / seconds if seconds > 0 else None
    formats = Counter(str(a.get("format")) for a in back["answers"])
    measurements = {"models": len(models), "matched": len(back["matched"]), "wrong": back["wrong"],
                    "errors": dict(back["errors"]), "listed": listing["listed"],
                    "not_listed": [short(n, run) for n in listing["missing"]],
                    "listed_differently": [short(n, run) for n in listing["differ"]],
                    "bytes_hashed_by_consumer": hashed, "consumer_read_rate_bytes_s": round(rate) if rate else None,
                    "predict_duration_ms": summarize(back["durations_ms"], 2), "formats": dict(formats)}
    if listing.get("error"):
        measurements["listing_error"] = listing["error"]
    ok = (len(back["matched"]) == len(models) > 0 and listing["listed"] == len(models))
    summary = (f"{len(back['matched'])}/{len(models)} answers carry the producer's sha256 "
               f"({human_bytes(hashed)} re-hashed at {human_rate(rate)}); GET /models lists {listing['listed']}/{len(models)}")
    return result(2, ok, summary, None if ok else _reason(run, back, listing, len(models)),
                  measurements=measurements)


def _reason(run: Run, back: dict, listing: dict, total: int) -> str:
    if back["errors"]:
        message, count = back["errors"].most_common(1)[0]
        return f"the consumer failed {sum(back['errors'].values())} of {total} predictions ({count} × {message})"
    if back["wrong"]:
        first = back["wrong"][0]
        return (f"{len(back['wrong'])} of {total} answers differ from what was uploaded, e.g. {first['name']}: "
                f"sha256 {first['sha256']} instead of {first['expected_sha256']}")
    if listing.get("error"):
        return f"GET /models failed: {listing['error']}"
    gone = listing["missing"] + listing["differ"]
    return f"GET /models does not list {len(gone)} of {total} models as uploaded, e.g. {short(gone[0], run)}"
