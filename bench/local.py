"""Budgets of the local cloud, measured in one run: ``python bench/local.py [--requests N]``.

- ``efsctl up --local`` cold <= 3 s, and ``up`` again on the unchanged stack <= 1 s with zero
  mutating calls; beside them DESIGN's ratios, measured in the same run: cold <= 4 x
  ``python -c 'import moto.server'``, unchanged <= 2 x starting Python with boto3 and one client;
- gateway + runtime overhead <= 5 ms p50 over calling the same handler in-process: a signed POST
  through the execute-api gateway to a trivial handler, against a direct call of that handler;
- what persistence costs a changing call: PutObject (a small body, saved inline, and a 256 KiB
  one, saved as a blob) on the local cloud against a plain moto server in the same run, one at a
  time and from 8 threads, with the persister's own figures (time per commit, bytes per commit,
  how long an answer waited for its commit, requests per commit).

Prints one line per figure and exits 1 if a budget is missed.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION  # noqa: E402

TRIVIAL = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n"
results: list[tuple[str, float, float | None, str]] = []


def report(name: str, value: float, budget: float | None, unit: str) -> None:
    results.append((name, value, budget, unit))
    verdict = "" if budget is None else ("  ok" if value <= budget else "  OVER BUDGET")
    ratio = f", ratio {value / budget:.2f}" if budget else ""
    limit = "" if budget is None else f" (budget {budget:g} {unit}{ratio})"
    print(f"{name:<58} {value:8.2f} {unit}{limit}{verdict}", flush=True)


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(EFSCTL_HOME=str(home), PYTHONPATH=str(ROOT), AWS_CONFIG_FILE=os.devnull,
               AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    return env


def timed_run(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def median_run(code: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


REFERENCES: dict[str, float] = {}


def bench_references() -> None:
    REFERENCES["moto"] = median_run("import moto.server")
    report("python -c 'import moto.server' (median)", REFERENCES["moto"] * 1000, None, "ms")
    REFERENCES["boto3"] = median_run("import boto3; boto3.client('s3', region_name='us-east-1')")
    report("python with boto3 and one (s3) client (median)", REFERENCES["boto3"] * 1000, None, "ms")


def bench_up(runs: int = 3) -> None:
    """``efsctl up --local`` cold, then again unchanged (wall, as a user runs it); median of ``runs``."""
    efsctl = [sys.executable, "-m", "efsctl"]
    cold, warm, mutating = [], [], 0
    for _ in range(runs):
        home = Path(tempfile.mkdtemp(prefix="efsctl-bench-up-"))
        env = clean_env(home)
        try:
            cold.append(timed_run(efsctl + ["up", "--local"], env))
            warm.append(timed_run(efsctl + ["up", "--local"], env))
        finally:
            if len(cold) == runs:
                mutating = count_mutating_calls(home)
            subprocess.run(efsctl + ["down", "--yes"], env=env, capture_output=True, timeout=300)
    report(f"efsctl up --local, cold (median of {runs}; best {min(cold):.2f} s)", statistics.median(cold), 3.0, "s")
    report("  as a multiple of importing moto.server", statistics.median(cold) / REFERENCES["moto"], 4.0, "x")
    report(f"efsctl up --local, unchanged (median of {runs}; best {min(warm):.2f} s)", statistics.median(warm),
           1.0, "s")
    report("  as a multiple of Python with boto3 and one client", statistics.median(warm) / REFERENCES["boto3"],
           2.0, "x")
    report("mutating calls of the unchanged up", float(mutating), 0.0, "calls")


def count_mutating_calls(home: Path) -> int:
    """Run ``up`` once more in-process, counting every mutating AWS call it makes."""
    code = (
        "import sys\n"
        "from efsctl.aws import session\n"
        "count = []\n"
        "original = session.AwsContext.__init__\n"
        "def init(self, *a, **k):\n"
        "    original(self, *a, **k)\n"
        "    self.add_call_hook(lambda s, op, p: count.append(op) if session.is_mutating(op) else None)\n"
        "session.AwsContext.__init__ = init\n"
        "from typer.testing import CliRunner\n"
        "from efsctl.cli import app\n"
        "result = CliRunner().invoke(app, ['up', '--local'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(len(count), ' '.join(count))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=clean_env(home), capture_output=True, text=True,
                         timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"counting mutating calls failed:\n{out.stdout}\n{out.stderr}")
    calls = out.stdout.split()
    if calls and calls[0] != "0":
        print(f"    mutating calls: {' '.join(calls[1:])}")
    return int(calls[0]) if calls else 0


def bench_cold_start() -> None:
    """The local cloud process from nothing to healthy, as ``up --local`` starts it."""
    from efsctl.local import ensure_local_cloud, stop_local_cloud
    from efsctl.state import StateStore

    class Quiet:
        def line(self, *a, **k): pass
        def progress(self, *a, **k): pass
        def warn(self, *a, **k): pass

    runs = []
    for _ in range(3):
        store = StateStore(Path(tempfile.mkdtemp(prefix="efsctl-bench-cold-")))
        started = time.perf_counter()
        ensure_local_cloud(store, "bench", Quiet())
        runs.append(time.perf_counter() - started)
        stop_local_cloud(store, "bench", Quiet())
    report("local cloud cold start to healthy (median)", statistics.median(runs), None, "s")


def bench_first_answer() -> None:
    """A fresh CLI-like process: start the local cloud, then the first AWS answer through efsctl's
    AWS layer. This is the fixed part of a cold ``up --local`` (everything but ``up``'s own calls)."""
    code = (
        "import time, tempfile\n"
        "from pathlib import Path\n"
        "from efsctl.console import Console\n"
        "from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION\n"
        "from efsctl.local import ensure_local_cloud, stop_local_cloud\n"
        "from efsctl.state import StateStore\n"
        "store = StateStore(Path(tempfile.mkdtemp()))\n"
        "record = ensure_local_cloud(store, 'bench', Console(json_mode=True))\n"
        "from efsctl.aws.session import AwsContext\n"
        "aws = AwsContext(region=LOCAL_REGION, endpoint_url=record['endpoint_url'], credentials=dict(LOCAL_CREDENTIALS))\n"
        "aws.client('sts').get_caller_identity()\n"
        "print(time.time())\n"
        "stop_local_cloud(store, 'bench', Console(json_mode=True))\n"
    )
    runs = []
    for _ in range(3):
        started = time.time()
        done = subprocess.run([sys.executable, "-c", code], env=clean_env(Path(tempfile.mkdtemp())),
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        runs.append(float(done.stdout.split()[-1]) - started)
    report("new process to first AWS answer (median)", statistics.median(runs), None, "s")


def handler_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(zipfile.ZipInfo("app.py", (1980, 1, 1, 0, 0, 0)), TRIVIAL)
    return buf.getvalue()


def bench_gateway(requests: int) -> None:
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from efsctl.local import ensure_local_cloud, stop_local_cloud
    from efsctl.state import StateStore

    class Quiet:
        def line(self, *a, **k): pass
        def progress(self, *a, **k): pass
        def warn(self, *a, **k): pass

    store = StateStore(Path(tempfile.mkdtemp(prefix="efsctl-bench-gw-")))
    record = ensure_local_cloud(store, "bench", Quiet())
    try:
        def client(service):
            return boto3.client(service, endpoint_url=record["endpoint_url"], region_name=LOCAL_REGION,
                                **LOCAL_CREDENTIALS)

        lam, apigw = client("lambda"), client("apigatewayv2")
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                         "Principal": {"Service": "lambda.amazonaws.com"}}]}
        role = client("iam").create_role(RoleName="bench", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        fn_arn = lam.create_function(FunctionName="bench", Runtime="python3.12", Role=role, Handler="app.handler",
                                     Code={"ZipFile": handler_zip()})["FunctionArn"]
        api = apigw.create_api(Name="bench", ProtocolType="HTTP", Tags={"efsctl:stack": "bench"})["ApiId"]
        integration = apigw.create_integration(ApiId=api, IntegrationType="AWS_PROXY", IntegrationUri=fn_arn,
                                               PayloadFormatVersion="2.0")["IntegrationId"]
        apigw.create_route(ApiId=api, RouteKey="POST /predict", Target=f"integrations/{integration}",
                           AuthorizationType="AWS_IAM")
        apigw.create_stage(ApiId=api, StageName="$default", AutoDeploy=True)
        lam.add_permission(FunctionName="bench", StatementId="apigw", Action="lambda:InvokeFunction",
                           Principal="apigateway.amazonaws.com",
                           SourceArn=f"arn:aws:execute-api:{LOCAL_REGION}:123456789012:{api}/*/*/*")

        url = f"{record['gateway_url']}/predict"
        port = int(record["gateway_port"])
        creds = Credentials(LOCAL_CREDENTIALS["aws_access_key_id"], LOCAL_CREDENTIALS["aws_secret_access_key"])
        body = json.dumps({"model": "bench.bin", "verify": False}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def through_gateway() -> float:
            started = time.perf_counter()
            request = AWSRequest(method="POST", url=url, data=body, headers={"content-type": "application/json"})
            SigV4Auth(creds, "execute-api", LOCAL_REGION).add_auth(request)
            conn.request("POST", "/predict", body=body, headers=dict(request.headers.items()))
            response = conn.getresponse()
            payload = response.read()
            assert response.status == 200 and payload == b"ok", (response.status, payload)
            return time.perf_counter() - started

        namespace: dict = {}
        exec(compile(TRIVIAL, "app.py", "exec"), namespace)
        handler = namespace["handler"]
        event = {"version": "2.0", "body": body.decode()}

        def in_process() -> float:
            started = time.perf_counter()
            handler(json.loads(json.dumps(event)), None)
            return time.perf_counter() - started

        for _ in range(20):   # warm: the first call starts the execution environment
            through_gateway()
        gateway = sorted(through_gateway() for _ in range(requests))
        direct = sorted(in_process() for _ in range(requests))
        p50 = lambda xs: xs[len(xs) // 2] * 1000  # noqa: E731
        p90 = lambda xs: xs[int(len(xs) * 0.9)] * 1000  # noqa: E731
        report("signed POST through the gateway, p50", p50(gateway), None, "ms")
        report("signed POST through the gateway, p90", p90(gateway), None, "ms")
        report("same handler called in-process, p50", p50(direct), None, "ms")
        report("gateway + runtime overhead, p50", p50(gateway) - p50(direct), 5.0, "ms")
        conn.close()
    finally:
        stop_local_cloud(store, "bench", Quiet())


PLAIN_MOTO = (
    "import sys\n"
    "from moto.server import ThreadedMotoServer\n"
    "server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\n"
    "server.start()\n"
    "print('http://%s:%d' % server.get_host_and_port(), flush=True)\n"
    "sys.stdin.read()\n"
    "server.stop()\n"
)


def bench_persistence(requests: int) -> None:
    import concurrent.futures
    import urllib.request

    import boto3
    from botocore.config import Config

    from efsctl.local import ensure_local_cloud, stop_local_cloud
    from efsctl.state import StateStore

    class Quiet:
        def line(self, *a, **k): pass
        def progress(self, *a, **k): pass
        def warn(self, *a, **k): pass

    def client(endpoint: str):
        return boto3.client("s3", endpoint_url=endpoint, region_name=LOCAL_REGION, **LOCAL_CREDENTIALS,
                            config=Config(retries={"max_attempts": 1}, max_pool_connections=16))

    def measure(endpoint: str) -> dict[str, float]:
        s3 = client(endpoint)
        s3.create_bucket(Bucket="bench-persist")
        small, blob = b"{}" * 200, os.urandom(256 * 1024)
        for n in range(20):
            s3.put_object(Bucket="bench-persist", Key=f"warm/{n}", Body=small)
        figures = {}
        for label, body in (("small", small), ("256 KiB", blob)):
            samples = []
            for n in range(requests):
                started = time.perf_counter()
                s3.put_object(Bucket="bench-persist", Key=f"{label}/{n}", Body=body)
                samples.append(time.perf_counter() - started)
            figures[label] = statistics.median(samples) * 1000
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: s3.put_object(Bucket="bench-persist", Key=f"c/{n}", Body=small), range(requests)))
        figures["rate"] = requests / (time.perf_counter() - started)
        return figures

    plain_server = subprocess.Popen([sys.executable, "-c", PLAIN_MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True)
    store = StateStore(Path(tempfile.mkdtemp(prefix="efsctl-bench-persist-")))
    try:
        plain = measure(plain_server.stdout.readline().strip())
        record = ensure_local_cloud(store, "bench", Quiet())
        stats_url = record["endpoint_url"] + "/_efsctl/stats"
        before = json.loads(urllib.request.urlopen(stats_url).read())["persistence"]
        local = measure(record["endpoint_url"])
        after = json.loads(urllib.request.urlopen(stats_url).read())["persistence"]
    finally:
        plain_server.stdin.close()
        plain_server.wait(timeout=30)
        stop_local_cloud(store, "bench", Quiet())
        shutil.rmtree(store.home, ignore_errors=True)
    for label in ("small", "256 KiB"):
        report(f"PutObject {label}, p50: plain moto", plain[label], None, "ms")
        report(f"PutObject {label}, p50: durable local cloud", local[label], None, "ms")
    report("PutObject small from 8 threads: plain moto", plain["rate"], None, "/s")
    report("PutObject small from 8 threads: durable local cloud", local["rate"], None, "/s")
    commits = after["commits"] - before["commits"]
    waits = after["waits"] - before["waits"]
    report("persistence: time per commit (pickle, write, fdatasync)",
           1000 * (after["seconds"] - before["seconds"]) / max(1, commits), None, "ms")
    report("persistence: bytes per commit", (after["bytes"] - before["bytes"]) / max(1, commits) / 1024, None, "KiB")
    report("persistence: an answer's wait for its commit",
           1000 * (after["wait_seconds"] - before["wait_seconds"]) / max(1, waits), None, "ms")
    report("persistence: changing requests per commit", waits / max(1, commits), None, "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}", flush=True)
    started = os.getloadavg()
    bench_references()
    bench_cold_start()
    bench_first_answer()
    bench_up()
    bench_gateway(args.requests)
    bench_persistence(args.requests)
    print("load average at the start %.2f %.2f %.2f, at the end %.2f %.2f %.2f" % (*started, *os.getloadavg()))
    missed = [name for name, value, budget, _ in results if budget is not None and value > budget]
    if missed:
        print("over budget: " + ", ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
