"""End to end against the local cloud: the drive commands on a real `efsctl up --local` stack.

One stack for the module (created in a temporary EFSCTL_HOME, removed with `down --yes` at the
end); every test makes its own models, so none depends on another's order. Waits here are
efsctl's own bounded waits on a real clock: the producer runs asynchronously.
"""

from __future__ import annotations

import hashlib

import pytest
import stackrun
from stackrun import CLEAN_ENV, Result

from efsctl.drive.demo import write_sample_model
from efsctl.waits import Clock, FakeClock, Outcome, Poll, wait_until

STACK = "e2e-drive"


class Efsctl(stackrun.Efsctl):
    def aws(self):
        return self.connection().aws


@pytest.fixture(scope="module")
def efsctl(tmp_path_factory):
    with stackrun.local_stack(Efsctl(tmp_path_factory.mktemp("efsctl-drive-e2e"), STACK)) as run:
        yield run


@pytest.fixture
def model(tmp_path):
    """``model(name)`` writes a small safetensors file named after ``name``; returns (path, sha256)."""
    def make(filename="model.safetensors"):
        path = tmp_path / filename
        write_sample_model(path, seed=len(filename))
        return path, hashlib.sha256(path.read_bytes()).hexdigest()

    return make


def eventually(check, what, timeout=20.0):
    return wait_until(check, what=what, timeout=timeout, clock=Clock(), poll=Poll(floor=0.1, ceiling=1.0))


# -- upload -------------------------------------------------------------------------------

def test_upload_with_wait_name_with_a_space(efsctl, model):
    path, sha = model("my model.safetensors")
    result = efsctl("upload", str(path), "--wait", "--json")
    assert result.exit_code == 0, result
    doc = result.json()
    assert doc["name"] == "my model.safetensors" and doc["key"] == "models/my model.safetensors"
    assert doc["sha256"] == sha and doc["size"] == path.stat().st_size
    assert doc["wait"]["on_efs"] is True and doc["wait"]["latency_s"] >= 0

    listed = efsctl("models", "--json")
    assert listed.exit_code == 0, listed
    entry = {m["name"]: m for m in listed.json()["models"]}["my model.safetensors"]
    assert entry["sha256"] == sha and entry["size"] == path.stat().st_size

    predicted = efsctl("predict", "my model.safetensors", "--json")
    assert predicted.exit_code == 0, predicted
    body = predicted.json()
    assert body["sha256"] == sha and body["format"] == "safetensors" and body["model"] == "my model.safetensors"
    assert body["analysis"]["tensors"] == 2 and body["output"]["s3_key"].startswith("outputs/")


def test_upload_without_wait_then_it_arrives(efsctl, model):
    from efsctl.drive.api import ApiError
    from efsctl.drive.target import api_client, resolve_target

    path, sha = model("nowait.safetensors")
    result = efsctl("upload", str(path), "--no-wait", "--json")
    assert result.exit_code == 0, result
    doc = result.json()
    assert doc["wait"] is None and doc["sha256"] == sha
    aws = efsctl.aws()
    head = aws.client("s3").head_object(Bucket=doc["bucket"], Key="models/nowait.safetensors")
    assert head["Metadata"] == {"sha256": sha}

    target = resolve_target(efsctl.state(), aws)
    with api_client(target, aws) as api:
        def check():
            try:
                return Outcome(api.get_model("nowait.safetensors").body.get("sha256") == sha)
            except ApiError as exc:
                if exc.status == 404:
                    return Outcome(False)
                raise
        eventually(check, "the producer's copy")


def test_unicode_and_nested_names(efsctl, model):
    path, sha = model("plain.safetensors")
    name = "modèles/数据 v2.safetensors"
    result = efsctl("upload", str(path), "--name", name, "--wait", "--json")
    assert result.exit_code == 0, result
    assert result.json()["sha256"] == sha
    predicted = efsctl("predict", name, "--json")
    assert predicted.exit_code == 0 and predicted.json()["sha256"] == sha
    assert name in {m["name"] for m in efsctl("models", "--json").json()["models"]}


def test_checksum_mismatch_is_reported_as_a_producer_rejection(efsctl, model):
    path, sha = model("tampered.safetensors")
    wrong = hashlib.sha256(b"something else").hexdigest()
    result = efsctl("upload", str(path), "--wait", "--json", "--declared-sha256", wrong, "--timeout", "30")
    assert result.exit_code == 1, result
    doc = result.json()
    assert doc["wait"]["on_efs"] is False and doc["wait"]["rejected"] is True
    assert doc["wait"]["reason"] == "checksum_mismatch" and "producer refused" in result.stderr
    assert "tampered.safetensors" not in {m["name"] for m in efsctl("models", "--json").json()["models"]}
    predicted = efsctl("predict", "tampered.safetensors")
    assert predicted.exit_code == 1


def test_a_name_conflict_ends_the_wait_with_the_producers_reason(efsctl, model):
    path, _ = model("base.safetensors")
    assert efsctl("upload", str(path), "--name", "clash", "--wait").exit_code == 0
    result = efsctl("upload", str(path), "--name", "clash/inner", "--wait", "--json", "--timeout", "60")
    assert result.exit_code == 1, result
    wait = result.json()["wait"]
    assert wait["rejected"] is True and wait["reason"] == "name_conflict" and "timed_out" not in wait
    assert "models/clash is a model, not a folder" in result.stderr


def test_bytes_changed_on_efs_are_corrupt_until_uploaded_again(efsctl, model):
    path, sha = model("fragile.safetensors")
    assert efsctl("upload", str(path), "--wait").exit_code == 0
    on_efs = next(efsctl.home.glob("local/*/efs/*/*/models/fragile.safetensors"))
    with open(on_efs, "r+b") as f:
        f.seek(100)
        f.write(b"EVIL")
    verified = efsctl("predict", "fragile.safetensors", "--verify")
    assert verified.exit_code == 1 and "Model 'fragile.safetensors' is corrupt on EFS" in verified.stderr
    entry = {m["name"]: m for m in efsctl("models", "--json").json()["models"]}["fragile.safetensors"]
    assert entry["corrupt"]["expected_sha256"] == sha
    assert efsctl("upload", str(path), "--wait").exit_code == 0
    repaired = efsctl("predict", "fragile.safetensors", "--verify", "--json")
    assert repaired.exit_code == 0 and repaired.json()["sha256"] == sha


# -- predict ------------------------------------------------------------------------------

def test_predict_summary_and_load_mode(efsctl, model):
    path, sha = model("load.safetensors")
    assert efsctl("upload", str(path), "--wait").exit_code == 0
    result = efsctl("predict", "load.safetensors")
    assert result.exit_code == 0, result
    for text in (sha, "safetensors", "2 tensors", "round trip", "outputs/"):
        assert text in result.stdout, text
    load = efsctl("predict", "load.safetensors", "--concurrency", "4", "--requests", "24", "--json")
    assert load.exit_code == 0, load
    doc = load.json()
    assert {"p50_ms", "p90_ms", "p99_ms", "max_ms", "rps", "errors"} <= set(doc)
    assert doc["errors"] == 0 and doc["requests"] == 24 and doc["concurrency"] == 4
    assert 0 < doc["p50_ms"] <= doc["p90_ms"] <= doc["p99_ms"] <= doc["max_ms"] and doc["rps"] > 0


def test_unknown_and_hostile_names(efsctl, model):
    unknown = efsctl("predict", "no-such-model.bin")
    assert unknown.exit_code == 1 and "not found" in unknown.stderr.lower()
    for name in ("../etc/passwd", "/abs", ".hidden", "a/../b", "a\\b"):
        hostile = efsctl("predict", name)
        assert hostile.exit_code == 2 and "Invalid model name" in hostile.stderr, name
    path, _ = model("ok.safetensors")
    assert efsctl("upload", str(path), "--name", "../escape", "--wait").exit_code == 2


def test_unsigned_requests_are_refused(efsctl):
    from efsctl.drive.api import ApiClient, ApiError

    with pytest.raises(ApiError) as info:
        ApiClient(efsctl.state().outputs["api_url"], None).list_models()
    assert info.value.status == 403


# -- tail-logs ----------------------------------------------------------------------------

def test_tail_logs_text_and_json_show_both_functions(efsctl, model):
    path, _ = model("logs.safetensors")
    assert efsctl("upload", str(path), "--wait").exit_code == 0
    assert efsctl("predict", "logs.safetensors").exit_code == 0

    def both():
        result = efsctl("tail-logs", "--since", "10m", "--json")
        assert result.exit_code == 0, result
        docs = result.lines()
        return Outcome({"producer", "consumer"} <= {d["function"] for d in docs}, docs)

    docs = eventually(both, "both functions' logs")
    assert all(isinstance(d, dict) and d["timestamp"] and d["message"] is not None for d in docs)
    assert [d["timestamp_ms"] for d in docs] == sorted(d["timestamp_ms"] for d in docs)
    assert any(d["record"] and d["record"].get("key") == "models/logs.safetensors" for d in docs)

    text = efsctl("tail-logs", "--since", "10m")
    assert text.exit_code == 0
    assert " producer " in text.stdout and " consumer " in text.stdout and "START RequestId" in text.stdout
    only = efsctl("tail-logs", "--since", "10m", "--function", "consumer", "--json").lines()
    assert only and {d["function"] for d in only} == {"consumer"}


def test_follow_ends_cleanly_on_interrupt(efsctl, monkeypatch):
    import efsctl.drive.logs as logs_mod

    class CtrlC(FakeClock):
        def _sleep(self, seconds):
            super()._sleep(seconds)
            if len(self.sleeps) >= 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(logs_mod, "Clock", CtrlC)
    result = efsctl("tail-logs", "--follow", "--since", "10m")
    assert result.exit_code == 0, result
    assert "Interrupted" not in result.stderr


# -- read-only commands ---------------------------------------------------------------------

def snapshot(efsctl) -> dict:
    """What a read-only command must leave alone: the state file, the cloud's record (its pid),
    and every file on the stack's EFS (models included), byte for byte."""
    data = efsctl.home / "local" / efsctl.stack
    efs = data / "efs"
    return {"state": (efsctl.home / "stacks" / f"{efsctl.stack}.json").read_bytes(),
            "cloud": (data / "cloud.json").read_bytes(),
            "efs": {str(p.relative_to(efs)): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in sorted(efs.rglob("*")) if p.is_file()}}


def test_dry_runs_plan_and_status_leave_the_cloud_its_models_and_the_state_alone(efsctl, model):
    path, sha = model("kept.safetensors")
    assert efsctl("upload", str(path), "--wait").exit_code == 0
    before = snapshot(efsctl)
    assert any(name.endswith("models/kept.safetensors") for name in before["efs"])
    runs = [("up", "--dry-run", "--realism", "aws", "--json"), ("up", "--local", "--dry-run", "--time-scale", "0.5"),
            ("up", "--dry-run", "--throttle-rate", "0.2"), ("plan",), ("plan", "--json"), ("status",),
            ("status", "--json")]
    results = {args: efsctl(*args) for args in runs}
    for args, result in results.items():
        assert result.exit_code == 0, (args, result)
    assert snapshot(efsctl) == before
    doc = results[("up", "--dry-run", "--realism", "aws", "--json")].json()
    assert doc["summary"] == {"create": 0, "update": 0, "skip": 25} and doc["live"] is True
    assert doc["notes"] == ["`up` would restart the local cloud with realism 'aws'; this plan does not."]
    assert "time scale x0.5" in results[("up", "--local", "--dry-run", "--time-scale", "0.5")].stderr
    listed = {m["name"]: m for m in efsctl("models", "--json").json()["models"]}
    assert listed["kept.safetensors"]["sha256"] == sha  # the same cloud still serves it


def test_plan_and_up_dry_run_print_the_same_document(efsctl):
    plan, dry = efsctl("plan", "--json"), efsctl("up", "--dry-run", "--json")
    assert plan.exit_code == dry.exit_code == 0
    assert plan.json() == dry.json() and plan.json()["dry_run"] is True


def test_demo_on_an_existing_local_stack_deletes_nothing_of_it(efsctl, model):
    path, _ = model("still-here.safetensors")
    assert efsctl("upload", str(path), "--wait").exit_code == 0
    before = snapshot(efsctl)
    result = efsctl("--stack", efsctl.stack, "demo")
    assert result.exit_code == 2, result
    assert f"Stack {efsctl.stack!r} already exists" in result.stderr
    assert snapshot(efsctl) == before
    assert efsctl("status").exit_code == 0


# -- demo ---------------------------------------------------------------------------------

def test_demo_round_trip(tmp_path):
    from typer.testing import CliRunner

    from efsctl.cli import app

    env = dict(CLEAN_ENV, EFSCTL_HOME=str(tmp_path / "demo-home"), EFSCTL_STACK=None)
    result = Result(CliRunner().invoke(app, ["demo"], env=env, catch_exceptions=True))
    assert result.exit_code == 0, result
    for step in ("up", "sample model", "upload", "predict", "models", "logs", "down"):
        assert f"✓ {step}" in result.stdout, step
    assert "round trip complete" in result.stdout
