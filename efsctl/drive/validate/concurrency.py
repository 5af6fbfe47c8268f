"""Claim 3, concurrent access: many readers and a writer at once, and no error.

At each concurrency level (1, 2, 4, 8, 16) :func:`~efsctl.drive.predict.run_load` sends signed
predicts over every model of the set in turn, while a background thread keeps uploading new
models and waiting for each on EFS. Every predict and every upload must succeed. The figures
are the latency percentiles and the throughput per level, and the scaling curve: throughput
relative to one client, and the level from which it stops growing (the first that reaches 90 %
of the best throughput measured).
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter

from efsctl.drive.predict import run_load
from efsctl.drive.validate import dataset as ds
from efsctl.drive.validate.core import ClaimResult, Run, result, summarize
from efsctl.drive.validate.events import seed
from efsctl.errors import EfsctlError

PLATEAU = 0.9   # a level within 10 % of the best throughput counts as the plateau


def saturation(levels: list[dict]) -> int | None:
    """The lowest concurrency whose throughput reaches ``PLATEAU`` of the best (None if none ran)."""
    measured = [lv for lv in levels if lv.get("rps")]
    if not measured:
        return None
    best = max(lv["rps"] for lv in measured)
    return next(lv["concurrency"] for lv in measured if lv["rps"] >= PLATEAU * best)


class BackgroundUploads:
    """Uploads one new model after another (each waited for on EFS, then a pause) until stopped."""

    PAUSE_S = 0.25   # a steady writer beside the readers, not a second load test

    def __init__(self, run: Run, size: int) -> None:
        self.run, self.size = run, size
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.failures: Counter = Counter()
        self.count = 0
        self._thread = threading.Thread(target=self._loop, name="validate-background-upload", daemon=True)

    def __enter__(self) -> "BackgroundUploads":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self._thread.join()

    def _loop(self) -> None:
        with self.run.api() as api:
            for index in itertools.count():
                # At least one upload overlaps the load, however short it is.
                if index > 0 and self.stop.wait(self.PAUSE_S):
                    return
                path = self.run.workdir / f"background-{index:03d}.bin"
                sha256 = ds.random_file(path, self.size)
                name = self.run.name(f"concurrent/{index:03d}.bin")
                self.count += 1
                try:
                    uploaded = self.run.upload(path, name, api=api)
                except EfsctlError as exc:
                    self.failures[exc.message] += 1
                    continue
                finally:
                    path.unlink(missing_ok=True)
                if uploaded.wait and uploaded.wait.on_efs:
                    self.latencies.append(uploaded.wait.latency_s or 0.0)
                    self.run.extra_models[name] = (sha256, self.size)
                else:
                    self.failures[(uploaded.wait.error if uploaded.wait else None) or "did not reach EFS"] += 1


def _rotating(run: Run, api, names: list[str]):
    """A predict call that takes the models in turn, safe to call from the load's threads."""
    cycle = itertools.cycle(names)
    lock = threading.Lock()

    def call():
        with lock:
            name = next(cycle)
        return run.predict(api, name)

    return call


def claim(run: Run, progress=None) -> ClaimResult:
    data = seed(run, progress)
    names = [m.name for m in data.arrived] or [m.name for m in data.models]
    levels, samples, errors = [], {}, Counter()
    with BackgroundUploads(run, run.profile.background_size) as background:
        for concurrency in run.profile.levels:
            if progress:
                progress(f"concurrency {concurrency}: {run.profile.requests_per_level} predicts over "
                         f"{len(names)} models, uploads running")
            requests = max(run.profile.requests_per_level, 2 * concurrency)
            with run.api(concurrency) as api:
                call = _rotating(run, api, names)
                # One request per client first, not timed: the environments a level needs start
                # cold once (seconds each), which would otherwise pass for the level's latency.
                warm = run_load(api, names[0], concurrency=concurrency, requests=concurrency, call=call)
                load = run_load(api, names[0], concurrency=concurrency, requests=requests, call=call)
            doc = load.to_dict()
            doc["warm_up"] = {"requests": warm.requests, "errors": warm.errors, "max_ms": warm.stats()["max_ms"]}
            levels.append(doc)
            samples[f"c{concurrency}"] = list(load.latencies_ms)
            errors.update(load.error_messages)
            errors.update(warm.error_messages)
    base = levels[0]["rps"] if levels and levels[0].get("rps") else None
    for level in levels:
        level["speedup"] = round(level["rps"] / base, 2) if base and level.get("rps") else None
    knee = saturation(levels)
    best = max((lv["rps"] for lv in levels if lv.get("rps")), default=None)
    total = sum(lv["requests"] + lv["warm_up"]["requests"] for lv in levels)
    failed = sum(lv["errors"] + lv["warm_up"]["errors"] for lv in levels)
    measurements = {"models": len(names), "levels": levels, "saturates_at": knee, "peak_rps": best,
                    "predicts": total, "errors": failed, "error_messages": dict(errors.most_common(5)),
                    "background_uploads": {"uploads": background.count, "on_efs": len(background.latencies),
                                           "failures": dict(background.failures),
                                           "s3_to_efs_s": summarize(background.latencies)}}
    ok = failed == 0 and not background.failures and background.latencies
    curve = " → ".join(f"{lv['rps']:.0f}" for lv in levels if lv.get("rps"))
    knee_text = (f"stops growing at {knee} ({next(lv['speedup'] for lv in levels if lv['concurrency'] == knee)}×)"
                 if knee and base else "no throughput measured")
    summary = (f"{total} predicts at {'/'.join(str(lv['concurrency']) for lv in levels)}, {failed} errors; "
               f"{curve} req/s, {knee_text}; {len(background.latencies)}/{background.count} uploads meanwhile on EFS")
    reason = None
    if failed:
        message, count = errors.most_common(1)[0]
        reason = f"{failed} of {total} predicts failed ({count} × {message})"
    elif background.failures:
        message, count = background.failures.most_common(1)[0]
        reason = f"{sum(background.failures.values())} of {background.count} uploads made meanwhile failed ({message})"
    elif not background.latencies:
        reason = "no upload reached EFS while the predicts ran"
    return result(3, bool(ok), summary, reason, measurements=measurements, samples=samples)
