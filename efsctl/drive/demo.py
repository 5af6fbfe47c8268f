"""``efsctl demo``: the whole round trip on a fresh local stack, step by step, timed.

The steps are up, a sample safetensors model, upload (waiting for EFS), predict, models,
logs, and down (unless ``keep``). Each prints its result and time; the run ends with a
summary and fails (exit 1) if any step failed. Creating and deleting the stack are passed
in as callables (the command layer runs ``up --local`` and ``down --yes`` in-process), so
this module stays below the command layer.
"""

from __future__ import annotations

import json
import random
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from efsctl.errors import EfsctlError
from efsctl.units import human_duration
from efsctl.waits import Clock, Outcome, Poll, wait_until

SAMPLE_NAME = "efsctl-demo.safetensors"
LOGS_POLL = Poll(floor=0.2, ceiling=1.0, fraction=0.1)
DEMO_LOG_LINES = 12
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


# -- the sample model --------------------------------------------------------------------

def safetensors_bytes(tensors: dict[str, tuple[str, list[int], bytes]],
                      metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file: 8-byte little-endian header length, JSON header (padded with
    spaces to 8 bytes), then the tensors' bytes back to back."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        expected = DTYPE_SIZES[dtype]
        for dim in shape:
            expected *= dim
        if expected != len(data):
            raise ValueError(f"tensor {name}: {len(data)} bytes for {dtype}{shape}, expected {expected}")
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(data for _, _, data in tensors.values())


def write_sample_model(path: Path, seed: int = 7) -> dict[str, Any]:
    """Write a small two-tensor F32 model (a 64x32 weight and a 64 bias) to ``path``."""
    rng = random.Random(seed)
    weight = [rng.gauss(0.0, 0.05) for _ in range(64 * 32)]
    bias = [rng.gauss(0.0, 0.01) for _ in range(64)]
    data = safetensors_bytes({"dense.weight": ("F32", [64, 32], struct.pack(f"<{len(weight)}f", *weight)),
                              "dense.bias": ("F32", [64], struct.pack(f"<{len(bias)}f", *bias))},
                             metadata={"format": "pt", "source": "efsctl demo"})
    path.write_bytes(data)
    return {"tensors": 2, "parameters": len(weight) + len(bias), "bytes": len(data)}


# -- steps -------------------------------------------------------------------------------

@dataclass
class StepResult:
    name: str
    ok: bool
    elapsed_s: float
    detail: str = ""


@dataclass
class DemoRun:
    """Runs named steps, prints each with its time, remembers the outcome."""

    console: Any
    timer: Callable[[], float] = time.monotonic
    steps: list[StepResult] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(not s.ok for s in self.steps)

    def step(self, name: str, run: Callable[[], str | None]) -> bool:
        """Run ``run`` (which returns a one-line detail); a raised error fails the step."""
        self.console.line("run", name)
        start = self.timer()
        try:
            detail = run() or ""
        except EfsctlError as exc:
            self._done(StepResult(name, False, self.timer() - start, exc.message))
            if exc.hint:
                self.console.info(f"  {exc.hint}")
            return False
        except Exception as exc:  # noqa: BLE001 - the demo reports and goes on to clean up
            self._done(StepResult(name, False, self.timer() - start, f"{type(exc).__name__}: {exc}"))
            return False
        self._done(StepResult(name, True, self.timer() - start, detail))
        return True

    def _done(self, result: StepResult) -> None:
        self.steps.append(result)
        self.console.line("ok" if result.ok else "fail", result.name, result.detail, result.elapsed_s)

    def summary(self) -> None:
        total = sum(s.elapsed_s for s in self.steps)
        rows = [("✓" if s.ok else "✗", s.name, f"{s.elapsed_s:.2f}s", s.detail) for s in self.steps]
        rows.append(("", "total", f"{total:.2f}s", "failed" if self.failed else "round trip complete"))
        self.console.table(["", "step", "time", "result"], rows, title="efsctl demo")


@dataclass
class DemoStack:
    """What the demo needs from the command layer."""

    up: Callable[[], None]
    down: Callable[[], None]
    connect: Callable[[], tuple[Any, Any]]  # -> (aws context, DriveTarget)


def run_demo(stack: DemoStack, console: Any, workdir: Path, *, keep: bool = False,
             clock: Clock | None = None, logs_timeout: float = 15.0) -> DemoRun:
    from efsctl.aws.logs_tail import LogsReader
    from efsctl.drive.logs import read_window, render
    from efsctl.drive.models import list_models, table_columns, table_rows
    from efsctl.drive.predict import predict_once, summary_rows
    from efsctl.drive.target import api_client
    from efsctl.drive.upload import upload_model, wait_on_efs

    clock = clock or Clock()
    run = DemoRun(console)
    started_ms = int(time.time() * 1000) - 1000
    facts: dict[str, Any] = {}
    path = workdir / SAMPLE_NAME

    def do_up() -> str:
        stack.up()
        facts["aws"], facts["target"] = stack.connect()
        return f"stack {facts['target'].stack} is up (local)"

    def do_sample() -> str:
        info = write_sample_model(path)
        return f"{path.name}: {info['tensors']} F32 tensors, {info['parameters']:,} parameters, {info['bytes']:,} bytes"

    def do_upload() -> str:
        aws, target = facts["aws"], facts["target"]
        result = upload_model(aws, target, path, SAMPLE_NAME, console=console)
        with api_client(target, aws) as api:
            result.wait = wait_on_efs(api, SAMPLE_NAME, result.sha256, clock=clock, progress=console.progress)
        if not result.wait.on_efs:
            raise EfsctlError(result.wait.error or "The model did not reach EFS.")
        facts["sha256"] = result.sha256
        return f"on EFS, sha256 {result.sha256[:12]}…, S3 → EFS in {human_duration(result.wait.latency_s)}"

    def do_predict() -> str:
        aws, target = facts["aws"], facts["target"]
        with api_client(target, aws) as api:
            prediction = predict_once(api, SAMPLE_NAME)
        for label, value in summary_rows(prediction, target.bucket):
            console.info(f"  {label:<10}  {value}")
        body = prediction.body
        if body.get("sha256") != facts["sha256"]:
            raise EfsctlError(f"predict saw sha256 {body.get('sha256')}, not the uploaded {facts['sha256']}.")
        if body.get("format") != "safetensors":
            raise EfsctlError(f"predict read the format as {body.get('format')!r}, not 'safetensors'.")
        return f"format {body['format']}, sha256 matches, {prediction.round_trip_ms:.0f} ms"

    def do_models() -> str:
        aws, target = facts["aws"], facts["target"]
        with api_client(target, aws) as api:
            found = list_models(api)
        console.table(table_columns(found), table_rows(found))
        if SAMPLE_NAME not in {m.get("name") for m in found}:
            raise EfsctlError(f"GET /models does not list {SAMPLE_NAME}.")
        return f"{len(found)} model(s) on EFS"

    def do_logs() -> str:
        aws, target = facts["aws"], facts["target"]
        reader = LogsReader(aws)

        def check() -> Outcome[list]:
            events = read_window(reader, target.log_groups, started_ms)
            functions = {e.function for e in events}
            return Outcome(functions >= set(target.log_groups), events,
                           f"logs from {', '.join(sorted(functions)) or 'no function'} so far")

        try:
            events = wait_until(check, what="logs", timeout=logs_timeout, clock=clock, poll=LOGS_POLL,
                                progress=console.progress) or []
        except EfsctlError:
            events = check().value or []
        if not events:
            raise EfsctlError("Neither function has logged anything.")
        # The handlers' own lines, latest last; START/END/REPORT and the rest stay one command away.
        shown = [e for e in events if not e.platform][-DEMO_LOG_LINES:]
        for event in shown:
            console.print(render(event), soft_wrap=True)
        if len(shown) < len(events):
            console.info(f"  ({len(events) - len(shown)} more lines: `efsctl --stack {target.stack} tail-logs "
                         "--since 10m`)")
        functions = sorted({e.function for e in events})
        return f"{len(events)} events from {' and '.join(functions)}"

    if run.step("up", do_up):
        ok = (run.step("sample model", do_sample) and run.step("upload", do_upload)
              and run.step("predict", do_predict) and run.step("models", do_models))
        if ok:
            run.step("logs", do_logs)
    if not keep:
        # Also after a failed or partial up: down removes whatever the stack has.
        run.step("down", lambda: (stack.down(), "stack deleted, local cloud stopped")[1])
    run.summary()
    return run
