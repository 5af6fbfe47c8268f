"""Event builders following the shapes AWS documents for S3 notifications and HTTP APIs."""

from __future__ import annotations

import base64
import json
from typing import Optional
from urllib.parse import quote_plus

BUCKET = "efsctl-test-bucket"


def s3_record(key: str, etag: Optional[str], size: int = 0, sequencer: Optional[str] = None,
              event_name: str = "ObjectCreated:Put", bucket: str = BUCKET, encode: bool = True) -> dict:
    """One S3 event record (event structure 2.1). ``key`` is the real key; S3 encodes it like a
    form (space -> '+', '/' kept); eTag has no quotes."""
    obj = {"key": quote_plus(key, safe="/") if encode else key, "size": size,
           "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko"}
    if etag is not None:
        obj["eTag"] = etag
    if sequencer is not None:
        obj["sequencer"] = sequencer
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2025-01-31T12:00:00.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810",
                             "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "efsctl-models",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                       "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }


def s3_event(*records: dict) -> dict:
    return {"Records": list(records)}


def put_model(s3, key: str, data: bytes, sha256: Optional[str] = None) -> str:
    """Upload like `efsctl upload` (optionally with x-amz-meta-sha256); returns the bare ETag."""
    extra = {"Metadata": {"sha256": sha256}} if sha256 is not None else {}
    return s3.put_object(Bucket=BUCKET, Key=key, Body=data, **extra)["ETag"].strip('"')


def api_v2(method: str, path: str, body=None, *, route_key: Optional[str] = None,
           path_parameters: Optional[dict] = None, base64_body: bool = False) -> dict:
    """HTTP API payload format 2.0, as API Gateway sends it to an AWS_PROXY integration."""
    if route_key is None:
        route_key = f"{method} /models/{{name+}}" if path.startswith("/models/") else f"{method} {path}"
    event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"accept": "*/*", "content-type": "application/json",
                    "host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "efsctl/0.1",
                    "x-amz-date": "20250131T120000Z"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123",
            "authorizer": {"iam": {"accessKey": "AKIAEXAMPLE", "accountId": "123456789012",
                                   "callerId": "AIDAEXAMPLE", "principalOrgId": None,
                                   "userArn": "arn:aws:iam::123456789012:user/operator", "userId": "AIDAEXAMPLE"}},
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1",
                     "userAgent": "efsctl/0.1"},
            "requestId": "JKJaXmPLvHcESHA=", "routeKey": route_key, "stage": "$default",
            "time": "31/Jan/2025:12:00:00 +0000", "timeEpoch": 1738324800000,
        },
        "isBase64Encoded": base64_body,
    }
    if body is not None:
        event["body"] = _encode_body(body, base64_body)
    if path_parameters is not None:
        event["pathParameters"] = path_parameters
    return event


def api_v1(method: str, path: str, body=None, *, resource: Optional[str] = None,
           path_parameters: Optional[dict] = None, base64_body: bool = False) -> dict:
    """Payload format 1.0 (REST-style), which an HTTP API sends when configured for it."""
    if resource is None:
        resource = "/models/{name+}" if path.startswith("/models/") else path
    return {
        "version": "1.0",
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", "Host": "abc123.execute-api.us-east-1.amazonaws.com"},
        "multiValueHeaders": {"Content-Type": ["application/json"],
                              "Host": ["abc123.execute-api.us-east-1.amazonaws.com"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "requestContext": {"accountId": "123456789012", "apiId": "abc123", "httpMethod": method,
                           "path": path, "protocol": "HTTP/1.1", "requestId": "JKJaXmPLvHcESHA=",
                           "resourcePath": resource, "stage": "$default"},
        "pathParameters": path_parameters,
        "stageVariables": None,
        "body": _encode_body(body, base64_body) if body is not None else None,
        "isBase64Encoded": base64_body,
    }


def _encode_body(body, as_base64: bool) -> str:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if as_base64:
        return base64.b64encode(raw).decode()
    return raw.decode("utf-8", "surrogatepass") if isinstance(raw, bytes) else raw


def response_json(response: dict) -> dict:
    assert response["headers"]["content-type"] == "application/json"
    assert response["isBase64Encoded"] is False
    return json.loads(response["body"])
