#!/usr/bin/env python3
"""Big models through the durable local cloud, measured in one run (issue 12's budgets).

    python bench/bigmodels.py                  # 1 GiB and 4 GiB models (needs about 15 GiB free)
    python bench/bigmodels.py --size-mib 256   # quick: 256 MiB and 1 GiB

Budgets (DESIGN section 6, "local cloud with big models" and "producer copy through the local cloud"):
  local cloud peak RSS while a 4 GiB model is uploaded and copied to EFS     <= 300 MiB
  `efsctl upload --wait` of 1 GiB              <= 3 x (plain `cp` of the file + one hashlib SHA-256 pass)
  producer copy of 1 GiB through the local cloud  <= 1.1 x the fastest plain download of it from the
                                                     same endpoint (SHA-256 included)
  one producer invocation per upload (a multipart one included)
  cached predict, server side                  <= 20 ms p50, small and 1 GiB models (every prediction
                                                  writes its output to the persisted bucket)

Everything runs as a user runs it: `efsctl up --local`, `efsctl upload --wait` in fresh processes,
downloads in fresh processes. Peak RSS is the cloud process's VmHWM (since it started). The
page cache is synced before each timed copy, so no run pays for another's dirty pages. The load
average is printed with every figure: on a shared machine the figures move with it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION  # noqa: E402
from efsctl.drive.validate.dataset import random_file  # noqa: E402

MIB = 1 << 20
BUDGET_RSS_MIB = 300
BUDGET_UPLOAD = 3.0
BUDGET_COPY = 1.10
BUDGET_PREDICT_MS = 20.0
failures: list[str] = []


def load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def report(what: str, value: float, budget: float | None, unit: str, note: str = "") -> None:
    verdict = "" if budget is None else ("ok" if value <= budget else "OVER BUDGET")
    if budget is not None and value > budget:
        failures.append(what)
    limit = "" if budget is None else f" (budget {budget:g}{unit})"
    print(f"  => {what}: {value:.2f}{unit}{limit} {verdict} [{load()}] {note}".rstrip(), flush=True)


class Stack:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(EFSCTL_HOME=str(home), PYTHONPATH=str(ROOT), AWS_CONFIG_FILE=os.devnull,
                        AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")

    def efsctl(self, *args: str) -> tuple[float, dict]:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "efsctl", *args], env=self.env, capture_output=True, text=True,
                              timeout=3600)
        elapsed = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"efsctl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return elapsed, (json.loads(done.stdout) if "--json" in args else {})

    @property
    def record(self) -> dict:
        return json.loads((self.home / "local" / "default" / "cloud.json").read_text())

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.record["endpoint_url"], region_name=LOCAL_REGION,
                            **LOCAL_CREDENTIALS)

    def cloud_hwm_mib(self) -> float:
        status = Path(f"/proc/{self.record['pid']}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024

    def drain(self) -> None:
        import urllib.request

        with urllib.request.urlopen(self.record["endpoint_url"] + "/_efsctl/drain?timeout=600", timeout=700) as r:
            assert json.loads(r.read())["drained"]

    def producer_runs(self, key: str) -> list[dict]:
        """The producer's invocations for the S3 ``key``: request id, REPORT duration and memory."""
        logs = self.client("logs")
        group = "/aws/lambda/efsctl-default-producer"
        events = [e["message"] for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group)
                  for e in page["events"]]
        ids = set()
        for message in events:
            try:
                doc = json.loads(message)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("key") == key and doc.get("request_id"):
                ids.add(doc["request_id"])
        runs = []
        for message in events:
            found = re.match(r"REPORT RequestId: (\S+)\tDuration: ([\d.]+) ms.*Max Memory Used: (\d+) MB", message)
            if found and found.group(1) in ids:
                runs.append({"id": found.group(1), "ms": float(found.group(2)), "rss_mib": int(found.group(3))})
        return runs


def fastest(runs: int, timed) -> float:
    samples = []
    for _ in range(runs):
        os.sync()
        samples.append(timed())
    return min(samples)


def cp_and_hash(source: Path, work: Path) -> tuple[float, float, float]:
    """Fastest of 3: ``cp`` (into the page cache), ``cp`` then ``sync`` of the copy (on disk, as
    the cloud keeps an acknowledged body: a reference, not the budget's), one SHA-256 pass."""
    target = work / "cp-target.bin"

    def cp(durable: bool = False) -> float:
        started = time.perf_counter()
        subprocess.run(["cp", str(source), str(target)], check=True)
        if durable:
            subprocess.run(["sync", str(target)], check=True)
        elapsed = time.perf_counter() - started
        target.unlink()
        return elapsed

    def sha() -> float:
        started = time.perf_counter()
        with open(source, "rb") as fh:
            hashlib.file_digest(fh, "sha256")
        return time.perf_counter() - started

    sha()   # warm the cache, as the uploader's own read finds it warm
    return fastest(3, cp), fastest(3, lambda: cp(durable=True)), fastest(3, sha)


DOWNLOAD = r"""
import hashlib, sys, time, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name=sys.argv[2], aws_access_key_id=sys.argv[3],
                  aws_secret_access_key=sys.argv[4])
started = time.perf_counter()
body = s3.get_object(Bucket=sys.argv[5], Key=sys.argv[6])["Body"]
sha = hashlib.sha256()
with open(sys.argv[7], "wb") as out:
    for chunk in iter(lambda: body.read(8 << 20), b""):
        sha.update(chunk)
        out.write(chunk)
print(time.perf_counter() - started, sha.hexdigest())
"""


def plain_download(stack: Stack, bucket: str, key: str, work: Path) -> float:
    target = work / "download.bin"

    def once() -> float:
        done = subprocess.run([sys.executable, "-c", DOWNLOAD, stack.record["endpoint_url"], LOCAL_REGION,
                               LOCAL_CREDENTIALS["aws_access_key_id"], LOCAL_CREDENTIALS["aws_secret_access_key"],
                               bucket, key, str(target)], capture_output=True, text=True, check=True)
        target.unlink()
        return float(done.stdout.split()[0])

    return fastest(3, once)


def predict_p50(stack: Stack, api_url: str, name: str, calls: int) -> float:
    """p50 of the consumer's REPORT Duration (the whole handler: analysis, the output written to
    EFS and put to the persisted bucket) over ``calls`` warm, cached predictions."""
    import http.client
    from urllib.parse import urlsplit

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = Credentials(LOCAL_CREDENTIALS["aws_access_key_id"], LOCAL_CREDENTIALS["aws_secret_access_key"])
    body = json.dumps({"model": name}).encode()
    parts = urlsplit(api_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    ids = set()
    for n in range(calls + 5):
        request = AWSRequest(method="POST", url=f"{api_url}/predict", data=body,
                             headers={"content-type": "application/json"})
        SigV4Auth(creds, "execute-api", LOCAL_REGION).add_auth(request)
        conn.request("POST", "/predict", body=body, headers=dict(request.headers.items()))
        response = conn.getresponse()
        doc = json.loads(response.read())
        assert response.status == 200, doc
        if n >= 5:    # the first calls warm the environment and the checksum cache
            assert doc["cached"] is True
            ids.add(doc["request_id"])
    conn.close()
    logs = stack.client("logs")
    durations = []
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName="/aws/lambda/efsctl-default-consumer"):
        for event in page["events"]:
            found = re.match(r"REPORT RequestId: (\S+)\tDuration: ([\d.]+) ms", event["message"])
            if found and found.group(1) in ids:
                durations.append(float(found.group(2)))
    assert len(durations) == calls, (len(durations), calls)
    return statistics.median(durations)


def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="efsctl-bigmodels-", dir=args.workdir))
    size, big = args.size_mib * MIB, (args.big_size_mib or 4 * args.size_mib) * MIB
    free = shutil.disk_usage(work).free
    need = 3 * size + 3 * big + 2 * MIB * 1024
    print(f"efsctl big models bench: {size // MIB} MiB and {big // MIB} MiB, work dir {work} "
          f"({free / 2**30:.0f} GiB free), {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {load()}")
    if free < need:
        raise SystemExit(f"needs about {need / 2**30:.0f} GiB free in {work}; pass --workdir or a smaller --size-mib")
    stack = Stack(work / "home")
    try:
        elapsed, up = stack.efsctl("up", "--local", "--json")
        outputs = up["outputs"]
        print(f"  up --local in {elapsed:.2f} s; cloud pid {stack.record['pid']}, "
              f"RSS high-water mark {stack.cloud_hwm_mib():.0f} MiB before any model")

        print(f"\n[1] upload --wait of {size // MIB} MiB vs cp + one hashlib pass")
        source = work / "model.bin"
        sha = random_file(source, size)
        cp, durable_cp, hashing = cp_and_hash(source, work)
        print(f"  cp {cp:.2f} s (cp + sync {durable_cp:.2f} s), hashlib sha256 {hashing:.2f} s (fastest of 3)")
        uploads = []
        for trial in range(args.trials):
            os.sync()
            elapsed, doc = stack.efsctl("upload", str(source), "--name", f"bench/m{trial}.bin", "--wait", "--json")
            assert doc["sha256"] == sha and doc["wait"]["on_efs"], doc
            uploads.append(elapsed)
            print(f"  upload --wait {elapsed:.2f} s (S3 -> EFS {doc['wait']['latency_s']:.2f} s) [{load()}]")
        report(f"upload --wait {size // MIB} MiB / (cp + hashlib)", min(uploads) / (cp + hashing), BUDGET_UPLOAD, "x")
        report("  (reference: / (cp + sync + hashlib), the copy on disk as the cloud keeps it)",
               min(uploads) / (durable_cp + hashing), None, "x")
        report(f"local cloud peak RSS after {size // MIB} MiB uploaded and copied", stack.cloud_hwm_mib(), None,
               " MiB")

        print(f"\n[2] producer copy vs plain download of {size // MIB} MiB from the same endpoint")
        key = "models/bench/m0.bin"
        runs = stack.producer_runs(key)
        report("producer invocations for one multipart upload", float(len(runs)), 1.0, "")
        download = plain_download(stack, outputs["bucket"], key, work)
        # Copies of the object share its blob, now in the page cache as for the downloads: each
        # copy's event makes the producer copy the same bytes again, read as the downloads read them.
        s3 = stack.client("s3")
        copies = []
        for trial in range(3):
            target = f"models/bench/copy{trial}.bin"
            os.sync()
            s3.copy_object(Bucket=outputs["bucket"], Key=target, CopySource={"Bucket": outputs["bucket"], "Key": key})
            stack.drain()
            copies += [r["ms"] / 1000 for r in stack.producer_runs(target)]
            for copy in Path(stack.record["data_dir"]).glob(f"efs/*/*/models/bench/copy{trial}.bin"):
                copy.unlink()
        print(f"  producer copy fastest {min(copies):.2f} s (REPORT Duration, first upload's {runs[0]['ms'] / 1000:.2f} s "
              f"read the body from disk), plain download + sha256 fastest {download:.2f} s")
        report(f"producer copy {size // MIB} MiB / fastest plain download", min(copies) / download, BUDGET_COPY, "x")

        print("\n[3] cached predict, server side (the consumer's REPORT Duration), 100 calls each")
        small = work / "small.bin"
        small.write_bytes(os.urandom(MIB))
        stack.efsctl("upload", str(small), "--name", "bench/small.bin", "--wait", "--json")
        for name in ("bench/small.bin", "bench/m0.bin"):
            report(f"cached predict p50, {name}", predict_p50(stack, outputs["api_url"], name, 100),
                   BUDGET_PREDICT_MS, " ms")

        # make room for the big one (the stack goes whole at the end)
        for trial in range(1, args.trials):
            s3.delete_object(Bucket=outputs["bucket"], Key=f"models/bench/m{trial}.bin")
            for copy in Path(stack.record["data_dir"]).glob(f"efs/*/*/models/bench/m{trial}.bin"):
                copy.unlink()
        source.unlink()

        print(f"\n[4] {big // MIB} MiB model: upload --wait and copy to EFS")
        bigsource = work / "big.bin"
        bigsha = random_file(bigsource, big)
        elapsed, doc = stack.efsctl("upload", str(bigsource), "--name", "bench/big.bin", "--wait", "--json")
        assert doc["sha256"] == bigsha and doc["wait"]["on_efs"], doc
        print(f"  upload --wait {elapsed:.2f} s (S3 -> EFS {doc['wait']['latency_s']:.2f} s)")
        runs = stack.producer_runs("models/bench/big.bin")
        report(f"producer invocations for the {big // MIB} MiB upload", float(len(runs)), 1.0, "")
        report(f"producer peak memory at {big // MIB} MiB (REPORT Max Memory Used)",
               float(max(r["rss_mib"] for r in runs)), None, " MiB")
        report(f"local cloud peak RSS while {big // MIB} MiB was uploaded and copied", stack.cloud_hwm_mib(),
               BUDGET_RSS_MIB, " MiB")
        bigsource.unlink()
    finally:
        subprocess.run([sys.executable, "-m", "efsctl", "down", "--yes"], env=stack.env, capture_output=True,
                       timeout=600)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="model size for the ratios (default 1024)")
    parser.add_argument("--big-size-mib", type=int, default=None, help="size for the RSS check (default 4 x size)")
    parser.add_argument("--trials", type=int, default=2, help="upload trials (each one more copy on disk)")
    parser.add_argument("--workdir", default=None, help="where the stack and the models go (default: system temp)")
    run(parser.parse_args())
    print("\nall budgets met" if not failures else f"\nover budget: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
