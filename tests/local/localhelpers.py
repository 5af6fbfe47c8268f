"""Helpers for the local cloud tests: the test handlers' zip, plain HTTP, SigV4 signing."""

from __future__ import annotations

import http.client
import io
import zipfile
from urllib.parse import urlsplit

from efsctl.config import LOCAL_CREDENTIALS, LOCAL_REGION

HANDLERS = r'''
import json, os, time, urllib.parse

import boto3

def copy_to_efs(event, context):
    """S3 event -> the object's bytes under EFS_MOUNT_PATH, plus the event beside it."""
    root = os.environ["EFS_MOUNT_PATH"]
    s3 = boto3.client("s3")
    for record in event["Records"]:
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        body = s3.get_object(Bucket=record["s3"]["bucket"]["name"], Key=key)["Body"].read()
        path = os.path.join(root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(body)
        with open(path + ".event.json", "w") as fh:
            json.dump({"event": event, "env": {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "EFS"))},
                       "cwd": os.getcwd(), "file": __file__}, fh)
        print(json.dumps({"msg": "copied", "key": key, "bytes": len(body)}))

def echo(event, context):
    print("echo", context.aws_request_id)
    return {"statusCode": 201, "headers": {"content-type": "application/json", "x-echo": "yes"},
            "cookies": ["a=1"], "body": json.dumps({"event": event, "pid": os.getpid()})}

def plain(event, context):
    return {"hello": "world"}

def pid(event, context):
    time.sleep(event.get("sleep", 0))
    return {"pid": os.getpid()}

def sleepy(event, context):
    print("going to sleep")
    time.sleep(event.get("seconds", 30))
    return "woke up"

def boom(event, context):
    raise ValueError("boom: " + str(event.get("why", "no reason")))

def hog(event, context):
    """Holds event['mb'] MiB (every page touched) until the function's timeout, unless killed first."""
    held = bytearray(event["mb"] << 20)
    for i in range(0, len(held), 4096):
        held[i] = 1
    time.sleep(event.get("hold", 60))
    return len(held)

def whoami(event, context):
    """Who the function's credentials say it is, and which of them it was given."""
    return {"arn": boto3.client("sts").get_caller_identity()["Arn"], "pid": os.getpid(),
            "access_key_id": os.environ.get("AWS_ACCESS_KEY_ID"),
            "has": [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
                    if os.environ.get(k)]}

def aws_call(event, context):
    """One API call as the function's role: its result, or the SDK's error as the handler sees it."""
    import botocore.exceptions
    client = boto3.client(event["service"])
    try:
        result = getattr(client, event["op"])(**event.get("args", {}))
    except botocore.exceptions.ClientError as exc:
        print(f"{type(exc).__name__}: {exc}")
        return {"ok": False, "code": exc.response["Error"]["Code"], "message": exc.response["Error"].get("Message", ""),
                "status": exc.response["ResponseMetadata"]["HTTPStatusCode"], "text": str(exc), "pid": os.getpid()}
    if hasattr(result.get("Body"), "read"):
        result["Body"] = result["Body"].read().decode()
    return {"ok": True, "result": json.loads(json.dumps(result, default=str)), "pid": os.getpid()}

def flaky(event, context):
    """Fails until it has been called event['fail'] times (counted on EFS)."""
    path = os.path.join(os.environ["EFS_MOUNT_PATH"], "flaky-" + event["name"])
    count = int(open(path).read()) if os.path.exists(path) else 0
    with open(path, "w") as fh:
        fh.write(str(count + 1))
    if count < event["fail"]:
        raise RuntimeError(f"attempt {count + 1} fails")
    return {"attempts": count + 1}
'''


def handler_zip(source: str = HANDLERS) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("app.py", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        archive.writestr(info, source)
    return buf.getvalue()


def http_request(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None,
                 timeout: float = 40.0) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body or None, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def signed_headers(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None,
                   secret: str | None = None, key: str | None = None, token: str | None = None) -> dict[str, str]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    creds = Credentials(key or LOCAL_CREDENTIALS["aws_access_key_id"],
                        secret or LOCAL_CREDENTIALS["aws_secret_access_key"], token)
    SigV4Auth(creds, "execute-api", LOCAL_REGION).add_auth(request)
    return dict(request.headers.items())
