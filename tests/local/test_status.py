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
    assert f"Local cloud: healthy (pid {cloud.record['pid']})" in text.stdout
    assert cloud.gateway_url in text.stdout and "cloud.log" in text.stdout


def test_status_of_a_stopped_local_cloud_says_so(cli, efsctl_home):
    store = StateStore(efsctl_home)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record = {"pid": gone.pid, "token": "t", "endpoint_port": 1, "gateway_port": 1,
              "endpoint_url": "http://127.0.0.1:1", "gateway_url": "http://127.0.0.1:1",
              "log_file": str(store.local_dir("default") / "cloud.log"), "version": "v"}
    store.local_dir("default").mkdir(parents=True)
    (store.local_dir("default") / "cloud.json").write_text(json.dumps(record))
    store.save(StackState(stack="default", target="local", region="us-east-1", local=record))
    doc = cli("status", "--json").json()["local_cloud"]
    assert doc["health"] == "stopped" and f"pid {gone.pid}" in doc["problem"]


def test_status_of_an_aws_stack_has_no_local_section(cli, efsctl_home):
    StateStore(efsctl_home).save(StackState(stack="default", target="aws", region="eu-west-1"))
    assert "local_cloud" not in cli("status", "--json").json()
