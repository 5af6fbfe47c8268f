"""End to end with no AWS account: ``efsctl up --local``, the real handlers, ``down --yes``."""

from __future__ import annotations

import hashlib
import json
import os

from localhelpers import http_request, signed_headers

from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION
from efsctl.local.lifecycle import pid_alive, port_open


def client(endpoint_url, service):
    import boto3

    return boto3.client(service, endpoint_url=endpoint_url, region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)


def test_up_local_upload_predict_and_down(cli, efsctl_home):
    result = cli("up", "--local")
    assert result.exit_code == 0, result.output
    try:
        status = cli("status", "--json")
        assert status.exit_code == 0, status.output
        local = status.json()["local_cloud"]
        assert local["health"] == "healthy"
        endpoint, gateway = local["endpoint_url"], local["gateway_url"]

        body = json.dumps({"model": "m.bin"}).encode()
        code, _, resp = http_request("POST", f"{gateway}/predict", body, {"content-type": "application/json"})
        assert (code, json.loads(resp)) == (403, {"message": "Forbidden"})

        s3 = client(endpoint, "s3")
        [bucket] = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("efsctl-default-")]
        data = os.urandom(256 * 1024)
        s3.put_object(Bucket=bucket, Key="models/m.bin", Body=data,
                      Metadata={"sha256": hashlib.sha256(data).hexdigest()})
        code, _, drained = http_request("GET", f"{endpoint}/_efsctl/drain?timeout=30")
        assert code == 200 and json.loads(drained)["drained"]
        efs_files = [p for p in (efsctl_home / "local" / "default" / "efs").rglob("m.bin") if "models" in p.parts]
        assert efs_files and efs_files[0].read_bytes() == data

        headers = signed_headers("POST", f"{gateway}/predict", body, {"content-type": "application/json"})
        code, _, resp = http_request("POST", f"{gateway}/predict", body, headers)
        assert code == 200, resp
        assert json.loads(resp)["sha256"] == hashlib.sha256(data).hexdigest()

        logs = client(endpoint, "logs")
        events = logs.filter_log_events(logGroupName="/aws/lambda/efsctl-default-producer")["events"]
        assert any(e["message"].startswith("REPORT RequestId:") for e in events)

        again = cli("up", "--local")
        assert again.exit_code == 0, again.output
    finally:
        down = cli("down", "--yes")
        if down.exit_code != 0:   # never leave the process behind
            from efsctl.console import Console
            from efsctl.local import stop_local_cloud
            from efsctl.state import StateStore

            stop_local_cloud(StateStore(efsctl_home), "default", Console())
    assert down.exit_code == 0, down.output
    assert not pid_alive(local["pid"])
    assert not port_open(int(endpoint.rsplit(":", 1)[1])) and not port_open(int(gateway.rsplit(":", 1)[1]))
