"""``efsctl predict``: one signed ``POST /predict``, or a load run of many.

A load run sends ``requests`` calls through ``concurrency`` threads sharing one keep-alive
pool and reports client-side latency percentiles (nearest rank), the maximum, throughput
(successful calls per second of wall time) and the error count.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from efsctl.drive.api import ApiClient, ApiError
from efsctl.drive.fmt import ms
from efsctl.units import human_bytes

Timer = Callable[[], float]
# How the analysis was done rather than what it found; the raw JSON still has them.
HIGHLIGHT_SKIP = {"entropy_bits_per_byte", "sample_bytes", "header_bytes"}


@dataclass
class Prediction:
    body: dict[str, Any]
    round_trip_ms: float


def predict_once(api: ApiClient, name: str, verify: bool = False) -> Prediction:
    response = api.predict(name, verify)
    return Prediction(response.body if isinstance(response.body, dict) else {}, response.elapsed_ms)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (``None`` when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadResult:
    requests: int
    concurrency: int
    latencies_ms: list[float]
    errors: int
    wall_s: float
    error_messages: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    def stats(self) -> dict[str, float | None]:
        values = sorted(self.latencies_ms)
        rnd = lambda v: None if v is None else round(v, 2)  # noqa: E731
        return {"p50_ms": rnd(percentile(values, 50)), "p90_ms": rnd(percentile(values, 90)),
                "p99_ms": rnd(percentile(values, 99)), "max_ms": rnd(values[-1] if values else None),
                "rps": round(self.ok / self.wall_s, 2) if self.wall_s > 0 else None}

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"requests": self.requests, "concurrency": self.concurrency}
        doc.update(self.stats())
        doc["errors"] = self.errors
        doc["wall_s"] = round(self.wall_s, 3)
        if self.error_messages:
            doc["error_messages"] = dict(self.error_messages.most_common(5))
        return doc


Progress = Callable[[int, int, "float | None"], None]
"""``progress(done, errors, p50_ms so far)``."""
PROGRESS_EVERY = 0.25   # seconds between progress reports (a p50 costs a sort of what is done)


def run_load(api: ApiClient, name: str, *, verify: bool = False, concurrency: int = 4, requests: int = 100,
             timer: Timer = time.perf_counter, call: Callable[[], Any] | None = None,
             progress: Progress | None = None) -> LoadResult:
    """Send ``requests`` predict calls, ``concurrency`` at a time; never raises for API errors."""
    call = call or (lambda: api.predict(name, verify))
    lock = threading.Lock()
    seen: list[float] = []
    counts = {"done": 0, "errors": 0, "reported": time.monotonic()}   # (throttling only: not `timer`)

    def report(elapsed_ms: float | None) -> None:
        with lock:
            counts["done"] += 1
            if elapsed_ms is None:
                counts["errors"] += 1
            else:
                seen.append(elapsed_ms)
            due = counts["done"] == requests or time.monotonic() - counts["reported"] >= PROGRESS_EVERY
            if not (progress and due):
                return
            counts["reported"] = time.monotonic()
            # the live p50 is over the latest 10,000 answers: sorting a million each time would not be
            done, errors, latencies = counts["done"], counts["errors"], sorted(seen[-10_000:])
        progress(done, errors, percentile(latencies, 50))

    def one(_: int) -> tuple[float | None, str | None]:
        start = timer()
        error = None
        try:
            call()
        except ApiError as exc:
            error = exc.message
        elapsed_ms = (timer() - start) * 1000.0
        report(None if error else elapsed_ms)
        return (None, error) if error else (elapsed_ms, None)

    start = timer()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="predict") as pool:
        results = list(pool.map(one, range(requests)))
    wall = timer() - start
    latencies = [r[0] for r in results if r[0] is not None]
    messages = Counter(r[1] for r in results if r[1] is not None)
    return LoadResult(requests=requests, concurrency=concurrency, latencies_ms=latencies,
                      errors=sum(messages.values()), wall_s=wall, error_messages=messages)


# -- human rendering ---------------------------------------------------------------------

def analysis_highlights(analysis: Any) -> str:
    """``2 tensors, F32×2, 262,144 parameters, entropy 7.90 bits/byte``-style summary."""
    if not isinstance(analysis, dict):
        return ""
    parts: list[str] = []
    if analysis.get("valid") is False or (analysis.get("error") and "valid" not in analysis):
        parts.append(f"{'INVALID' if analysis.get('valid') is False else 'not analysed'}: {analysis.get('error')}")
    for key, value in analysis.items():
        if key in HIGHLIGHT_SKIP or key in ("valid", "error") or value is None or value == {} or value == []:
            continue
        if key == "dtypes" and isinstance(value, dict):
            parts.append(", ".join(f"{k}×{v}" for k, v in value.items()))
        elif isinstance(value, bool):
            parts.append(f"{key.replace('_', ' ')}" if value else f"not {key.replace('_', ' ')}")
        elif isinstance(value, int):
            parts.append(f"{value:,} {key.replace('_', ' ')}")
        elif isinstance(value, (str, float)):
            parts.append(f"{key.replace('_', ' ')} {value}")
        elif isinstance(value, list) and len(value) <= 8 and all(isinstance(v, (int, str)) for v in value):
            parts.append(f"{key.replace('_', ' ')} {value}")
    entropy = analysis.get("entropy_bits_per_byte")
    if isinstance(entropy, (int, float)):
        parts.append(f"entropy {entropy:.2f} bits/byte")
    return ", ".join(parts)


def summary_rows(prediction: Prediction, bucket: str | None = None) -> list[tuple[str, str]]:
    body = prediction.body
    output = body.get("output") or {}
    where = [output.get("efs_path") or ""]
    if output.get("s3_key"):
        where.append(f"s3://{bucket}/{output['s3_key']}" if bucket else output["s3_key"])
    size = body.get("size")
    rows = [
        ("model", str(body.get("model", ""))),
        ("size", f"{human_bytes(size)} ({size:,} bytes)" if isinstance(size, int) else str(size)),
        ("sha256", str(body.get("sha256", ""))),
        ("format", str(body.get("format", ""))),
        ("analysis", analysis_highlights(body.get("analysis"))),
        ("cached", "yes" if body.get("cached") else "no"),
        ("output", "  ".join(w for w in where if w)),
        ("latency", f"{ms(body.get('duration_ms'))} in the function, {ms(prediction.round_trip_ms)} round trip"),
        ("request id", str(body.get("request_id", ""))),
    ]
    return rows


def load_rows(result: LoadResult) -> list[tuple[str, str]]:
    s = result.stats()
    fmt = lambda v: "-" if v is None else f"{v:.1f} ms"  # noqa: E731
    rows = [("requests", f"{result.requests} ({result.concurrency} concurrent)"),
            ("latency", f"p50 {fmt(s['p50_ms'])}  p90 {fmt(s['p90_ms'])}  p99 {fmt(s['p99_ms'])}  "
                        f"max {fmt(s['max_ms'])}"),
            ("throughput", "-" if s["rps"] is None else f"{s['rps']:.1f} requests/s"),
            ("errors", str(result.errors))]
    for message, count in result.error_messages.most_common(3):
        rows.append(("", f"{count} × {message}"))
    return rows
