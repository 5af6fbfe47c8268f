#!/usr/bin/env python3
"""Data-path budgets of the Lambda handlers, printed as ratios measured in one run.

    python bench/datapath.py                 # 1 GiB and 4 GiB objects (a few minutes)
    python bench/datapath.py --size-mib 64   # quick run: 64 MiB and 256 MiB

Budgets (DESIGN section 6):
  producer copy of a 1 GiB object  <= 1.1 x the fastest plain boto3 download of it from the
                                      same endpoint, SHA-256 included
  producer peak RSS                <= 100 MiB at 1 GiB and at 4 GiB
  consumer first full read, 1 GiB  <= 1.3 x one hashlib SHA-256 pass over the file
  cached predict, server side      <= 20 ms p50 at small and large model sizes

The endpoint is moto's ThreadedMotoServer on loopback, run in its own process so that its
memory (moto holds whole objects) stays out of every measurement. Each download and each
producer copy runs in a fresh child process; peak RSS is the child's, read by a small probe
process with getrusage(RUSAGE_CHILDREN) (a process spawned from a big one would inherit its
high-water mark). Before every timed copy the page cache is synced, so no run pays for the
previous run's dirty pages. Figures are the fastest of --trials interleaved runs (medians too).

Not a test: run it by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAMBDA_CODE = ROOT / "lambda_code"
BUCKET = "efsctl-bench"
REGION = "us-east-1"
MIB = 1 << 20

BUDGET_COPY = 1.10
BUDGET_RSS_MIB = 100
BUDGET_FIRST_READ = 1.30
BUDGET_PREDICT_MS = 20.0


def _env(endpoint: str) -> dict:
    env = dict(os.environ)
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION=REGION,
               AWS_ENDPOINT_URL=endpoint)
    env.pop("AWS_PROFILE", None)
    return env


# --------------------------------------------------------------------------- child modes


def serve() -> None:
    """--serve: run moto's threaded server on a free loopback port until stdin closes."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"http://{host}:{port}", flush=True)
    sys.stdin.read()
    server.stop()


def probe(argv: list) -> None:
    """--probe CMD...: run CMD, pass its stdout through, then report the child's peak RSS."""
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(done.returncode)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["maxrss_mib"] = usage.ru_maxrss / 1024  # KiB on Linux
    result["cpu_s"] = usage.ru_utime + usage.ru_stime  # includes interpreter start-up and imports
    print(json.dumps(result), flush=True)


def job(spec: dict) -> None:
    """--job JSON: one timed transfer in a fresh interpreter; prints {"seconds": ...}."""
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    kind, key, out = spec["kind"], spec["key"], spec["out"]
    if kind == "producer":
        sys.path.insert(0, str(LAMBDA_CODE))
        import efs_common
        import efs_store
        import producer

        layout = efs_store.Layout(spec["mount"])
        layout.ensure()
        quiet = efs_common.JsonLogger("producer", level="ERROR")
        event = producer.ObjectEvent(bucket=BUCKET, key=key, name=key[len("models/"):], etag=spec["etag"],
                                     sequencer=spec["sequencer"], size=spec["size"])
        started = time.perf_counter()
        outcome = producer.ingest(s3, layout, event, quiet)
        seconds = time.perf_counter() - started
        if outcome != "installed":
            raise SystemExit(f"producer outcome {outcome}")
    elif kind == "get_object loop":
        started = time.perf_counter()
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
        with open(out, "wb") as f:
            for chunk in iter(lambda: body.read(8 * MIB), b""):
                f.write(chunk)
        seconds = time.perf_counter() - started
    elif kind == "download_fileobj":
        from boto3.s3.transfer import TransferConfig

        # one stream: moto re-reads the whole object for every ranged GET, so the default
        # concurrent ranged download is many times slower against it
        config = TransferConfig(multipart_threshold=spec["size"] + 1)
        started = time.perf_counter()
        with open(out, "wb") as f:
            s3.download_fileobj(BUCKET, key, f, Config=config)
        seconds = time.perf_counter() - started
    else:
        raise SystemExit(f"unknown job {kind}")
    print(json.dumps({"seconds": seconds, "kind": kind}), flush=True)


# --------------------------------------------------------------------------- the run


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="efsctl-datapath-", dir=args.workdir))
        self.mount = self.work / "efs"
        self.downloads = self.work / "downloads"
        self.mount.mkdir()
        self.downloads.mkdir()
        self.server = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)
        self.endpoint = self.server.stdout.readline().strip()
        os.environ.update(_env(self.endpoint))
        import boto3

        self.s3 = boto3.client("s3", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)
        self.failures = []

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=30)
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def upload(self, key: str, size: int) -> dict:
        """A source file of ``size`` bytes uploaded like `efsctl upload` (with x-amz-meta-sha256)."""
        if str(ROOT) not in sys.path:   # here, not at the top: the producer jobs' memory stays the handler's
            sys.path.insert(0, str(ROOT))
        from efsctl.drive.validate.dataset import random_file

        source = self.work / "source.bin"
        sha = random_file(source, size)
        started = time.perf_counter()
        with open(source, "rb") as f:
            etag = self.s3.put_object(Bucket=BUCKET, Key=key, Body=f, Metadata={"sha256": sha})["ETag"].strip('"')
        os.unlink(source)
        print(f"  uploaded {size // MIB} MiB to moto in {time.perf_counter() - started:.1f} s", flush=True)
        return {"key": key, "etag": etag, "size": size, "sha256": sha}

    def run_job(self, spec: dict) -> dict:
        os.sync()  # nobody pays for the previous run's dirty pages
        cmd = [sys.executable, __file__, "--probe", sys.executable, __file__, "--job", json.dumps(spec)]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=_env(self.endpoint), check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def producer_copy(self, obj: dict, sequencer: int) -> dict:
        self._forget_model(obj["key"][len("models/"):])
        result = self.run_job({"kind": "producer", "key": obj["key"], "etag": obj["etag"], "size": obj["size"],
                               "sequencer": f"{sequencer:016X}", "mount": str(self.mount), "out": None})
        return result

    def _forget_model(self, name: str) -> None:
        sys.path.insert(0, str(LAMBDA_CODE))
        import efs_store

        layout = efs_store.Layout(str(self.mount))
        for path in (layout.model_path(name), layout.meta_path(name)):
            if os.path.exists(path):
                os.unlink(path)

    def download(self, kind: str, obj: dict) -> dict:
        out = self.downloads / "download.bin"
        if out.exists():
            out.unlink()
        result = self.run_job({"kind": kind, "key": obj["key"], "size": obj["size"], "out": str(out)})
        out.unlink()
        return result

    # ----------------------------------------------------------------------- measurements

    def copy_ratio(self, obj: dict) -> None:
        mib = obj["size"] // MIB
        print(f"\n[1] producer copy vs plain boto3 download, {mib} MiB, {self.args.trials} interleaved trials")
        kinds = ("get_object loop", "download_fileobj", "producer")
        runs = {kind: [] for kind in kinds}
        for trial in range(self.args.trials):
            for kind in kinds[:2]:
                runs[kind].append(self.download(kind, obj))
            runs["producer"].append(self.producer_copy(obj, sequencer=trial + 1))
        times = {kind: [r["seconds"] for r in results] for kind, results in runs.items()}
        for kind in kinds:
            cpu = statistics.median(r["cpu_s"] for r in runs[kind])
            print(f"  {kind:18s} fastest {min(times[kind]):.3f} s  median {statistics.median(times[kind]):.3f} s  "
                  f"({mib / min(times[kind]):.0f} MiB/s; process CPU {cpu:.2f} s incl. start-up)")
        fastest_kind = min(kinds[:2], key=lambda k: min(times[k]))
        ratio = min(times["producer"]) / min(times[fastest_kind])
        # each trial ran the three back to back, so their ratio shares the machine's load at the time
        paired = statistics.median(p / min(a, b) for p, a, b in zip(times["producer"], *(times[k] for k in kinds[:2])))
        self.report(f"producer copy {mib} MiB / fastest boto3 download ({fastest_kind})", ratio, BUDGET_COPY,
                    "x", f"(fastest vs fastest; median of per-trial ratios {paired:.2f}x)")
        self.report(f"producer peak RSS at {mib} MiB", max(r["maxrss_mib"] for r in runs["producer"]),
                    BUDGET_RSS_MIB, " MiB")

    def big_rss(self, size: int) -> None:
        print(f"\n[2] producer peak RSS at {size // MIB} MiB")
        obj = self.upload("models/bench/huge.bin", size)
        result = self.producer_copy(obj, sequencer=1)
        model = self.mount / "models" / "bench" / "huge.bin"
        assert model.stat().st_size == size
        print(f"  copied in {result['seconds']:.2f} s ({size / MIB / result['seconds']:.0f} MiB/s)")
        self.report(f"producer peak RSS at {size // MIB} MiB", result["maxrss_mib"], BUDGET_RSS_MIB, " MiB")
        self._forget_model("bench/huge.bin")
        self.s3.delete_object(Bucket=BUCKET, Key=obj["key"])

    def first_read(self, obj: dict) -> None:
        import consumer
        import efs_store

        mib = obj["size"] // MIB
        name = obj["key"][len("models/"):]
        path = self.mount / "models" / name
        print(f"\n[3] consumer first full read vs one hashlib pass, {mib} MiB (page cache warm for both)")
        os.environ.update(EFS_MOUNT_PATH=str(self.mount), BUCKET=BUCKET)
        consumer.log = consumer.common.JsonLogger("consumer", level="ERROR")
        with open(path, "rb") as f:  # the producer wrote with O_DIRECT: warm the cache once
            hashlib.file_digest(f, "sha256")
        reference, first = [], []
        event = _predict_event(name, verify=False)
        record = efs_store.Layout(str(self.mount)).meta_path(name)
        for _ in range(self.args.trials):
            started = time.perf_counter()
            with open(path, "rb") as f:
                expected = hashlib.file_digest(f, "sha256").hexdigest()
            reference.append(time.perf_counter() - started)
            consumer.reset_caches()  # a new container, and no record: the file must be read
            if os.path.exists(record):
                os.unlink(record)
            started = time.perf_counter()
            response = consumer.handler(event, None)
            first.append(time.perf_counter() - started)
            body = json.loads(response["body"])
            assert response["statusCode"] == 200 and body["cached"] is False and body["sha256"] == expected
        print(f"  hashlib.file_digest fastest {min(reference):.3f} s ({mib / min(reference):.0f} MiB/s)")
        print(f"  consumer predict    fastest {min(first):.3f} s ({mib / min(first):.0f} MiB/s)")
        self.report(f"consumer first read {mib} MiB / hashlib pass", min(first) / min(reference),
                    BUDGET_FIRST_READ, "x")

    def cached_predicts(self, large: dict) -> None:
        import consumer

        print(f"\n[4] cached predict, server side (handler wall time incl. output on EFS and S3), "
              f"{self.args.predicts} calls each")
        small = self.upload("models/bench/small.safetensors", 1 * MIB)
        self.producer_copy(small, sequencer=1)
        os.environ.update(EFS_MOUNT_PATH=str(self.mount), BUCKET=BUCKET)
        consumer.log = consumer.common.JsonLogger("consumer", level="ERROR")
        consumer.reset_caches()
        for obj in (small, large):
            name = obj["key"][len("models/"):]
            event = _predict_event(name, verify=False)
            consumer.handler(event, None)  # warm: client, cache
            samples = []
            for _ in range(self.args.predicts):
                started = time.perf_counter()
                response = consumer.handler(event, None)
                samples.append((time.perf_counter() - started) * 1000)
                assert response["statusCode"] == 200 and json.loads(response["body"])["cached"] is True
            samples.sort()
            p50, p95 = statistics.median(samples), samples[int(len(samples) * 0.95) - 1]
            print(f"  {obj['size'] // MIB:5d} MiB model: p50 {p50:.2f} ms  p95 {p95:.2f} ms")
            self.report(f"cached predict p50, {obj['size'] // MIB} MiB model", p50, BUDGET_PREDICT_MS, " ms")

    def report(self, what: str, value: float, budget: float, unit: str, note: str = "") -> None:
        ok = value <= budget
        if not ok:
            self.failures.append(what)
        print(f"  => {what}: {value:.2f}{unit} (budget {budget:g}{unit}) {'ok' if ok else 'OVER BUDGET'} {note}".rstrip(),
              flush=True)


def _predict_event(name: str, verify: bool) -> dict:
    return {"version": "2.0", "routeKey": "POST /predict", "rawPath": "/predict", "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/predict"}, "stage": "$default"},
            "body": json.dumps({"model": name, "verify": verify}), "isBase64Encoded": False}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="object size for the ratios (default 1024)")
    parser.add_argument("--big-size-mib", type=int, default=None, help="size for the second RSS check "
                        "(default 4 x --size-mib)")
    parser.add_argument("--trials", type=int, default=7, help="interleaved trials per measurement")
    parser.add_argument("--predicts", type=int, default=200, help="cached predicts per model size")
    parser.add_argument("--workdir", default=None, help="where temporary files go (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    size = args.size_mib * MIB
    big = (args.big_size_mib or 4 * args.size_mib) * MIB
    sys.path.insert(0, str(LAMBDA_CODE))

    bench = Bench(args)
    print(f"efsctl data path bench: {args.size_mib} MiB and {big // MIB} MiB objects, moto at {bench.endpoint}, "
          f"work dir {bench.work}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    try:
        obj = bench.upload("models/bench/model.bin", size)
        bench.copy_ratio(obj)
        bench.first_read(obj)
        bench.cached_predicts(obj)
        bench.big_rss(big)
    finally:
        bench.close()
    print("\nall budgets met" if not bench.failures else f"\nover budget: {', '.join(bench.failures)}")
    return 0 if not bench.failures else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve()
    elif len(sys.argv) > 1 and sys.argv[1] == "--probe":
        probe(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "--job":
        job(json.loads(sys.argv[2]))
    else:
        sys.exit(main())
