"""The local cloud is durable: kill -9 at seeded moments, restart, and nothing acknowledged is lost.

Each test starts real processes (the CLI in-process, the cloud as its daemon) in its own home.
A kill comes when the cloud has done a seeded number of things (commits during ``up``, answered
uploads and predictions under load), so the moment varies with the seed, not with the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from localhelpers import http_request, signed_headers

from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION
from efsctl.local import lifecycle
from efsctl.waits import Clock, Outcome, Poll, wait_until

STACK = "durable"
MiB = 1 << 20
CLEAN_ENV = {name: None for name in (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "XDG_STATE_HOME")}


class Efsctl:
    def __init__(self, home: Path) -> None:
        from typer.testing import CliRunner

        self.home, self.runner = home, CliRunner()

    def __call__(self, *args: str):
        from efsctl.cli import app

        env = dict(CLEAN_ENV, EFSCTL_HOME=str(self.home), EFSCTL_STACK=STACK)
        result = self.runner.invoke(app, list(args), env=env, catch_exceptions=True)
        result.doc = json.loads(result.stdout) if "--json" in args and result.exit_code == 0 else None
        return result

    @property
    def data_dir(self) -> Path:
        return self.home / "local" / STACK

    def record(self) -> dict:
        return json.loads((self.data_dir / "cloud.json").read_text())

    def control(self, path: str) -> dict:
        status, _, body = http_request("GET", self.record()["endpoint_url"] + path, timeout=90)
        assert status == 200, body
        return json.loads(body)

    def kill(self) -> None:
        pid = self.record()["pid"]
        os.kill(pid, signal.SIGKILL)
        child = lifecycle._children.get(pid)
        if child is not None:
            child.wait(timeout=20)
        eventually(lambda: not lifecycle.pid_alive(pid), "the killed cloud to be gone")


@pytest.fixture
def efsctl(tmp_path, monkeypatch):
    home = tmp_path / "home"
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EFSCTL_HOME", str(home))
    run = Efsctl(home)
    yield run
    from efsctl.console import Console
    from efsctl.local import stop_local_cloud
    from efsctl.state import StateStore

    stop_local_cloud(StateStore(home), STACK, Console())


def eventually(check, what: str, timeout: float = 60.0):
    return wait_until(lambda: Outcome(bool(check()), True), what=what, timeout=timeout, clock=Clock(),
                      poll=Poll(floor=0.02, ceiling=0.2))


def client(endpoint: str, service: str):
    import boto3
    from botocore.config import Config

    return boto3.client(service, endpoint_url=endpoint, region_name=LOCAL_REGION, **LOCAL_CREDENTIALS,
                        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=20))


def ids(efsctl: Efsctl) -> dict[str, str]:
    status = efsctl("status", "--json")
    assert status.exit_code == 0, status.output
    return {key: row["id"] for key, row in status.doc["resources"].items()}


def up_creates_nothing(efsctl: Efsctl) -> None:
    again = efsctl("up", "--local", "--json")
    assert again.exit_code == 0, again.output
    assert again.doc["summary"]["create"] == 0 and again.doc["summary"]["update"] == 0, again.doc["summary"]


@pytest.mark.parametrize("seed", [12, 1207])
def test_kill_during_up_then_up_finishes_with_exactly_one_of_everything(efsctl, seed):
    commits = random.Random(seed).randint(3, 30)
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    env.update(EFSCTL_HOME=str(efsctl.home), EFSCTL_STACK=STACK)
    up = subprocess.Popen([sys.executable, "-m", "efsctl", "up", "--local"], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: (efsctl.data_dir / "cloud.json").exists() or up.poll() is not None, "the cloud to start")
        eventually(lambda: up.poll() is not None or _commits(efsctl) >= commits, f"{commits} commits")
        efsctl.kill()
    finally:
        up.kill()        # the command dies with it, as in a power cut
        up.wait(timeout=60)
    resumed = efsctl("up", "--local", "--json")
    assert resumed.exit_code == 0, resumed.output
    up_creates_nothing(efsctl)
    held = efsctl.control("/_efsctl/inventory")
    one_each = {"vpc": 1, "subnet": 2, "security-group": 2, "route-table": 1, "vpc-endpoint": 1, "file-system": 1,
                "mount-target": 2, "access-point": 1, "function": 2, "role": 2, "bucket": 1, "http-api": 1}
    assert {kind: len(held.get(kind, [])) for kind in one_each} == one_each


def _commits(efsctl: Efsctl) -> int:
    try:
        return efsctl.control("/_efsctl/stats")["persistence"]["commits"]
    except (OSError, ValueError, AssertionError, KeyError):
        return 0


class Load:
    """Uploads (single PUTs, inline and blob-sized, and multipart) and signed predictions, from
    threads, until the cloud dies; records what was acknowledged."""

    def __init__(self, endpoint: str, api_url: str, bucket: str, model: str, seed: float, prefix: str) -> None:
        self.endpoint, self.api_url, self.bucket, self.model = endpoint, api_url, bucket, model
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.uploads: dict[str, str] = {}
        self.outputs: dict[str, str] = {}
        self.done = threading.Condition()

    def acknowledged(self) -> int:
        """Answered requests, once there is at least one of each kind."""
        return len(self.uploads) + len(self.outputs) if self.uploads and self.outputs else 0

    def _ack(self, table: dict, key: str, value: str) -> None:
        with self.done:
            table[key] = value
            self.done.notify_all()

    def upload(self, worker: int) -> None:
        from boto3.s3.transfer import TransferConfig

        s3 = client(self.endpoint, "s3")
        rng = random.Random(self.rng.random())
        for n in range(1000):
            size = rng.choice([40, 20_000, 300_000, 11 * MiB if n % 4 == 3 else 2 * MiB])
            body = rng.randbytes(size)
            sha = hashlib.sha256(body).hexdigest()
            key = f"models/load/{self.prefix}-{worker}-{n}.bin"
            try:
                if size > 5 * MiB:
                    path = Path(os.environ["EFSCTL_HOME"]) / f"upload-{worker}.bin"
                    path.write_bytes(body)
                    s3.upload_file(str(path), self.bucket, key, ExtraArgs={"Metadata": {"sha256": sha}},
                                   Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
                else:
                    s3.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata={"sha256": sha})
            except Exception:  # noqa: BLE001 - the cloud was killed: stop
                return
            self._ack(self.uploads, key, sha)

    def predict(self) -> None:
        body = json.dumps({"model": self.model}).encode()
        headers = {"content-type": "application/json"}
        for _ in range(1000):
            try:
                status, _, payload = http_request("POST", f"{self.api_url}/predict", body,
                                                  signed_headers("POST", f"{self.api_url}/predict", body, headers),
                                                  timeout=20)
            except OSError:
                return
            if status != 200:
                self.refused = (status, payload)
                return
            doc = json.loads(payload)
            self._ack(self.outputs, doc["output"]["s3_key"], doc["sha256"])


@pytest.mark.parametrize("seed", [5])
def test_kill_under_upload_and_predict_load_loses_nothing_acknowledged(efsctl, tmp_path, seed):
    """Two rounds: load, kill -9 at a seeded count of answers, restart; the second round runs on
    a restored cloud, whose answers must be as durable as the first one's."""
    up = efsctl("up", "--local", "--json")
    assert up.exit_code == 0, up.output
    before = ids(efsctl)
    model = tmp_path / "resnet.bin"
    model.write_bytes(os.urandom(300_000))
    uploaded = efsctl("upload", str(model), "--wait", "--json")
    assert uploaded.exit_code == 0, uploaded.output
    outputs = up.doc["outputs"]
    rng = random.Random(seed)
    uploads, predictions = {}, {}
    for round_ in range(2):
        load = Load(efsctl.record()["endpoint_url"], outputs["api_url"], outputs["bucket"], "resnet.bin",
                    rng.random(), prefix=f"r{round_}")
        threads = [threading.Thread(target=load.upload, args=(w,)) for w in range(2)]
        threads.append(threading.Thread(target=load.predict))
        for thread in threads:
            thread.start()
        threshold = rng.randint(6, 20)
        with load.done:
            assert load.done.wait_for(lambda: load.acknowledged() >= threshold, timeout=120), load.acknowledged()
        efsctl.kill()
        for thread in threads:
            thread.join(timeout=60)
        assert load.uploads and load.outputs, getattr(load, "refused", None)
        uploads.update(load.uploads)
        predictions.update(load.outputs)

        up_creates_nothing(efsctl)
        assert ids(efsctl) == before
        s3 = client(efsctl.record()["endpoint_url"], "s3")
        for key, sha in uploads.items():
            head = s3.head_object(Bucket=outputs["bucket"], Key=key)
            assert head["Metadata"]["sha256"] == sha, key
            assert hashlib.sha256(s3.get_object(Bucket=outputs["bucket"], Key=key)["Body"].read()).hexdigest() == sha
        for key, sha in predictions.items():
            assert json.loads(s3.get_object(Bucket=outputs["bucket"], Key=key)["Body"].read())["sha256"] == sha
        assert efsctl.control("/_efsctl/drain?timeout=60")["drained"]
        listed = efsctl("models", "--json")
        assert listed.exit_code == 0, listed.output
        on_efs = {m["name"]: m["sha256"] for m in listed.doc["models"]}
        for key, sha in uploads.items():   # every acknowledged upload reached EFS, after the restart if need be
            assert on_efs.get(key[len("models/"):]) == sha, key
        assert on_efs["resnet.bin"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert (efsctl.data_dir / "cloud.log").read_text().count("state restored in") == 2


def test_a_killed_cloud_stays_down_for_status_and_comes_back_for_the_next_command_that_needs_it(efsctl, tmp_path):
    assert efsctl("up", "--local").exit_code == 0
    model = tmp_path / "kept.bin"
    model.write_bytes(os.urandom(70_000))
    assert efsctl("upload", str(model), "--wait").exit_code == 0
    before = ids(efsctl)
    efsctl.kill()
    dead = efsctl.record()["pid"]
    status = efsctl("status", "--json")   # read-only: says so, restarts nothing
    assert status.exit_code == 0 and status.doc["local_cloud"]["health"] == "stopped"
    assert efsctl.record()["pid"] == dead
    listed = efsctl("models", "--json")   # a command that needs the cloud starts it over its state
    assert listed.exit_code == 0, listed.output
    assert {m["name"]: m["sha256"] for m in listed.doc["models"]}["kept.bin"] == \
        hashlib.sha256(model.read_bytes()).hexdigest()
    assert efsctl.record()["pid"] != dead and ids(efsctl) == before


# --- the same cloud across versions and profiles ------------------------------------------------

class Quiet:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def line(self, status, label, detail="", elapsed=None):
        self.lines.append(detail)

    def progress(self, *args, **kwargs):
        pass

    def warn(self, message):
        self.warnings.append(message)


def _things(record: dict) -> dict:
    """A bit of everything: a role, an object in a blob and one inline, log events, an EFS file."""
    endpoint = record["endpoint_url"]
    iam, s3, logs = client(endpoint, "iam"), client(endpoint, "s3"), client(endpoint, "logs")
    role = iam.create_role(RoleName="kept", AssumeRolePolicyDocument="{}")["Role"]["RoleId"]
    s3.create_bucket(Bucket="kept-bucket")
    big = os.urandom(300_000)
    s3.put_object(Bucket="kept-bucket", Key="big", Body=big)
    s3.put_object(Bucket="kept-bucket", Key="small", Body=b"small")
    logs.create_log_group(logGroupName="g")
    logs.create_log_stream(logGroupName="g", logStreamName="s")
    logs.put_log_events(logGroupName="g", logStreamName="s", logEvents=[{"timestamp": int(time.time() * 1000), "message": "m"}])
    return {"role": role, "big": hashlib.sha256(big).hexdigest(), "small": hashlib.sha256(b"small").hexdigest(),
            "events": ["m"]}


def _read(record: dict) -> dict:
    endpoint = record["endpoint_url"]
    iam, s3, logs = client(endpoint, "iam"), client(endpoint, "s3"), client(endpoint, "logs")
    body = lambda key: hashlib.sha256(s3.get_object(Bucket="kept-bucket", Key=key)["Body"].read()).hexdigest()  # noqa: E731
    return {"role": iam.get_role(RoleName="kept")["Role"]["RoleId"], "big": body("big"), "small": body("small"),
            "events": [e["message"] for e in logs.get_log_events(logGroupName="g", logStreamName="s")["events"]]}


def test_a_version_bump_and_a_profile_change_keep_everything(tmp_path):
    from efsctl.local import ensure_local_cloud, stop_local_cloud
    from efsctl.state import StateStore

    store, console = StateStore(tmp_path / "home"), Quiet()
    first = ensure_local_cloud(store, STACK, console)
    try:
        made = _things(first)
        (store.local_dir(STACK) / "efs" / "fs-x").mkdir(parents=True)
        (store.local_dir(STACK) / "efs" / "fs-x" / "model.bin").write_bytes(b"weights")
        saved = json.loads((store.local_dir(STACK) / "cloud.json").read_text())
        saved["version"] = "efsctl-0.0.9/moto-5.2.5/p2"      # as if an older efsctl had started it
        (store.local_dir(STACK) / "cloud.json").write_text(json.dumps(saved))
        upgraded = ensure_local_cloud(store, STACK, console)
        assert upgraded["pid"] != first["pid"]
        assert any("was started by efsctl-0.0.9" in line and "its state is kept" in line for line in console.lines)
        assert _read(upgraded) == made
        realistic = ensure_local_cloud(store, STACK, console, realism="aws", time_scale=0.01)
        assert realistic["pid"] != upgraded["pid"] and realistic["realism"] == "aws"
        assert _read(realistic) == made
        assert (store.local_dir(STACK) / "efs" / "fs-x" / "model.bin").read_bytes() == b"weights"
        assert console.warnings == []
    finally:
        stop_local_cloud(store, STACK, console)
    assert not store.local_dir(STACK).exists()


def _killed_holding_things(store, console):
    """A cloud that made some things, then was killed: its state directory."""
    from efsctl.local import ensure_local_cloud

    record = ensure_local_cloud(store, STACK, console)
    _things(record)
    os.kill(record["pid"], signal.SIGKILL)
    lifecycle._children[record["pid"]].wait(timeout=20)
    return store.local_dir(STACK) / "state"


def test_a_snapshot_from_another_moto_is_refused_and_left_untouched(tmp_path):
    from efsctl.local import ensure_local_cloud, stop_local_cloud
    from efsctl.local.lifecycle import LocalCloudError
    from efsctl.state import StateStore

    store, console = StateStore(tmp_path / "home"), Quiet()
    state = _killed_holding_things(store, console)
    manifest = json.loads((state / "manifest.json").read_text())
    manifest["written_by"]["moto"] = "5.1.9"
    (state / "manifest.json").write_text(json.dumps(manifest))
    before = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file() and p.name != "lock"}
    try:
        with pytest.raises(LocalCloudError) as refused:
            ensure_local_cloud(store, STACK, console)
        message = str(refused.value)
        assert "saved by moto 5.1.9" in message and "kept untouched" in message
        assert "pip install 'moto[server]==5.1.9'" in message and "efsctl down" in message
        assert {p.name: p.read_bytes() for p in state.iterdir() if p.is_file() and p.name != "lock"} == before
    finally:
        stop_local_cloud(store, STACK, console)     # `down`'s way out: the data goes
    assert not store.local_dir(STACK).exists()


def test_a_damaged_snapshot_stops_the_start_and_is_left_as_it_is(tmp_path):
    from efsctl.local import ensure_local_cloud, stop_local_cloud
    from efsctl.local.lifecycle import LocalCloudError
    from efsctl.state import StateStore

    store, console = StateStore(tmp_path / "home"), Quiet()
    state = _killed_holding_things(store, console)
    checkpoint = state / json.loads((state / "manifest.json").read_text())["checkpoint"]
    damaged = bytearray(checkpoint.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    checkpoint.write_bytes(bytes(damaged))
    try:
        with pytest.raises(LocalCloudError) as refused:
            ensure_local_cloud(store, STACK, console)
        assert "could not be loaded" in refused.value.message and "efsctl down" in refused.value.hint
        assert checkpoint.read_bytes() == bytes(damaged)
    finally:
        stop_local_cloud(store, STACK, console)


def test_a_transition_still_due_survives_a_restart_and_happens(tmp_path):
    """A deleted function's network interfaces linger (here 3 s); the cloud is killed meanwhile:
    after the restart they are still there, and they still go once their time is up."""
    from efsctl.local import ensure_local_cloud, stop_local_cloud
    from efsctl.local.options import CloudOptions
    from efsctl.state import StateStore

    from localhelpers import handler_zip

    store, console = StateStore(tmp_path / "home"), Quiet()
    options = CloudOptions(extra={"delay.eni_linger": "3"})
    record = ensure_local_cloud(store, STACK, console, options=options)
    try:
        ec2, iam, lam = (client(record["endpoint_url"], s) for s in ("ec2", "iam", "lambda"))
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                         "Principal": {"Service": "lambda.amazonaws.com"}}]}
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.attach_role_policy(RoleName="r",
                               PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
        lam.create_function(FunctionName="f", Runtime="python3.12", Role=role, Handler="app.plain",
                            Code={"ZipFile": handler_zip()}, VpcConfig={"SubnetIds": [subnet], "SecurityGroupIds": [group]})
        lam.delete_function(FunctionName="f")
        lingering = lambda ec2: [e["NetworkInterfaceId"] for e in ec2.describe_network_interfaces(  # noqa: E731
            Filters=[{"Name": "subnet-id", "Values": [subnet]}])["NetworkInterfaces"]]
        assert lingering(ec2)
        os.kill(record["pid"], signal.SIGKILL)
        lifecycle._children[record["pid"]].wait(timeout=20)
        again = ensure_local_cloud(store, STACK, console, options=options)
        ec2 = client(again["endpoint_url"], "ec2")
        eventually(lambda: not lingering(ec2), "the lingering interfaces to go", timeout=60)
        ec2.delete_subnet(SubnetId=subnet)      # nothing holds it any more
    finally:
        stop_local_cloud(store, STACK, console)
