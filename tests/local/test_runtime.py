"""The Lambda runtime inside the local cloud: S3 events, invocations, logs, concurrency, timeouts."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError
from localhelpers import handler_zip

REPORT = re.compile(r"^REPORT RequestId: (\S+)\tDuration: ([\d.]+) ms\tBilled Duration: (\d+) ms\t"
                    r"Memory Size: (\d+) MB\tMax Memory Used: (\d+) MB")


def invoke(cloud, name, event, **kwargs):
    response = cloud.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode(), **kwargs)
    return response, json.loads(response["Payload"].read() or b"null")


def log_messages(cloud, name):
    logs = cloud.client("logs")
    pages = logs.get_paginator("filter_log_events").paginate(logGroupName=f"/aws/lambda/{name}")
    return [e["message"] for page in pages for e in page["events"]]


def test_upload_under_prefix_reaches_function_asynchronously_and_lands_on_efs(cloud, network, make_function,
                                                                               efs_root):
    s3, lam = cloud.client("s3"), cloud.client("lambda")
    fn = make_function("copy_to_efs")
    bucket = "efsctl-test-uploads"
    s3.create_bucket(Bucket=bucket)
    fn_arn = lam.get_function(FunctionName=fn)["Configuration"]["FunctionArn"]
    lam.add_permission(FunctionName=fn, StatementId="s3", Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{bucket}")
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{"LambdaFunctionArn": fn_arn, "Events": ["s3:ObjectCreated:*"],
                                          "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "models/"}]}}}]})

    started = time.perf_counter()
    put = s3.put_object(Bucket=bucket, Key="models/team a/m+1.bin", Body=b"x" * 4096)
    s3.put_object(Bucket=bucket, Key="other/ignored.bin", Body=b"y")
    assert time.perf_counter() - started < 2.0   # the upload does not wait for the function
    cloud.drain()

    landed = efs_root / "models" / "team a" / "m+1.bin"
    assert landed.read_bytes() == b"x" * 4096
    assert not (efs_root / "other").exists()
    seen = json.loads((efs_root / "models" / "team a" / "m+1.bin.event.json").read_text())
    record = seen["event"]["Records"][0]
    assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"] == {"name": bucket, "ownerIdentity": record["s3"]["bucket"]["ownerIdentity"],
                                      "arn": f"arn:aws:s3:::{bucket}"}
    obj = record["s3"]["object"]
    assert obj["key"] == "models/team+a/m%2B1.bin"          # form-encoded, '/' kept
    assert obj["size"] == 4096 and obj["eTag"] == put["ETag"].strip('"')
    assert re.fullmatch(r"[0-9A-F]{18}", obj["sequencer"])
    # The deployed zip runs, with the local endpoint, credentials and the mapped mount path.
    assert seen["env"]["EFS_MOUNT_PATH"] == str(efs_root)
    assert seen["env"]["AWS_ENDPOINT_URL"] == cloud.endpoint_url
    assert seen["env"]["AWS_LAMBDA_FUNCTION_NAME"] == fn
    assert seen["file"].startswith(str(cloud.data_dir / "functions" / fn))
    messages = log_messages(cloud, fn)
    assert any('"msg": "copied"' in m for m in messages)


def test_a_multipart_upload_invokes_the_function_once(cloud, network, make_function, efs_root):
    """S3 sends one ObjectCreated:CompleteMultipartUpload for a multipart upload (moto also sent a Put)."""
    from boto3.s3.transfer import TransferConfig

    s3, lam = cloud.client("s3"), cloud.client("lambda")
    fn = make_function("copy_to_efs")
    bucket = "efsctl-test-multipart"
    s3.create_bucket(Bucket=bucket)
    fn_arn = lam.get_function(FunctionName=fn)["Configuration"]["FunctionArn"]
    lam.add_permission(FunctionName=fn, StatementId="s3", Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{bucket}")
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{"LambdaFunctionArn": fn_arn, "Events": ["s3:ObjectCreated:*"]}]})
    body = os.urandom(11 * 1024 * 1024)
    source = cloud.data_dir.parent / "multipart-source.bin"
    source.write_bytes(body)
    s3.upload_file(str(source), bucket, "models/parts.bin",
                   Config=TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024))
    source.unlink()
    assert s3.head_object(Bucket=bucket, Key="models/parts.bin")["ETag"].endswith('-3"')
    cloud.drain()
    starts = [m for m in log_messages(cloud, fn) if m.startswith("START RequestId:")]
    assert len(starts) == 1
    seen = json.loads((efs_root / "models" / "parts.bin.event.json").read_text())
    assert seen["event"]["Records"][0]["eventName"] == "ObjectCreated:CompleteMultipartUpload"
    assert (efs_root / "models" / "parts.bin").read_bytes() == body


def test_sequencers_grow_for_a_key(cloud):
    from efsctl.local.fidelity.s3_events import sequencer

    first, second = sequencer(), sequencer()
    assert len(first) == len(second) == 18 and second > first


def test_invocation_writes_start_end_report_and_handler_output(cloud, make_function):
    fn = make_function("echo", efs=False)
    response, body = invoke(cloud, fn, {"hi": 1}, LogType="Tail")
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert body["statusCode"] == 201
    tail = base64.b64decode(response["LogResult"]).decode()
    assert "START RequestId:" in tail and "END RequestId:" in tail and "REPORT RequestId:" in tail
    messages = log_messages(cloud, fn)
    start = next(m for m in messages if m.startswith("START"))
    request_id = start.split()[2]
    assert start == f"START RequestId: {request_id} Version: $LATEST"
    assert f"echo {request_id}" in messages
    report = next(REPORT.match(m) for m in messages if m.startswith("REPORT"))
    assert report and report.group(1) == request_id
    assert int(report.group(4)) == 256 and int(report.group(5)) > 5   # the worker's real peak RSS
    assert float(report.group(2)) <= int(report.group(3))
    assert messages.index(start) < messages.index(f"echo {request_id}") < messages.index(f"END RequestId: {request_id}")
    streams = cloud.client("logs").describe_log_streams(logGroupName=f"/aws/lambda/{fn}")["logStreams"]
    assert all(re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", s["logStreamName"]) for s in streams)


def test_handler_error_is_unhandled_with_lambdas_error_shape(cloud, make_function):
    fn = make_function("boom", efs=False)
    response, body = invoke(cloud, fn, {"why": "testing"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "boom: testing"
    assert any("raise ValueError" in line for line in body["stackTrace"])
    assert any(m.startswith("[ERROR] ValueError: boom: testing") for m in log_messages(cloud, fn))


def test_handler_timeout_is_enforced(cloud, make_function):
    fn = make_function("sleepy", efs=False, timeout=1)
    started = time.perf_counter()
    response, body = invoke(cloud, fn, {"seconds": 30})
    assert time.perf_counter() - started < 10
    assert response["FunctionError"] == "Unhandled"
    assert re.fullmatch(r"\S+Z \S+ Task timed out after 1\.00 seconds", body["errorMessage"])
    messages = log_messages(cloud, fn)
    assert "going to sleep" in messages
    assert any(m.startswith("REPORT") and m.endswith("Status: timeout") for m in messages)
    # The environment that timed out is gone; the next call starts a fresh one and works.
    response, body = invoke(cloud, fn, {"seconds": 0})
    assert body == "woke up"


def test_concurrent_invocations_use_several_warm_workers(cloud, make_function):
    fn = make_function("pid", efs=False)
    with ThreadPoolExecutor(max_workers=4) as pool:
        pids = set(pool.map(lambda _: invoke(cloud, fn, {"sleep": 0.5})[1]["pid"], range(4)))
    assert len(pids) >= 2
    # Warm: later calls reuse those environments instead of starting new ones.
    again = {invoke(cloud, fn, {})[1]["pid"] for _ in range(5)}
    assert again <= pids
    stats = cloud.control("/_efsctl/stats")["functions"][fn]
    assert stats["environments"] == len(pids) and set(stats["pids"]) == pids


def test_an_environment_over_its_memory_size_is_killed(cloud, make_function):
    fn = make_function("hog", efs=False, memory=128, timeout=60)
    response, body = invoke(cloud, fn, {"mb": 200})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
    assert any("Status: error\tError Type: Runtime.ExitError" in m for m in log_messages(cloud, fn))
    assert invoke(cloud, fn, {"mb": 1, "hold": 0})[1] == 1 << 20   # a new environment serves the next call


def test_reserved_concurrency_zero_throttles(cloud, make_function):
    fn = make_function("plain", efs=False, reserved=0)
    with pytest.raises(ClientError) as caught:
        invoke(cloud, fn, {})
    assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"


def test_event_invocation_returns_at_once_and_retries_twice(cloud, make_function, efs_root):
    fn = make_function("flaky")
    lam = cloud.client("lambda")
    ok = lam.invoke(FunctionName=fn, InvocationType="Event", Payload=json.dumps({"name": "a", "fail": 2}).encode())
    bad = lam.invoke(FunctionName=fn, InvocationType="Event", Payload=json.dumps({"name": "b", "fail": 9}).encode())
    assert ok["StatusCode"] == 202 and bad["StatusCode"] == 202
    outcomes = {status: attempts for _, status, attempts in cloud.drain()["async_outcomes"][-2:]}
    assert outcomes == {"success": 3, "failed": 3}
    assert (efs_root / "flaky-a").read_text() == "3" and (efs_root / "flaky-b").read_text() == "3"
    log_text = (cloud.data_dir / "cloud.log").read_text()
    assert "failed 3 times, event dropped: RuntimeError: attempt 3 fails" in log_text


def test_dry_run_does_not_run(cloud, make_function):
    fn = make_function("plain", efs=False)
    response = cloud.client("lambda").invoke(FunctionName=fn, InvocationType="DryRun")
    assert response["StatusCode"] == 204
    assert cloud.control("/_efsctl/stats")["functions"].get(fn) is None


def test_new_code_gets_new_environments(cloud, make_function):
    fn = make_function("plain", efs=False)
    assert invoke(cloud, fn, {})[1] == {"hello": "world"}
    code = handler_zip("def plain(event, context):\n    return {'hello': 'again'}\n")
    cloud.client("lambda").update_function_code(FunctionName=fn, ZipFile=code)
    assert invoke(cloud, fn, {})[1] == {"hello": "again"}
