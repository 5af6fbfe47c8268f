"""`efsctl validate` on a real local stack: every claim holds and nothing is left behind, the
user's own models untouched; then each kind of sabotage fails its claim, with exit 1.

One stack for the module. Each sabotage test puts the stack back as it found it (`efsctl up`
re-deploys what it changed), so no test depends on another's order.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from conftest import local_stack

LAMBDA_CODE = Path(__file__).resolve().parents[2] / "lambda_code"


@pytest.fixture(scope="module")
def efsctl(tmp_path_factory):
    yield from local_stack(tmp_path_factory, "validate-e2e")


def s3_keys(efsctl, prefix):
    s3 = efsctl.client("s3")
    bucket = efsctl.connection().target.bucket
    return sorted(o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                  for o in page.get("Contents", []))


def test_every_claim_holds_and_only_the_runs_data_goes(efsctl, tmp_path):
    user = tmp_path / "mine.safetensors"
    user.write_bytes(b"user's own model " * 1000)
    assert efsctl("upload", str(user), "--wait").exit_code == 0
    assert efsctl("predict", "mine.safetensors").exit_code == 0
    before = {m["name"]: m for m in efsctl("models", "--json").json()["models"]}
    outputs_before = s3_keys(efsctl, "outputs/")
    efs_outputs_before = sorted(p.name for p in (efsctl.efs_root() / "outputs").iterdir())

    result = efsctl("validate", "--quick", "--json")

    assert result.exit_code == 0, result
    doc = result.json()
    assert [c["verdict"] for c in doc["claims"]] == ["pass"] * 6 and doc["ok"] is True
    assert doc["passed"] == [1, 2, 3, 4, 5, 6] and doc["failed"] == []
    one = result.claim(1)["measurements"]
    assert one["uploads"] == one["arrived"] == 4 and one["s3_to_efs_s"]["count"] == 4
    three = result.claim(3)["measurements"]
    assert [lv["concurrency"] for lv in three["levels"]] == [1, 2, 4, 8, 16] and three["errors"] == 0
    assert all(lv["rps"] > 0 and lv["p50_ms"] > 0 for lv in three["levels"]) and three["saturates_at"] in (1, 2, 4, 8, 16)
    four = result.claim(4)["measurements"]
    assert four["torn_reads"] == 0 and four["reads"] > 0 and four["final_on_efs"] == four["last_writer_by_s3"]
    five = result.claim(5)["measurements"]
    assert five["environments"]["reused"] == 0 and five["environments"]["environments_after"] >= 1
    assert five["environments"]["cold_starts"] >= 1
    assert five["restart"]["measured"] is True and five["restart"]["ok"] is True   # the cloud restarted over its state
    assert result.claim(5)["notes"] == []
    six = result.claim(6)["measurements"]["functions"]
    assert six["producer"]["handler_actions"] == ["s3:GetObject"] and six["consumer"]["handler_actions"] == ["s3:PutObject"]
    assert doc["cleanup"]["efs"]["outputs"] > 0 and doc["cleanup"]["left_on_efs"] == []

    # The run's models and results are gone, in S3 and on EFS; the user's are as they were.
    assert s3_keys(efsctl, "models/efsctl-validate/") == []
    assert not (efsctl.efs_root() / "models" / "efsctl-validate").exists()
    assert s3_keys(efsctl, "outputs/") == outputs_before
    assert sorted(p.name for p in (efsctl.efs_root() / "outputs").iterdir()) == efs_outputs_before
    after = {m["name"]: m for m in efsctl("models", "--json").json()["models"]}
    assert after == before
    assert s3_keys(efsctl, "models/") == ["models/mine.safetensors"]
    names = [doc["folder"] + m["name"] for m in one["models"]] + [doc["folder"] + four["name"]]
    meta = efsctl.efs_root() / ".efsctl" / "meta"
    for name in names:
        assert not list(meta.glob(hashlib.sha256(name.encode()).hexdigest() + "*"))


def test_keep_leaves_the_run_in_place(efsctl):
    outputs_before = s3_keys(efsctl, "outputs/")
    result = efsctl("validate", "--quick", "--claims", "events,api", "--keep", "--json")
    assert result.exit_code == 0, result
    folder = result.json()["folder"]
    assert len(s3_keys(efsctl, f"models/{folder}")) == 4 and result.json()["cleanup"] is None
    listed = [m["name"] for m in efsctl("models", "--json").json()["models"] if m["name"].startswith(folder)]
    assert len(listed) == 4
    removed = efsctl("validate", "--remove", result.json()["run"], "--json")
    assert removed.exit_code == 0, removed
    cleanup = removed.json()["cleanup"]
    assert cleanup["efs"]["models"] == 4 and cleanup["efs"]["outputs"] == 4 and cleanup["left_on_efs"] == []
    assert cleanup["s3"]["objects"] == 8   # 4 models, 4 results
    assert s3_keys(efsctl, f"models/{folder}") == [] and s3_keys(efsctl, "outputs/") == outputs_before


def test_a_stopped_producer_fails_claim_1_with_the_reason(efsctl):
    lam = efsctl.client("lambda")
    producer = efsctl.connection().target.functions["producer"]
    lam.put_function_concurrency(FunctionName=producer, ReservedConcurrentExecutions=0)
    try:
        result = efsctl("validate", "--quick", "--claims", "1", "--timeout", "3", "--json")
    finally:
        lam.delete_function_concurrency(FunctionName=producer)
    assert result.exit_code == 1, result
    claim = result.claim(1)
    assert claim["verdict"] == "fail" and claim["measurements"]["arrived"] == 0
    assert claim["reason"].startswith("4 of 4 uploads did not reach EFS: the producer")
    assert "is stopped (its reserved concurrency is 0" in claim["reason"]
    assert "Claim 1 (Event-driven) failed" in result.stderr


def test_a_consumer_locked_out_of_efs_fails_claim_2(efsctl):
    conn = efsctl.connection()
    efs, lam = efsctl.client("efs"), efsctl.client("lambda")
    consumer = conn.target.functions["consumer"]
    config = lam.get_function_configuration(FunctionName=consumer)
    fs_id = next(efsctl.home.glob(f"local/{efsctl.stack}/efs/fs-*")).name
    fs_arn = f"arn:aws:elasticfilesystem:us-east-1:{conn.state.account}:file-system/{fs_id}"
    efs.put_file_system_policy(FileSystemId=fs_id, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "everyone", "Effect": "Allow", "Principal": {"AWS": "*"}, "Resource": fs_arn,
         "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]},
        {"Sid": "not-the-consumer", "Effect": "Deny", "Principal": {"AWS": config["Role"]}, "Resource": fs_arn,
         "Action": "elasticfilesystem:ClientMount"}]}))
    # New environments mount the file system; the warm ones already have it (as on AWS).
    variables = {**config["Environment"]["Variables"], "SABOTAGE": "1"}
    lam.update_function_configuration(FunctionName=consumer, Environment={"Variables": variables})
    try:
        result = efsctl("validate", "--quick", "--claims", "2", "--json")
    finally:  # moto has no DeleteFileSystemPolicy: EFS's default policy (everyone may mount) instead
        efs.put_file_system_policy(FileSystemId=fs_id, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "default", "Effect": "Allow", "Principal": {"AWS": "*"}, "Resource": fs_arn,
             "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite",
                        "elasticfilesystem:ClientRootAccess"]}]}))
        assert efsctl("up").exit_code == 0
    assert result.exit_code == 1, result
    claim = result.claim(2)
    assert claim["verdict"] == "fail" and claim["measurements"]["matched"] == 0
    assert claim["reason"].startswith("the consumer failed 4 of 4 predictions")
    assert "Claim 2 (Shared state over a REST API) failed" in result.stderr


IN_PLACE = '''

def _write_in_place(fd, tmp, dest):
    """Sabotage (efsctl's tests only): copy the verified temp over the model's own file, in place
    and slowly (as a producer without write-then-rename over NFS would), then drop the temp."""
    import time as _time
    with open(tmp, "rb") as src, open(dest, "r+b" if os.path.exists(dest) else "wb") as out:
        while True:
            chunk = src.read(4096)
            if not chunk:
                break
            out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
            _time.sleep(0.002)
        out.truncate()
    store.discard_temp(fd, tmp)
'''


def in_place_zip() -> bytes:
    source = (LAMBDA_CODE / "producer.py").read_text()
    assert "store.commit_temp(fd, tmp, dest)" in source  # the line this sabotage replaces
    sabotaged = source.replace("store.commit_temp(fd, tmp, dest)", "_write_in_place(fd, tmp, dest)") + IN_PLACE
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(LAMBDA_CODE.glob("*.py")):
            if path.name != "__init__.py":
                archive.writestr(path.name, sabotaged if path.name == "producer.py" else path.read_text())
    return buffer.getvalue()


def test_a_producer_that_writes_in_place_fails_claim_4_with_the_torn_reads_counted(efsctl):
    lam = efsctl.client("lambda")
    producer = efsctl.connection().target.functions["producer"]
    lam.update_function_code(FunctionName=producer, ZipFile=in_place_zip())
    try:
        result = efsctl("validate", "--quick", "--claims", "atomic", "--json")
    finally:
        assert efsctl("up").exit_code == 0   # the stack's own zip again
    assert result.exit_code == 1, result
    claim = result.claim(4)
    torn = claim["measurements"]["torn_reads"]
    assert claim["verdict"] == "fail" and torn > 0
    assert claim["reason"].startswith(f"{torn} of {claim['measurements']['reads']} reads were torn (")
    assert "Claim 4 (Atomic operations) failed" in result.stderr
