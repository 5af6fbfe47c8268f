"""What every experiment shares: the run (stack, API, names, what was written) and its result type.

An experiment is a plain function ``claim(run) -> ClaimResult`` over the drive API: it uploads
with :func:`efsctl.drive.upload.upload_model`, waits with :func:`~efsctl.drive.upload.wait_on_efs`
and predicts through :meth:`Run.predict` (the signed client every command uses), so what it
proves is what the commands do. Everything it writes is named under the run's folder
(``efsctl-validate/<run>/``) and recorded in :class:`Written`, which is how the cleanup finds it.
"""

from __future__ import annotations

import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from efsctl.drive.names import RESERVED_PREFIX
from efsctl.drive.predict import percentile
from efsctl.waits import Clock, Poll

if TYPE_CHECKING:
    from efsctl.drive.api import ApiClient
    from efsctl.drive.target import DriveTarget
    from efsctl.drive.validate.dataset import Dataset, Profile

PASS, FAIL, SKIP = "pass", "fail", "not measured"
# How often a validation asks whether an upload is on EFS: the S3 -> EFS latency is measured to
# within this (upload --wait polls more gently; here the figure is the point).
FINE_POLL = Poll(floor=0.05, ceiling=0.5, fraction=0.05)


@dataclass(frozen=True)
class Claim:
    number: int
    key: str
    title: str
    needs_models: bool   # uses the uploaded model set (claim 1's uploads)


CLAIMS = (
    Claim(1, "events", "Event-driven", True),
    Claim(2, "api", "Shared state over a REST API", True),
    Claim(3, "concurrency", "Concurrent access", True),
    Claim(4, "atomic", "Atomic operations", False),
    Claim(5, "persistence", "Persistence", True),
    Claim(6, "privilege", "Least privilege", False),
)
BY_NUMBER = {c.number: c for c in CLAIMS}


@dataclass
class ClaimResult:
    claim: Claim
    verdict: str
    summary: str                           # one line of figures, for the table
    reason: str | None = None              # why it failed, or why it was not measured
    measurements: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    samples: dict[str, list[float]] = field(default_factory=dict, repr=False)  # raw figures, for the report

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim.number, "key": self.claim.key, "title": self.claim.title,
                "verdict": self.verdict, "summary": self.summary, "reason": self.reason,
                "measurements": self.measurements, "notes": self.notes, "seconds": round(self.seconds, 3)}


def result(claim: int, ok: bool, summary: str, reason: str | None = None, **extra: Any) -> ClaimResult:
    return ClaimResult(BY_NUMBER[claim], PASS if ok else FAIL, summary, None if ok else reason, **extra)


def summarize(values: list[float], digits: int = 3) -> dict[str, Any]:
    """count, min, mean, p50, p90, p99, max of ``values`` (nearest rank), rounded."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}
    rnd = lambda v: round(v, digits)  # noqa: E731
    return {"count": len(ordered), "min": rnd(ordered[0]), "mean": rnd(sum(ordered) / len(ordered)),
            "p50": rnd(percentile(ordered, 50)), "p90": rnd(percentile(ordered, 90)),
            "p99": rnd(percentile(ordered, 99)), "max": rnd(ordered[-1])}


class Written:
    """What this run put in S3 and on EFS, thread-safe: the cleanup removes exactly this."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.names: set[str] = set()
        self.outputs: dict[str, str] = {}   # S3 key -> EFS file name (outputs/<unique>.json)
        self.request_ids: list[str] = []

    def name(self, name: str) -> None:
        with self._lock:
            self.names.add(name)

    def prediction(self, body: Any) -> None:
        if not isinstance(body, dict):
            return
        output = body.get("output") or {}
        key, path = output.get("s3_key"), output.get("efs_path")
        with self._lock:
            if isinstance(key, str) or isinstance(path, str):
                filename = (path or key or "").rsplit("/", 1)[-1]
                self.outputs[key or f"(efs only) {filename}"] = filename
            if isinstance(body.get("request_id"), str):
                self.request_ids.append(body["request_id"])


class QuietConsole:
    """What :func:`upload_model` prints, swallowed: a validation shows one live line per claim."""

    def line(self, *_: Any, **__: Any) -> None:
        pass

    @contextmanager
    def transfer(self, total: int, description: str) -> Iterator[Callable[[int], None]]:
        yield lambda n: None


@dataclass
class Stack:
    """What the experiments need from the stack and the use cases (the command layer fills it in).

    ``restart_cloud``: stops and starts the local cloud, returning ``(aws, target)`` anew, or
    ``None`` where there is nothing to restart (AWS), ``restart_note`` saying why. ``iam_report``: the
    local cloud's least-privilege report (``None`` on AWS)."""

    aws: Any
    target: "DriveTarget"
    api_client: Callable[[Any, "DriveTarget", int], "ApiClient"]
    iam_report: Callable[[], dict[str, Any] | None] = lambda: None
    restart_cloud: Callable[[], tuple[Any, "DriveTarget"]] | None = None
    restart_note: str | None = None


@dataclass
class Run:
    """One validation: the stack, the options, the data set, and what has been written so far."""

    stack: Stack
    console: Any
    profile: "Profile"
    workdir: Path
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-"
                        + secrets.token_hex(3))
    clock: Clock = field(default_factory=Clock)
    timeout: float = 120.0
    written: Written = field(default_factory=Written)
    dataset: "Dataset | None" = None
    extra_models: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (sha256, size) left on EFS
    iam_before: dict[str, Any] | None = None
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def folder(self) -> str:
        return f"{RESERVED_PREFIX}{self.run_id}/"

    def name(self, relative: str) -> str:
        return self.folder + relative

    @property
    def aws(self) -> Any:
        return self.stack.aws

    @property
    def target(self) -> "DriveTarget":
        return self.stack.target

    def api(self, connections: int = 4) -> "ApiClient":
        return self.stack.api_client(self.stack.aws, self.stack.target, connections)

    def predict(self, api: "ApiClient", name: str, verify: bool = False) -> dict[str, Any]:
        """One signed ``POST /predict``; its output is recorded for the cleanup."""
        from efsctl.drive.predict import predict_once

        body = predict_once(api, name, verify).body
        self.written.prediction(body)
        return body

    def upload(self, path: Path, name: str, *, wait: bool = True, api: "ApiClient | None" = None):
        """Upload ``path`` as ``name`` (recorded first, so even a failed upload is cleaned up), and
        wait until the consumer sees it on EFS; returns the :class:`UploadResult`."""
        from efsctl.drive.upload import upload_model, wait_on_efs

        self.written.name(name)
        uploaded = upload_model(self.aws, self.target, path, name, console=QuietConsole())
        if wait:
            own = api is None
            api = api or self.api()
            try:
                uploaded.wait = wait_on_efs(api, name, uploaded.sha256, etag=uploaded.etag,
                                            stored_at=uploaded.stored_at, timeout=self.timeout, clock=self.clock,
                                            poll=FINE_POLL)
            finally:
                if own:
                    api.close()
        return uploaded


def short(name: str, run: Run) -> str:
    """A model name without the run's folder, for tables."""
    return name[len(run.folder):] if name.startswith(run.folder) else name


RUN_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"   # what the producer's removal accepts (lambda_code/efs_scratch.py)


def check_run_id(text: str) -> str:
    import re

    from efsctl.errors import ConfigError

    if not re.match(RUN_ID, text or ""):
        raise ConfigError(f"{text!r} is not a validation run id.",
                          "A run id looks like 20260101-120000-3a9f1c: `efsctl validate --json` prints it as `run`.")
    return text


def parse_claims(text: str | None) -> tuple[int, ...]:
    """``1,3`` or ``events,atomic`` (numbers or keys, any order) -> claim numbers; None: all."""
    from efsctl.errors import ConfigError

    if text is None:
        return tuple(c.number for c in CLAIMS)
    keys = {c.key: c.number for c in CLAIMS}
    chosen = []
    for part in (p.strip().lower() for p in text.split(",")):
        number = int(part) if part.isdigit() else keys.get(part)
        if number not in BY_NUMBER:
            raise ConfigError(f"There is no claim {part!r}.",
                              "Give claim numbers 1-6 or names (" + ", ".join(keys) + "), comma-separated.")
        chosen.append(number)
    if not chosen:
        raise ConfigError("--claims names no claim.", "Give claim numbers 1-6, comma-separated.")
    return tuple(sorted(set(chosen)))
