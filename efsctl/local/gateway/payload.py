"""Lambda proxy integration payloads of HTTP APIs: the event (2.0, and 1.0) and the response mapping.

Pure functions of the request and the function's answer; no I/O here.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
              "application/x-www-form-urlencoded", "application/x-javascript")


@dataclass
class Request:
    method: str
    raw_path: str               # decoded, as HTTP APIs deliver it
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def message(status: int, text: str) -> Response:
    return Response(status, [("content-type", "application/json")], json.dumps({"message": text}).encode())


NOT_FOUND = lambda: message(404, "Not Found")                    # noqa: E731
FORBIDDEN = lambda: message(403, "Forbidden")                    # noqa: E731
INTERNAL = lambda: message(500, "Internal Server Error")         # noqa: E731
UNAVAILABLE = lambda: message(503, "Service Unavailable")        # noqa: E731


def _is_text(content_type: str) -> bool:
    ct = content_type.split(";")[0].strip().lower()
    return ct.startswith(TEXT_TYPES) or ct.endswith(("+json", "+xml"))


def _joined_headers(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.headers:
        key = name.lower()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def request_time(epoch: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch))


def event_v2(request: Request, *, route_key: str, stage: str, api_id: str, account_id: str, domain: str,
             request_id: str, path_parameters: dict[str, str], authorizer: dict[str, Any] | None,
             now: float | None = None) -> dict[str, Any]:
    """The payload format 2.0 event, field for field as API Gateway sends it."""
    now = time.time() if now is None else now
    headers = _joined_headers(request)
    cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if request.raw_query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    context: dict[str, Any] = {"accountId": account_id, "apiId": api_id}
    if authorizer:
        context["authorizer"] = authorizer
    context.update({
        "domainName": domain,
        "domainPrefix": domain.split(".")[0],
        "http": {"method": request.method, "path": request.raw_path, "protocol": request.protocol,
                 "sourceIp": request.source_ip, "userAgent": headers.get("user-agent", "")},
        "requestId": request_id,
        "routeKey": route_key,
        "stage": stage,
        "time": request_time(now),
        "timeEpoch": int(now * 1000),
    })
    event["requestContext"] = context
    if request.body:
        text = _is_text(headers.get("content-type", ""))
        event["body"] = request.body.decode("utf-8", "replace") if text else base64.b64encode(request.body).decode()
        event["isBase64Encoded"] = not text
    else:
        event["isBase64Encoded"] = False
    if path_parameters:
        event["pathParameters"] = path_parameters
    return event


def event_v1(request: Request, *, route_key: str, stage: str, api_id: str, account_id: str, domain: str,
             request_id: str, path_parameters: dict[str, str], authorizer: dict[str, Any] | None,
             now: float | None = None) -> dict[str, Any]:
    """Payload format 1.0 (REST-style) for integrations that ask for it."""
    now = time.time() if now is None else now
    multi: dict[str, list[str]] = {}
    for name, value in request.headers:
        multi.setdefault(name, []).append(value)
    query_multi: dict[str, list[str]] = {}
    for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
        query_multi.setdefault(key, []).append(value)
    text = _is_text(dict((k.lower(), v) for k, v in request.headers).get("content-type", ""))
    body = None
    if request.body:
        body = request.body.decode("utf-8", "replace") if text else base64.b64encode(request.body).decode()
    resource = route_key.partition(" ")[2] or "$default"
    return {
        "version": "1.0", "resource": resource, "path": request.raw_path, "httpMethod": request.method,
        "headers": {k: v[-1] for k, v in multi.items()}, "multiValueHeaders": multi,
        "queryStringParameters": {k: v[-1] for k, v in query_multi.items()} or None,
        "multiValueQueryStringParameters": query_multi or None,
        "requestContext": {"accountId": account_id, "apiId": api_id, "domainName": domain,
                           "domainPrefix": domain.split(".")[0], "extendedRequestId": request_id,
                           "httpMethod": request.method, "identity": {"sourceIp": request.source_ip,
                                                                       "userAgent": dict(multi).get("User-Agent", [""])[0]},
                           "path": request.raw_path, "protocol": request.protocol, "requestId": request_id,
                           "requestTime": request_time(now), "requestTimeEpoch": int(now * 1000),
                           "resourcePath": resource, "stage": stage, "authorizer": authorizer},
        "pathParameters": path_parameters or None, "stageVariables": None,
        "body": body, "isBase64Encoded": bool(body) and not text,
    }


def map_response(payload: bytes, version: str = "2.0") -> Response:
    """Turn a function's answer into the HTTP response API Gateway sends (500 if malformed)."""
    try:
        doc = json.loads(payload or b"null")
    except ValueError:
        return INTERNAL()
    if isinstance(doc, dict) and "statusCode" in doc:
        return _structured(doc)
    if version != "2.0":
        return INTERNAL()
    # 2.0: valid JSON without a statusCode is the body of a 200 application/json response.
    return Response(200, [("content-type", "application/json")], payload)


def _structured(doc: dict[str, Any]) -> Response:
    try:
        status = int(doc["statusCode"])
    except (TypeError, ValueError):
        return INTERNAL()
    if not 100 <= status <= 599:
        return INTERNAL()
    headers: list[tuple[str, str]] = []
    for name, value in (doc.get("headers") or {}).items():
        headers.append((str(name), str(value) if not isinstance(value, bool) else str(value).lower()))
    for name, values in (doc.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values or [])
    for cookie in doc.get("cookies") or []:
        headers.append(("set-cookie", str(cookie)))
    body = doc.get("body")
    if body is None:
        data = b""
    elif doc.get("isBase64Encoded"):
        try:
            data = base64.b64decode(str(body), validate=False)
        except ValueError:
            return INTERNAL()
    else:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("content-type", "application/json" if data[:1] in (b"{", b"[") else "text/plain; charset=utf-8"))
    return Response(status, headers, data)
