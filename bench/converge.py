"""`up` and `down` under the realistic profile, against their critical paths: ``python bench/converge.py``.

The local cloud runs the ``aws`` realism profile at ``--time-scale`` (default 0.1), so AWS's
delays are those of the profile times the scale. The critical path of ``up`` is file system
(10 s) + mount targets (90 s) + function Pending (60 s) + S3 notification validation (2 s) =
162 s; of ``down``, Lambda's interfaces lingering after the functions leave the VPC (120 s).
Budgets: ``up`` <= 1.1 x 16.2 s and ``down`` <= 1.1 x 12 s at x0.1, both converging, and nothing
left in the local cloud after ``down`` (checked from its models just before ``down`` stops it).

Two figures each, both budgeted: convergence (the time each command spends changing the cloud
and waiting on it, from the end of its observation to the end of its last step, as it reports
it: ``elapsed`` of ``up --json``, ``seconds`` of ``down --json``), and the user's whole process:
the wall time of the ``efsctl`` process, from its start to its exit (interpreter, imports,
botocore's service models, the observation, and for ``down`` stopping the local cloud). The local
cloud is started and warmed by the bench itself before the timed runs, so each command finds it
ready: its start is the local cloud's own budget (bench/local.py). Exits 1 if a budget is missed
or anything is left.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
UP_PATH, DOWN_PATH = 10 + 90 + 60 + 2, 120   # AWS seconds on each critical path
BUDGET = 1.1

# Runs `efsctl down`, asking the local cloud what it still holds just before `down` stops it.
DOWN_WITH_INVENTORY = r'''
import json, sys, time, urllib.request
import efsctl.local as local
from efsctl.cli.app import main

REPORT = sys.argv[1]
original = local.stop_local_cloud

def stop_local_cloud(store, stack, console, **kwargs):
    started = time.perf_counter()
    from efsctl.local.lifecycle import read_record
    url = read_record(store.local_dir(stack))["endpoint_url"] + "/_efsctl/inventory"
    left = json.loads(urllib.request.urlopen(url, timeout=30).read())
    with open(REPORT, "w") as fh:
        json.dump({"left": left, "seconds": time.perf_counter() - started}, fh)
    return original(store, stack, console, **kwargs)

local.stop_local_cloud = stop_local_cloud
sys.argv = ["efsctl", "down", "--yes", "--json"]
main()
'''


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(EFSCTL_HOME=str(home), PYTHONPATH=str(ROOT), AWS_CONFIG_FILE=os.devnull,
               AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    return env


def run(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, cwd=env["EFSCTL_HOME"])
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} ... failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    try:
        return elapsed, json.loads(done.stdout)
    except ValueError:
        return elapsed, {}


class Quiet:
    def line(self, *a, **k): pass
    def progress(self, *a, **k): pass
    def warn(self, *a, **k): pass
    def info(self, *a, **k): pass


def start_cloud(home: Path, scale: float, throttle_rate: float) -> float:
    """Start the stack's local cloud with the profile and warm it (one read per service the
    commands use); returns the seconds it took."""
    from efsctl.aws.session import AwsContext
    from efsctl.config import LOCAL_CREDENTIALS
    from efsctl.local import ensure_local_cloud
    from efsctl.state import StateStore

    started = time.perf_counter()
    record = ensure_local_cloud(StateStore(home), "default", Quiet(), realism="aws", time_scale=scale,
                                throttle_rate=throttle_rate)
    aws = AwsContext(region="us-east-1", endpoint_url=record["endpoint_url"], credentials=dict(LOCAL_CREDENTIALS))
    for service, call in (("ec2", "describe_vpcs"), ("efs", "describe_file_systems"), ("iam", "list_roles"),
                          ("lambda", "list_functions"), ("logs", "describe_log_groups"), ("s3", "list_buckets"),
                          ("apigatewayv2", "get_apis")):
        getattr(aws.client(service), call)()
    return time.perf_counter() - started


def stop_cloud(home: Path) -> None:
    """Stop the bench's local cloud whatever happened (idempotent once `down` has stopped it)."""
    from efsctl.local import stop_local_cloud
    from efsctl.state import StateStore

    stop_local_cloud(StateStore(home), "default", Quiet())


def line(name: str, seconds: float, path: float | None = None, budget: float | None = None) -> bool:
    if path is None:
        print(f"{name:<40} {seconds:7.2f} s", flush=True)
        return True
    ratio = seconds / path
    ok = budget is None or ratio <= budget
    verdict = "" if budget is None else f" (budget {budget})" + ("  ok" if ok else "  OVER BUDGET")
    print(f"{name:<40} {seconds:7.2f} s  critical path {path:6.2f} s  ratio {ratio:.3f}{verdict}", flush=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=0.1)
    parser.add_argument("--throttle-rate", type=float, default=0.0)
    args = parser.parse_args()
    try:
        import efsctl.stack  # noqa: F401
    except ImportError:
        print("bench/converge.py needs the up and down engines (efsctl.stack) in this tree.", file=sys.stderr)
        return 2

    efsctl = [sys.executable, "-m", "efsctl"]
    scale = args.time_scale
    ok = True
    with tempfile.TemporaryDirectory(prefix="efsctl-converge-") as tmp:
        env = clean_env(Path(tmp))
        print(f"profile aws x{scale:g}, throttle rate {args.throttle_rate:g}; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        try:
            line("local cloud start + warm-up (not budgeted)", start_cloud(Path(tmp), scale, args.throttle_rate))
            up_wall, up_doc = run(efsctl + ["up", "--local", "--json"], env)
            ok &= line("up: converged in", float(up_doc.get("elapsed", 0.0)), UP_PATH * scale, BUDGET)
            ok &= line("up: wall time of the whole process", up_wall, UP_PATH * scale, BUDGET)
            _, again = run(efsctl + ["plan", "--json"], env)
            changes = {k: v for k, v in (again.get("summary") or {}).items() if k != "skip" and v}
            print(f"converged after up: {'yes' if not changes else f'no, {changes}'}", flush=True)
            ok &= not changes
        finally:
            report = Path(tmp) / "inventory.json"
            try:
                down_wall, down_doc = run([sys.executable, "-c", DOWN_WITH_INVENTORY, str(report)], env)
            finally:
                stop_cloud(Path(tmp))
        inventory = json.loads(report.read_text()) if report.exists() else {"left": {"unknown": ["no inventory"]},
                                                                            "seconds": 0.0}
        ok &= line("down: converged in", float(down_doc.get("seconds", 0.0)), DOWN_PATH * scale, BUDGET)
        ok &= line("down: wall time of the whole process", down_wall - inventory["seconds"], DOWN_PATH * scale, BUDGET)
        print(f"    (the bench's own inventory check, {inventory['seconds']:.2f} s, is left out)", flush=True)
        left = inventory["left"]
        print(f"left in the local cloud after down: {left if left else 'nothing'}", flush=True)
        ok &= not left
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
