"""demo: the sample model is valid safetensors; the steps run in order, timed, and clean up."""

import hashlib
import json
import struct

import pytest

from efsctl.drive.demo import SAMPLE_NAME, safetensors_bytes, write_sample_model

REGION = "us-east-1"
SIZES = {"F32": 4, "F16": 2, "I64": 8, "U8": 1}


def parse_safetensors(data: bytes):
    """A strict reader: header length, JSON header, contiguous in-order offsets covering the data."""
    (n,) = struct.unpack("<Q", data[:8])
    assert 8 + n <= len(data) and n % 8 == 0
    header = json.loads(data[8:8 + n].decode("utf-8"))
    assert data[8:8 + n].startswith(b"{")
    body = data[8 + n:]
    metadata = header.pop("__metadata__", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    offset = 0
    tensors = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        start, end = info["data_offsets"]
        count = 1
        for dim in info["shape"]:
            count *= dim
        assert start == offset and end - start == count * SIZES[info["dtype"]]
        tensors[name] = struct.unpack(f"<{count}f", body[start:end])
        offset = end
    assert offset == len(body)
    return metadata, header, tensors


def test_sample_model_is_valid_safetensors(tmp_path):
    path = tmp_path / SAMPLE_NAME
    info = write_sample_model(path)
    data = path.read_bytes()
    metadata, header, tensors = parse_safetensors(data)
    assert metadata["format"] == "pt"
    assert {k: (v["dtype"], v["shape"]) for k, v in header.items()} == {
        "dense.weight": ("F32", [64, 32]), "dense.bias": ("F32", [64])}
    assert info == {"tensors": 2, "parameters": 64 * 32 + 64, "bytes": len(data)}
    assert all(abs(x) < 1 for values in tensors.values() for x in values)
    assert write_sample_model(tmp_path / "again") == info and (tmp_path / "again").read_bytes() == data


def test_sample_model_loads_with_numpy_if_available(tmp_path):
    np = pytest.importorskip("numpy")
    path = tmp_path / SAMPLE_NAME
    write_sample_model(path)
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    start, end = header["dense.weight"]["data_offsets"]
    weight = np.frombuffer(data[8 + n + start:8 + n + end], dtype="<f4").reshape(64, 32)
    assert weight.shape == (64, 32) and np.isfinite(weight).all()


def test_safetensors_writer_checks_sizes():
    with pytest.raises(ValueError):
        safetensors_bytes({"x": ("F32", [2], b"\x00" * 4)})


# -- the run, against moto and a canned API -------------------------------------------------

@pytest.fixture
def sample_sha(tmp_path):
    path = tmp_path / "expected.safetensors"
    write_sample_model(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def demo_api(api_server, sample_sha):
    model = {"name": SAMPLE_NAME, "size": 8514, "sha256": sample_sha, "modified": 1714560000}
    api_server.route("GET", f"/models/{SAMPLE_NAME}", (404, {"error": {"code": "NotFound", "message": "not found"}}),
                     (200, model))
    api_server.route("POST", "/predict", (200, {
        "model": SAMPLE_NAME, "size": 8514, "sha256": sample_sha, "format": "safetensors",
        "analysis": {"entropy_bits_per_byte": 7.2, "tensors": 2, "dtypes": {"F32": 2}, "parameters": 2112},
        "cached": False, "output": {"efs_path": "/mnt/efs/outputs/1.json", "s3_key": "outputs/1.json"},
        "request_id": "r", "duration_ms": 3}))
    api_server.route("GET", "/models", (200, {"models": [model]}))
    return api_server


def fake_up(stack, api_url, efsctl_home, log=None):
    """What `up --local` leaves behind, for the drive steps: a state, a bucket, both log groups
    (with one event each, as the functions' invocations would write)."""
    import time

    import boto3

    from efsctl.state import StackState, StateStore

    bucket = f"efsctl-{stack}-123456789012-{REGION}"
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=bucket)
    logs = boto3.client("logs", region_name=REGION)
    for fn in ("producer", "consumer"):
        group = f"/aws/lambda/efsctl-{stack}-{fn}"
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="s")
        logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
            {"timestamp": int(time.time() * 1000), "message": json.dumps({"level": "INFO", "msg": f"{fn} ran"})}])
    StateStore(efsctl_home).save(StackState(stack=stack, target="aws", region=REGION, account="123456789012",
                                            outputs={"api_url": api_url, "bucket": bucket}))
    if log is not None:
        log.append(("up", stack))


@pytest.fixture
def fake_ops(monkeypatch, demo_api, efsctl_home):
    """The demo's use cases with `up` and `down` replaced: `up` fakes a stack on moto, `down`
    removes its state; every call is recorded as (use case, stack)."""
    from efsctl.operations import Operations

    calls = []

    def converge(self, request, reporter=None):
        calls.append(("up", self.stack, request.local))
        fake_up(self.stack, demo_api.url, efsctl_home)

    def destroy(self, *, confirm, keep_bucket=False, timeout=None, reporter=None):
        calls.append(("down", self.stack, confirm))
        self.store.delete(self.stack)

    monkeypatch.setattr(Operations, "converge", converge)
    monkeypatch.setattr(Operations, "destroy", destroy)
    return calls


def test_cli_demo_runs_every_step_on_the_demo_stack(cli, moto_drive, demo_api, fake_ops, monkeypatch):
    import efsctl.drive.upload as upload_mod
    from efsctl.waits import FakeClock

    monkeypatch.setattr(upload_mod, "Clock", FakeClock)
    result = cli("demo")
    assert result.exit_code == 0, result
    assert fake_ops == [("up", "demo", True), ("down", "demo", None)]
    out = result.stdout
    for step in ("up", "sample model", "upload", "predict", "models", "logs", "down"):
        assert f"✓ {step}" in out, step
    assert "producer ran" in out and "consumer ran" in out
    assert "round trip complete" in out and "total" in out
    assert [r.path for r in demo_api.requests] == [f"/models/{SAMPLE_NAME}", f"/models/{SAMPLE_NAME}", "/predict",
                                                   "/models"]


def test_cli_demo_keep_and_explicit_stack(cli, moto_drive, demo_api, fake_ops, monkeypatch):
    import efsctl.drive.upload as upload_mod
    from efsctl.waits import FakeClock

    monkeypatch.setattr(upload_mod, "Clock", FakeClock)
    result = cli("--stack", "trial", "demo", "--keep")
    assert result.exit_code == 0, result
    assert fake_ops == [("up", "trial", True)]
    assert "efsctl --stack trial down --yes" in result.stdout


def test_cli_demo_ignores_efsctl_stack_from_the_environment(cli, moto_drive, demo_api, fake_ops, monkeypatch):
    import efsctl.drive.upload as upload_mod
    from efsctl.waits import FakeClock

    monkeypatch.setattr(upload_mod, "Clock", FakeClock)
    result = cli("demo", env={"EFSCTL_STACK": "work"})
    assert result.exit_code == 0, result
    assert fake_ops == [("up", "demo", True), ("down", "demo", None)]


def test_cli_demo_fails_when_a_step_fails_and_still_cleans_up(cli, moto_drive, demo_api, fake_ops, monkeypatch):
    import efsctl.drive.upload as upload_mod
    from efsctl.waits import FakeClock

    demo_api.route("POST", "/predict", (404, {"error": {"code": "NotFound", "message": "Model not found"}}))
    monkeypatch.setattr(upload_mod, "Clock", FakeClock)
    result = cli("demo")
    assert result.exit_code == 1
    assert "✗ predict" in result.stdout and "Model not found" in result.stdout
    assert "✓ models" not in result.stdout and "✓ down" in result.stdout
    assert fake_ops[-1] == ("down", "demo", None)


@pytest.mark.parametrize("target", ["aws", "local"])
def test_cli_demo_refuses_a_stack_that_exists_and_touches_nothing(cli, efsctl_home, fake_ops, target):
    from efsctl.state import StackState, StateStore

    store = StateStore(efsctl_home)
    store.save(StackState(stack="demo", target=target, region=REGION, resources={"vpc": {"kind": "vpc", "id": "v"}}))
    before = store.path("demo").read_bytes()
    result = cli("demo")
    assert result.exit_code == 2, result
    assert "Stack 'demo' already exists" in result.stderr and "efsctl --stack demo-2 demo" in result.stderr
    assert fake_ops == [] and store.path("demo").read_bytes() == before


def test_cli_demo_refuses_a_local_stack_known_only_by_its_directory(cli, efsctl_home, fake_ops):
    from efsctl.state import StateStore

    data = StateStore(efsctl_home).local_dir("demo")
    data.mkdir(parents=True)
    (data / "model.bin").write_bytes(b"mine")
    result = cli("demo")
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert fake_ops == [] and (data / "model.bin").read_bytes() == b"mine"


