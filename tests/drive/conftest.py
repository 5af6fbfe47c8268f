"""Fixtures for the drive tests: a canned HTTP API on 127.0.0.1, a SigV4 checker, and a
stack state pointing at moto (S3, logs) and at that API."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest

REGION = "us-east-1"
STACK = "default"
BUCKET = "efsctl-default-123456789012-us-east-1"
GROUPS = {"producer": "/aws/lambda/efsctl-default-producer", "consumer": "/aws/lambda/efsctl-default-consumer"}

Responder = Callable[["Request"], tuple[int, Any]]


class Request:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes, client: tuple) -> None:
        self.method, self.path, self.headers, self.body, self.client = method, path, headers, body, client

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class CannedApi:
    """Answers ``(method, path)`` with canned ``(status, body)`` pairs or a responder function;
    records every request. A list of answers is consumed in order, the last one repeating."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Any] = {}
        self.requests: list[Request] = []
        self.connections: set[tuple] = set()
        self.lock = threading.Lock()
        self.url = ""

    def route(self, method: str, path: str, *answers: Any) -> None:
        self.routes[(method, path)] = list(answers)

    def answer(self, request: Request) -> tuple[int, Any]:
        with self.lock:
            self.requests.append(request)
            self.connections.add(request.client)
            answers = self.routes.get((request.method, request.path))
            if not answers:
                return 404, {"message": "Not Found"}
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer(request) if callable(answer) else answer


def _handler(api: CannedApi):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = -1  # one write per response (handle_one_request flushes), no Nagle stalls

        def log_message(self, *_: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                              self.client_address)
            status, payload = api.answer(request)
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _serve

    return Handler


@pytest.fixture
def api_server():
    api = CannedApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
                   r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[^,]+), Signature=(?P<sig>[0-9a-f]{64})$")


def _verify_sigv4(method: str, url: str, headers: dict[str, str], body: bytes, *, access_key: str,
                 secret_key: str, token: str | None = None, region: str = REGION,
                 service: str = "execute-api") -> bool:
    """Recompute the request's signature with botocore's SigV4 code, from only the headers
    it says it signed, as a verifying gateway does."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    lower = {k.lower(): v for k, v in headers.items()}
    match = _AUTH.match(lower.get("authorization", ""))
    if not match or match["key"] != access_key or match["region"] != region or match["service"] != service:
        return False
    signed = match["signed"].split(";")
    if any(name not in lower for name in signed):
        return False
    request = AWSRequest(method=method, url=url, data=body, headers={n: lower[n] for n in signed})
    request.context["timestamp"] = lower["x-amz-date"]
    auth = SigV4Auth(Credentials(access_key, secret_key, token), service, region)
    if auth.signed_headers(auth.headers_to_sign(request)) != match["signed"]:
        return False
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    return signature == match["sig"]


@pytest.fixture
def verify_sigv4():
    return _verify_sigv4


@pytest.fixture
def no_sleep(monkeypatch):
    """Drive waits use a FakeClock: time advances, nothing sleeps."""
    from efsctl import waits
    import efsctl.drive.upload as upload_mod

    clock = waits.FakeClock()
    monkeypatch.setattr(upload_mod, "Clock", lambda: clock)
    return clock


@pytest.fixture
def moto_drive(aws_credentials):
    """moto without IAM's managed policies: the drive touches no IAM, and with those policies
    loaded every moto S3 call re-creates the IAM backends (about 0.5 s a call)."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def drive_stack(moto_drive, efsctl_home, api_server):
    """An AWS-target stack whose bucket and log groups live in moto and whose API is ``api_server``."""
    import boto3

    from efsctl.state import StackState, StateStore

    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    state = StackState(stack=STACK, target="aws", region=REGION, account="123456789012",
                       outputs={"api_url": api_server.url, "bucket": BUCKET,
                                "functions": {"producer": "efsctl-default-producer",
                                              "consumer": "efsctl-default-consumer"},
                                "log_groups": dict(GROUPS)})
    StateStore(efsctl_home).save(state)
    return state


@pytest.fixture
def s3_objects(moto_drive):
    """``s3_objects()`` lists the keys in the stack's bucket."""
    import boto3

    def listing(bucket: str = BUCKET) -> list[str]:
        found = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket)
        return [o["Key"] for o in found.get("Contents", [])]

    return listing
