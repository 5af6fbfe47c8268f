"""``efsctl status`` on a local stack names the local cloud's health, URLs and log file."""

from __future__ import annotations

import json
import subprocess
import sys

from efsctl.state import StackState, StateStore


def test_status_json_includes_the_local_cloud(cloud, cli):
    cloud.store.save(StackState(stack=cloud.stack, target="local", region="us-east-1", local=cloud.record))
    result = cli("--stack", cloud.stack, "status", "--json", env={"EFSCTL_HOME": str(cloud.store.home)})
    assert result.exit_code == 0, result.output
    local = result.json()["local_cloud"]
    assert local["health"] == "healthy" and local["pid"] == cloud.record["pid"]
    assert local["endpoint_url"] == cloud.endpoint_url and local["gateway_url"] == cloud.gateway_url
    assert local["log_file"] == str(cloud.data_dir / "cloud.log")

    text = cli("--stack", cloud.stack, "status", env={"EFSCTL_HOME": str(cloud.store.home)})
    assert text.exit_code == 0
    assert f"Local cloud: running (pid {cloud.record['pid']})" in text.stdout
    assert "API signing: SigV4 for execute-api in us-east-1 with access key efsctllocal" in text.stdout
    assert cloud.gateway_url in text.stdout and "cloud.log" in text.stdout


def stopped_cloud(efsctl_home) -> int:
    """A local stack whose cloud's process is gone; returns the dead pid."""
    store = StateStore(efsctl_home)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record = {"pid": gone.pid, "token": "t", "endpoint_port": 1, "gateway_port": 1,
              "endpoint_url": "http://127.0.0.1:1", "gateway_url": "http://127.0.0.1:1",
              "log_file": str(store.local_dir("default") / "cloud.log"), "version": "v"}
    store.local_dir("default").mkdir(parents=True)
    (store.local_dir("default") / "cloud.json").write_text(json.dumps(record))
    store.save(StackState(stack="default", target="local", region="us-east-1", local=record))
    return gone.pid


def test_status_of_a_stopped_local_cloud_says_so(cli, efsctl_home):
    pid = stopped_cloud(efsctl_home)
    doc = cli("status", "--json").json()["local_cloud"]
    assert doc["health"] == "stopped" and f"pid {pid}" in doc["problem"]


def test_a_stopped_local_clouds_iam_report_comes_from_its_usage_log(cli, efsctl_home):
    from efsctl.local.fidelity.iam_policy import Decision, Grant
    from efsctl.local.fidelity.iam_usage import HANDLER, UsageLog

    stopped_cloud(efsctl_home)
    log = UsageLog(StateStore(efsctl_home).local_dir("default") / "iam-usage.json", clock=lambda: 0.0)
    grant = Grant("efsctl", "ReadModels", "s3:GetObject", "arn:aws:s3:::b/models/*")
    log.record(function="efsctl-default-producer", role_arn="arn:aws:iam::1:role/p", principal_arn="p", by=HANDLER,
               action="s3:GetObject", resource="arn:aws:s3:::b/models/a", decision=Decision(True, "allowed", (grant,)))
    log.close()
    iam = cli("status", "--json").json()["iam"]
    producer = iam["functions"]["efsctl-default-producer"]
    assert iam["live"] is False and producer["unused"] is None
    assert [(u["action"], u["count"]) for u in producer["used"]] == [("s3:GetObject", 1)]
    text = cli("status").stdout
    assert "(the cloud is not running: grants unknown)" in text
    assert "used by the handler: s3:GetObject on arn:aws:s3:::b/models/* (1x)" in text


def test_status_of_an_aws_stack_has_no_local_section(cli, efsctl_home):
    StateStore(efsctl_home).save(StackState(stack="default", target="aws", region="eu-west-1"))
    assert "local_cloud" not in cli("status", "--json").json()
