"""The drive commands on a local-target stack: every AWS call goes to a moto *server* on
127.0.0.1 with the local credentials, and the API is signed with them too."""

import hashlib
import json
import time

import pytest

REGION = "us-east-1"
BUCKET = "efsctl-local1-123456789012-us-east-1"
PRODUCER = "/aws/lambda/efsctl-local1-producer"


@pytest.fixture
def local_stack(moto_server, efsctl_home, api_server):
    import boto3

    from efsctl.config import LOCAL_CREDENTIALS
    from efsctl.state import StackState, StateStore

    session = boto3.Session(region_name=REGION, **LOCAL_CREDENTIALS)
    s3 = session.client("s3", endpoint_url=moto_server)
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    state = StackState(stack="local1", target="local", region=REGION, account="123456789012",
                       local={"endpoint_url": moto_server}, outputs={"api_url": api_server.url, "bucket": BUCKET})
    StateStore(efsctl_home).save(state)
    return session, moto_server


def test_upload_goes_to_the_local_endpoint(cli, local_stack, tmp_path):
    session, endpoint = local_stack
    path = tmp_path / "local model.bin"
    path.write_bytes(b"\x01" * 5000)
    result = cli("--stack", "local1", "upload", str(path), "--no-wait", "--json")
    assert result.exit_code == 0, result
    head = session.client("s3", endpoint_url=endpoint).head_object(Bucket=BUCKET, Key="models/local model.bin")
    assert head["Metadata"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_multipart_upload_through_the_server(local_stack, tmp_path, efsctl_home):
    from efsctl.aws.transfer import MiB, TransferSettings
    from efsctl.config import Settings
    from efsctl.console import Console
    from efsctl.drive.upload import upload_model
    from efsctl.operations import Operations

    session, endpoint = local_stack
    conn = Operations(Settings(stack="local1"), Console()).connect()
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * (12 * MiB // 256))
    result = upload_model(conn.aws, conn.target, path, "big.bin", console=Console(),
                          settings=TransferSettings(threshold=5 * MiB, chunk=5 * MiB, concurrency=3))
    head = session.client("s3", endpoint_url=endpoint).head_object(Bucket=BUCKET, Key="models/big.bin")
    assert head["ETag"].strip('"').endswith("-3") and head["Metadata"]["sha256"] == result.sha256
    assert head["ContentLength"] == 12 * MiB


def test_api_calls_are_signed_with_the_local_credentials(cli, local_stack, api_server, verify_sigv4):
    from efsctl.config import LOCAL_CREDENTIALS

    api_server.route("GET", "/models", (200, {"models": []}))
    assert cli("--stack", "local1", "models", "--json").json() == {"models": []}
    (req,) = api_server.requests
    assert verify_sigv4("GET", f"http://{req.headers['host']}{req.path}", req.headers, req.body,
                        access_key=LOCAL_CREDENTIALS["aws_access_key_id"],
                        secret_key=LOCAL_CREDENTIALS["aws_secret_access_key"])


def test_tail_logs_reads_the_local_log_groups(cli, local_stack, monkeypatch):
    import efsctl.drive.logs as logs_mod
    from efsctl.waits import FakeClock

    session, endpoint = local_stack
    logs = session.client("logs", endpoint_url=endpoint)
    if not logs.describe_log_groups(logGroupNamePrefix=PRODUCER)["logGroups"]:
        logs.create_log_group(logGroupName=PRODUCER)
        logs.create_log_stream(logGroupName=PRODUCER, logStreamName="s")
    logs.put_log_events(logGroupName=PRODUCER, logStreamName="s", logEvents=[
        {"timestamp": int(time.time() * 1000) - 500, "message": json.dumps({"level": "INFO", "msg": "copied"})}])
    result = cli("--stack", "local1", "tail-logs", "--json")
    assert result.exit_code == 0, result
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["record"]["msg"] for d in docs] == ["copied"] and docs[0]["function"] == "producer"

    class CtrlC(FakeClock):
        def _sleep(self, seconds):
            super()._sleep(seconds)
            raise KeyboardInterrupt

    monkeypatch.setattr(logs_mod, "Clock", CtrlC)  # a local stack follows by polling, never live tail
    result = cli("--stack", "local1", "tail-logs", "-f")
    assert result.exit_code == 0 and "copied" in result.stdout


def test_local_api_url_falls_back_to_the_gateway_record(local_stack, efsctl_home):
    from efsctl.config import Settings
    from efsctl.console import Console
    from efsctl.operations import Operations
    from efsctl.state import StateStore

    store = StateStore(efsctl_home)
    state = store.load("local1")
    state.outputs.pop("api_url")
    state.local["gateway_url"] = "http://127.0.0.1:9"
    store.save(state)
    target = Operations(Settings(stack="local1"), Console()).connect().target
    assert target.api_url == "http://127.0.0.1:9" and target.bucket == BUCKET and target.is_local
    assert target.log_groups == {"producer": "/aws/lambda/efsctl-local1-producer",
                                 "consumer": "/aws/lambda/efsctl-local1-consumer"}


def test_a_tls_only_bucket_over_plain_http_says_why_the_upload_is_refused(cli, local_stack, tmp_path):
    session, endpoint = local_stack
    s3 = session.client("s3", endpoint_url=endpoint)
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
    try:
        path = tmp_path / "m.bin"
        path.write_bytes(b"\x02" * 100)
        result = cli("--stack", "local1", "upload", str(path), "--no-wait")
        assert result.exit_code == 1, result
        said = " ".join(result.stderr.split())
        assert f"S3 at {endpoint} refused the upload to s3://{BUCKET}/models/m.bin (access denied)." in said
        assert "denies requests that do not use TLS, and this endpoint is plain HTTP" in said
        assert "Traceback" not in result.output
    finally:
        s3.delete_bucket_policy(Bucket=BUCKET)
