"""The execute-api gateway: the stack's HTTP API served on its own loopback port.

Routes, integrations and stages are read live from moto's apigatewayv2 backend (in-process), so
what ``up`` created is what answers. A request is matched to a route, its SigV4 signature is
verified for ``AWS_IAM`` routes, the function's resource policy must let API Gateway invoke it,
and the function runs on the local runtime directly (no HTTP hop to moto). Errors are API
Gateway's: 404 ``Not Found``, 403 ``Forbidden``, 500 ``Internal Server Error``, 503 ``Service
Unavailable`` after the integration timeout (30 s at most).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote

from efsctl.local import moto_models
from efsctl.local.gateway import payload, permissions, routing, sigv4
from efsctl.local.gateway.payload import Request, Response

MAX_BODY = 10 * 1024 * 1024       # HTTP API payload limit
MAX_INTEGRATION_TIMEOUT = 30.0
STACK_TAG = "efsctl:stack"

log = logging.getLogger("efsctl.local.gateway")


def request_id() -> str:
    return base64.b64encode(os.urandom(10)).decode()


def function_arn_of(uri: str) -> str | None:
    """The function ARN from an integration URI (a plain ARN or the ``...:lambda:path/...`` form)."""
    if uri.startswith("arn:aws:lambda:"):
        return uri
    marker = "/functions/"
    if ":lambda:path/" in uri and marker in uri:
        return uri.split(marker, 1)[1].removesuffix("/invocations")
    return None


class Gateway:
    def __init__(self, *, stack: str, account_id: str, runtime: Any, spec_of: Callable[[Any], Any],
                 credentials: dict[str, str]) -> None:
        self.stack = stack
        self.account_id = account_id
        self.runtime = runtime
        self.spec_of = spec_of
        self.credentials = credentials

    def signer_of(self, access_key: str) -> "sigv4.Signer | None":
        """efsctl's own local key, or any key the local cloud's IAM or STS has issued."""
        if access_key == self.credentials["aws_access_key_id"]:
            return sigv4.Signer(self.credentials["aws_secret_access_key"], f"arn:aws:iam::{self.account_id}:root")
        issued = moto_models.issued_key(access_key)
        return sigv4.Signer(*issued) if issued is not None else None

    # --- API and route -------------------------------------------------------------------------

    def resolve_api(self, host: str) -> tuple[str, Any] | None:
        apis = moto_models.http_apis(self.account_id)
        name = host.split(":")[0].lower()
        if ".execute-api." in name:
            api_id = name.split(".", 1)[0]
            return next(((r, a) for r, a in apis if a.api_id == api_id), None)
        ours = [(r, a) for r, a in apis if moto_models.api_tags(r, self.account_id, a).get(STACK_TAG) == self.stack]
        if ours:
            return max(ours, key=lambda ra: ra[1].created_date)
        return apis[0] if len(apis) == 1 else None

    @staticmethod
    def stage_and_path(stages: list[str], path: str) -> tuple[str, str] | None:
        if "$default" in stages:
            return "$default", path
        first, _, rest = path.lstrip("/").partition("/")
        if first in stages:
            return first, "/" + rest
        return None

    # --- one request ---------------------------------------------------------------------------

    def handle(self, request: Request, host: str, raw_target: str) -> Response:
        found = self.resolve_api(host)
        if found is None:
            return payload.NOT_FOUND()
        region, api = found
        view = moto_models.api_view(api)
        staged = self.stage_and_path(view["stages"], request.raw_path)
        if staged is None:
            return payload.NOT_FOUND()
        stage, path = staged
        matched = routing.match(view["routes"], request.method, path)
        if matched is None:
            return payload.NOT_FOUND()
        route = matched.route
        authorizer = None
        if route["auth"] == "AWS_IAM":
            caller = sigv4.verify(request.method, raw_target, request.headers, request.body,
                                  signer_of=self.signer_of, region=region)
            if caller is None:
                return payload.FORBIDDEN()
            authorizer = {"iam": {"accessKey": caller.access_key, "accountId": self.account_id,
                                  "callerId": caller.access_key, "cognitoIdentity": None, "principalOrgId": None,
                                  "userArn": caller.arn, "userId": self.account_id}}
        elif route["auth"] not in ("NONE", ""):
            log.warning("route %s uses %s authorization, which the local gateway refuses", route["key"], route["auth"])
            return payload.FORBIDDEN()
        integration = view["integrations"].get(route["target"].removeprefix("integrations/"))
        if integration is None or integration["type"] != "AWS_PROXY":
            log.error("route %s has no Lambda proxy integration", route["key"])
            return payload.INTERNAL()
        fn_arn = function_arn_of(integration["uri"])
        fn = moto_models.find_function(self.account_id, region, fn_arn) if fn_arn else None
        if fn is None:
            log.error("route %s integrates missing function %s", route["key"], integration["uri"])
            return payload.INTERNAL()
        source = permissions.source_arn(region, self.account_id, view["id"], stage, request.method, path, route["key"])
        if not permissions.allows_invoke(moto_models.function_policy_statements(fn), source, self.account_id):
            log.error("function %s does not allow API Gateway to invoke it for %s", fn.function_name, source)
            return payload.INTERNAL()
        try:
            spec = self.spec_of(fn)
        except Exception as exc:  # noqa: BLE001 - e.g. its access point is gone
            log.error("cannot run %s: %s", fn.function_name, exc)
            return payload.INTERNAL()
        build = payload.event_v2 if integration["payload"] == "2.0" else payload.event_v1
        rid = request_id()
        event = build(request, route_key=route["key"], stage=stage, api_id=view["id"], account_id=self.account_id,
                      domain=host.split(":")[0], request_id=rid, path_parameters=matched.path_parameters,
                      authorizer=authorizer)
        timeout = min(MAX_INTEGRATION_TIMEOUT, integration["timeout_ms"] / 1000.0)
        response = self._invoke(spec, json.dumps(event).encode(), timeout, integration["payload"])
        response.headers.append(("apigw-requestid", rid))
        return response

    def _invoke(self, spec: Any, event: bytes, timeout: float, version: str) -> Response:
        from efsctl.local.runtime import Throttled

        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = self.runtime.invoke(spec, event, queue_seconds=min(spec.timeout, timeout))
            except Throttled:
                outcome["throttled"] = True
            except Exception as exc:  # noqa: BLE001
                outcome["error"] = exc

        if spec.timeout <= timeout:
            run()   # the runtime's own timeout ends it first: no extra thread on the hot path
        else:
            worker = threading.Thread(target=run, name="gateway-invoke", daemon=True)
            worker.start()
            worker.join(timeout)
            if worker.is_alive():
                return payload.UNAVAILABLE()   # the function keeps running, as on AWS
        if "error" in outcome:
            log.error("invocation failed: %s", outcome["error"])
            return payload.INTERNAL()
        if outcome.get("throttled"):
            return payload.message(429, "Too Many Requests")
        result = outcome["result"]
        if result.error is not None:
            return payload.INTERNAL()
        return payload.map_response(result.payload, version)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one send (buffered wfile, flushed per request) with Nagle off:
    # separate small writes would stall on the client's delayed ACK (40 ms a request).
    disable_nagle_algorithm = True
    wbufsize = -1
    server_version = "efsctl-local-gateway"
    sys_version = ""
    gateway: Gateway

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            return self._send(payload.message(413, "Request Entity Too Large"), close=True)
        raw_target = self.path
        raw_path, _, raw_query = raw_target.partition("?")
        request = Request(self.command, unquote(raw_path), raw_query, list(self.headers.items()), body,
                          self.client_address[0], self.request_version)
        try:
            response = self.gateway.handle(request, self.headers.get("Host", ""), raw_target)
        except Exception:  # noqa: BLE001 - the gateway answers 500, never drops the connection
            log.exception("gateway error")
            response = payload.INTERNAL()
        self._send(response)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise ValueError("too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("too large")
        return self.rfile.read(length) if length else b""

    def _send(self, response: Response, close: bool = False) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: a sixth client connecting at once has its SYN dropped
    # and retried a second later, which API Gateway never does to a burst of 16.
    request_queue_size = 128


def serve(gateway: Gateway, host: str = "127.0.0.1", port: int = 0) -> tuple[_Server, threading.Thread]:
    """Bind (``port`` 0 picks a free one) and serve in a background thread."""
    handler = type("GatewayHandler", (_Handler,), {"gateway": gateway})
    server = _Server((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="execute-api-gateway", daemon=True)
    thread.start()
    return server, thread
