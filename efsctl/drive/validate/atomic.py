"""Claim 4, atomic operations: a reader sees one whole version or another, never a mix.

One name is uploaded, then overwritten round after round with two alternating contents of the
same size, then by two uploads of two more contents at the same moment. Readers predict it with
``verify`` the whole time, so each answer is the SHA-256 of every byte the consumer read. A torn
read is any answer whose SHA-256 is none of the versions written, or the consumer's own finding
that the bytes changed under it (``IntegrityError``: they hash otherwise than the producer
installed; ``ModelChanging``: the file changed while it was read). With the producer's
write-to-temp-and-rename neither can happen. At the end the file on EFS must be the last writer's
by S3's order: the version S3 holds now (its ``x-amz-meta-sha256``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from efsctl.drive.api import ApiError
from efsctl.drive.validate import dataset as ds
from efsctl.drive.upload import wait_on_efs
from efsctl.drive.validate.core import FINE_POLL, ClaimResult, Run, result, summarize
from efsctl.errors import EfsctlError

TORN_CODES = {"IntegrityError": "hashed otherwise than installed", "ModelChanging": "changed while read"}


class Readers:
    """``count`` threads predicting ``name`` with verify until stopped; every answer classified."""

    def __init__(self, run: Run, name: str, versions: dict[str, str], count: int) -> None:
        self.run, self.name, self.versions, self.count = run, name, versions, count
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.by_version: Counter = Counter()
        self.torn: Counter = Counter()
        self.torn_examples: list[dict] = []
        self.errors: Counter = Counter()
        self.reads = 0
        self.latencies_ms: list[float] = []
        self._threads = [threading.Thread(target=self._loop, name=f"validate-reader-{i}", daemon=True)
                         for i in range(count)]

    def __enter__(self) -> "Readers":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join()

    def _loop(self) -> None:
        with self.run.api() as api:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    body = self.run.predict(api, self.name, verify=True)
                except ApiError as exc:
                    self._error(exc)
                    continue
                sha256 = body.get("sha256")
                with self.lock:
                    self.reads += 1
                    self.latencies_ms.append((time.perf_counter() - started) * 1000.0)
                    if sha256 in self.versions:
                        self.by_version[self.versions[sha256]] += 1
                    else:
                        self._tear("a sha256 of no version written", sha256)

    def _error(self, exc: ApiError) -> None:
        with self.lock:
            self.reads += 1
            if exc.code in TORN_CODES:
                detail = (exc.body or {}).get("error", {}) if isinstance(exc.body, dict) else {}
                self._tear(TORN_CODES[exc.code], detail.get("actual_sha256"))
            else:
                self.errors[exc.message] += 1

    def _tear(self, kind: str, sha256: str | None) -> None:
        self.torn[kind] += 1
        if len(self.torn_examples) < 5:
            self.torn_examples.append({"kind": kind, "sha256": sha256})


def claim(run: Run, progress=None) -> ClaimResult:
    profile = run.profile
    name = run.name("atomic/model.bin")
    files = {}
    for label in ("A", "B", "C", "D"):
        path = run.workdir / f"atomic-{label}.bin"
        files[label] = (path, ds.random_file(path, profile.atomic_size))
    versions = {sha: label for label, (_, sha) in files.items()}
    rounds: list[dict] = []

    def put(label: str, api) -> dict:
        path, sha = files[label]
        uploaded = run.upload(path, name, api=api)
        wait = uploaded.wait
        return {"version": label, "on_efs": bool(wait and wait.on_efs),
                "s3_to_efs_s": None if not wait or wait.latency_s is None else round(wait.latency_s, 3),
                **({"error": wait.error} if wait and wait.error else {})}

    with run.api() as api:
        first = put("A", api)
        if not first["on_efs"]:
            return result(4, False, "the first version never reached EFS",
                          f"the first version of {name} did not reach EFS: {first.get('error')}",
                          measurements={"rounds": [first]})
        with Readers(run, name, versions, profile.atomic_readers) as readers:
            for index in range(profile.atomic_rounds):
                if progress:
                    progress(f"round {index + 1}/{profile.atomic_rounds}, {readers.reads} reads so far", log=index == 0)
                rounds.append(put("B" if index % 2 == 0 else "A", api))
            if progress:
                progress(f"two uploads at once, {readers.reads} reads so far")
            final = _concurrent_pair(run, name, files, api)
            _settle(readers, profile.settle_s, run)
        on_efs = _current_on_efs(api, name)
    if on_efs in versions:
        run.extra_models[name] = (on_efs, profile.atomic_size)  # what claim 5 reads back too
    torn = sum(readers.torn.values())
    measurements = {"name": name[len(run.folder):], "version_size": profile.atomic_size,
                    "rounds": rounds, "concurrent": final, "reads": readers.reads, "readers": profile.atomic_readers,
                    "reads_by_version": {label: readers.by_version.get(label, 0) for label in files},
                    "torn_reads": torn, "torn_by_kind": dict(readers.torn), "torn_examples": readers.torn_examples,
                    "errors": dict(readers.errors), "verify_ms": summarize(readers.latencies_ms, 2),
                    "final_on_efs": versions.get(on_efs, on_efs),
                    "last_writer_by_s3": final.get("s3_current")}
    failed_rounds = [r for r in rounds if not r["on_efs"]]
    right_final = final.get("s3_current") is not None and versions.get(on_efs) == final.get("s3_current")
    ok = torn == 0 and not readers.errors and not failed_rounds and final.get("on_efs") and right_final
    summary = (f"{readers.reads} verified reads over {len(rounds) + 1} versions and a concurrent pair: "
               f"{torn} torn; final file is {measurements['final_on_efs']}, S3's last writer is "
               f"{final.get('s3_current')}")
    reason = None
    if torn:
        kinds = ", ".join(f"{n} {k}" for k, n in readers.torn.most_common())
        reason = f"{torn} of {readers.reads} reads were torn ({kinds})"
    elif readers.errors:
        message, count = readers.errors.most_common(1)[0]
        reason = f"{sum(readers.errors.values())} reads failed ({count} × {message})"
    elif failed_rounds:
        reason = f"version {failed_rounds[0]['version']} did not reach EFS: {failed_rounds[0].get('error')}"
    elif not final.get("on_efs"):
        reason = f"after two concurrent uploads, S3's last writer never reached EFS: {final.get('error')}"
    elif not right_final:
        reason = (f"the file on EFS is {measurements['final_on_efs']}, but S3's last writer is "
                  f"{final.get('s3_current')}")
    return result(4, bool(ok), summary, reason, measurements=measurements,
                  samples={"verify_ms": readers.latencies_ms})


def _concurrent_pair(run: Run, name: str, files: dict, api) -> dict:
    """Upload C and D at the same moment; then wait for whichever S3 kept last."""
    from efsctl.aws.s3 import head_object
    from efsctl.drive.upload import upload_model
    from efsctl.drive.validate.core import QuietConsole

    barrier = threading.Barrier(2)

    def go(label: str):
        barrier.wait()
        return upload_model(run.aws, run.target, files[label][0], name, console=QuietConsole())

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="validate-pair") as pool:
        uploads = list(pool.map(go, ("C", "D")))
    head = head_object(run.aws, run.target.bucket, uploads[0].key) or {}
    current = ((head.get("Metadata") or {}).get("sha256") or "").lower()
    label = {sha: lbl for lbl, (_, sha) in files.items()}.get(current)
    doc = {"versions": ["C", "D"], "s3_current": label}
    if label is None:
        return {**doc, "on_efs": False, "error": "S3 holds neither of the two uploads"}
    wait = wait_on_efs(api, name, current, timeout=run.timeout, clock=run.clock, poll=FINE_POLL)
    return {**doc, "on_efs": wait.on_efs, "s3_to_efs_s": wait.latency_s, **({"error": wait.error} if wait.error else {})}


def _settle(readers: Readers, seconds: float, run: Run) -> None:
    """Keep reading a little after the last version landed: a late event for the losing upload
    would show here (the producer must skip it as stale)."""
    deadline = run.clock.now() + seconds
    while run.clock.now() < deadline and not readers.stop.is_set():
        run.clock.sleep(min(0.1, max(0.0, deadline - run.clock.now())))


def _current_on_efs(api, name: str) -> str | None:
    try:
        body = api.get_model(name).body
    except EfsctlError:
        return None
    return body.get("sha256") if isinstance(body, dict) else None
