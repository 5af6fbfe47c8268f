"""Pure parts of the local cloud, without a process: routing, payloads, SigV4, policies, options."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from localhelpers import signed_headers

from efsctl.local.fidelity.bucket_policy import conditions_hold, evaluate
from efsctl.local.fidelity.function_filesystems import problems
from efsctl.local.fidelity.s3_events import event_key
from efsctl.local.gateway import payload, permissions, routing, sigv4
from efsctl.local.options import CloudOptions

ROUTES = [{"key": k} for k in ("POST /predict", "GET /models", "GET /models/{name+}", "GET /models/special",
                               "ANY /models/{name}", "GET /a/{x}/c", "$default")]


@pytest.mark.parametrize("method, path, key, params", [
    ("POST", "/predict", "POST /predict", {}),
    ("GET", "/models", "GET /models", {}),
    ("GET", "/models/special", "GET /models/special", {}),
    ("GET", "/models/one", "ANY /models/{name}", {"name": "one"}),
    ("GET", "/models/team/a.gguf", "GET /models/{name+}", {"name": "team/a.gguf"}),
    ("GET", "/a/b/c", "GET /a/{x}/c", {"x": "b"}),
    ("GET", "/predict", "$default", {}),
    ("PUT", "/elsewhere", "$default", {}),
])
def test_route_selection_prefers_the_most_specific(method, path, key, params):
    found = routing.match(ROUTES, method, path)
    assert found is not None and found.route["key"] == key and found.path_parameters == params


def test_no_route_without_default():
    assert routing.match(ROUTES[:-1], "GET", "/nope") is None
    assert routing.match([{"key": "GET /models/{name+}"}], "GET", "/models/") is None


def request(**kw):
    base = dict(method="POST", raw_path="/predict", raw_query="", headers=[("Host", "h"), ("User-Agent", "ua")],
                body=b"", source_ip="127.0.0.1")
    base.update(kw)
    return payload.Request(**base)


def build(req, **kw):
    args = dict(route_key="POST /predict", stage="$default", api_id="abc", account_id="123456789012",
                domain="abc.execute-api.us-east-1.amazonaws.com", request_id="rid", path_parameters={},
                authorizer=None, now=1_800_000_000.5)
    args.update(kw)
    return payload.event_v2(req, **args)


def test_event_v2_fields():
    event = build(request(headers=[("X-A", "1"), ("x-a", "2"), ("Content-Type", "application/octet-stream")],
                          body=b"\x00\x01"))
    assert event["headers"] == {"x-a": "1,2", "content-type": "application/octet-stream"}
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\x00\x01"
    ctx = event["requestContext"]
    assert ctx["timeEpoch"] == 1_800_000_000_500 and ctx["time"] == "15/Jan/2027:08:00:00 +0000"
    assert ctx["domainPrefix"] == "abc" and "authorizer" not in ctx
    assert "queryStringParameters" not in event and "cookies" not in event


def test_event_v1_shape():
    event = payload.event_v1(request(raw_query="a=1&a=2"), route_key="POST /predict", stage="$default", api_id="abc",
                             account_id="1", domain="d", request_id="r", path_parameters={}, authorizer=None)
    assert event["version"] == "1.0" and event["httpMethod"] == "POST" and event["resource"] == "/predict"
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}


@pytest.mark.parametrize("result, status, body, ctype", [
    ({"hello": "world"}, 200, b'{"hello": "world"}', "application/json"),
    ("just text", 200, b'"just text"', "application/json"),
    ({"statusCode": 404, "body": "{\"error\": 1}"}, 404, b'{"error": 1}', "application/json"),
    ({"statusCode": 200, "body": "plain"}, 200, b"plain", "text/plain; charset=utf-8"),
    ({"statusCode": 200, "body": base64.b64encode(b"\x00").decode(), "isBase64Encoded": True,
      "headers": {"content-type": "application/octet-stream"}}, 200, b"\x00", "application/octet-stream"),
    ({"statusCode": "nope"}, 500, b'{"message": "Internal Server Error"}', "application/json"),
])
def test_response_mapping(result, status, body, ctype):
    response = payload.map_response(json.dumps(result).encode())
    assert response.status == status and response.body == body
    assert dict(response.headers)["content-type"] == ctype


def test_response_cookies_become_set_cookie_headers():
    response = payload.map_response(json.dumps({"statusCode": 200, "cookies": ["a=1", "b=2"]}).encode())
    assert [v for k, v in response.headers if k == "set-cookie"] == ["a=1", "b=2"]


def test_sigv4_verification():
    url = "http://127.0.0.1:9999/models/a%20b?x=1&y=2"
    headers = signed_headers("GET", url, b"", {"X-Extra": "1"})
    received = list(headers.items()) + [("Host", "127.0.0.1:9999")]
    def signer(secret):
        return lambda key: sigv4.Signer(secret, "arn:aws:iam::123456789012:root") if key == "efsctllocal" else None

    kwargs = dict(signer_of=signer("efsctllocal"), region="us-east-1")
    assert sigv4.verify("GET", "/models/a%20b?x=1&y=2", received, b"", **kwargs) is not None
    assert sigv4.verify("GET", "/models/a%20b?x=1&y=3", received, b"", **kwargs) is None
    assert sigv4.verify("POST", "/models/a%20b?x=1&y=2", received, b"", **kwargs) is None
    assert sigv4.verify("GET", "/models/a%20b?x=1&y=2", received, b"", **{**kwargs, "signer_of": signer("x")}) is None
    assert sigv4.verify("GET", "/models/a%20b?x=1&y=2", received, b"",
                        **{**kwargs, "signer_of": lambda key: None}) is None   # a key nobody issued
    assert sigv4.verify("GET", "/models/a%20b?x=1&y=2", received, b"", **{**kwargs, "region": "eu-west-1"}) is None
    later = datetime.now(timezone.utc) + timedelta(minutes=6)
    assert sigv4.verify("GET", "/models/a%20b?x=1&y=2", received, b"", now=later, **kwargs) is None
    assert sigv4.verify("GET", "/", [("Host", "h")], b"", **kwargs) is None


TLS_ONLY = {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*",
                           "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def test_bucket_policy_evaluation():
    secure = {"aws:SecureTransport": "true"}
    assert evaluate(TLS_ONLY, "s3:GetObject", "arn:aws:s3:::b/k", secure, "1") == "NEUTRAL"
    assert evaluate(TLS_ONLY, "s3:GetObject", "arn:aws:s3:::b/k", {"aws:SecureTransport": "false"}, "1") == "DENIED"
    allow = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "s3:Get*",
                            "Resource": "arn:aws:s3:::b/*"}]}
    assert evaluate(allow, "s3:GetObject", "arn:aws:s3:::b/k", secure, "1") == "PERMITTED"
    assert evaluate(allow, "s3:PutObject", "arn:aws:s3:::b/k", secure, "1") == "NEUTRAL"
    assert conditions_hold({"StringNotEquals": {"aws:Missing": "x"}}, {})
    assert not conditions_hold({"StringEquals": {"aws:Missing": "x"}}, {})
    assert conditions_hold({"StringEqualsIfExists": {"aws:Missing": "x"}}, {})
    assert conditions_hold({"Null": {"aws:Missing": "true"}}, {})
    assert conditions_hold({"ArnLike": {"AWS:SourceArn": "arn:aws:execute-api:r:1:api/*/*/*"}},
                           {"aws:sourcearn": "arn:aws:execute-api:r:1:api/$default/POST/predict"})


def test_api_gateway_permission():
    arn = permissions.source_arn("us-east-1", "1", "api", "$default", "POST", "/predict", "POST /predict")
    assert arn == "arn:aws:execute-api:us-east-1:1:api/$default/POST/predict"
    statement = {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                 "Action": "lambda:InvokeFunction",
                 "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:execute-api:us-east-1:1:api/*/POST/predict"}}}
    assert permissions.allows_invoke([statement], arn, "1")
    assert not permissions.allows_invoke([statement], arn.replace("POST", "GET"), "1")
    s3_statement = {**statement, "Principal": {"Service": "s3.amazonaws.com"}}
    assert not permissions.allows_invoke([s3_statement], arn, "1")


def test_s3_event_keys_are_form_encoded_keeping_slashes():
    assert event_key("models/team a/m+1 ü.bin") == "models/team+a/m%2B1+%C3%BC.bin"


def test_file_system_config_rules():
    ap = "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-0123456789abcdef0"
    vpc = {"SubnetIds": ["subnet-1"]}
    assert problems([{"Arn": ap, "LocalMountPath": "/mnt/efs"}], vpc) is None
    assert problems(None, None) is None
    assert problems([{"Arn": ap, "LocalMountPath": "/mnt/efs"}] * 2, vpc)[0] == "ValidationException"
    assert problems([{"Arn": ap, "LocalMountPath": "/mnt/efs"}], {"SubnetIds": []})[0] == \
        "InvalidParameterValueException"


def test_options():
    assert CloudOptions().retry_delays == (1.0, 2.0)
    assert CloudOptions(realism="aws", time_scale=0.1).retry_delays == pytest.approx((6.0, 12.0))
    opts = CloudOptions(async_retry_delays=(0.1, 0.2), concurrency=3)
    assert "--async-retry-delays" in opts.to_args() and CloudOptions.from_dict(opts.to_dict()) == opts
    with pytest.raises(ValueError):
        CloudOptions(realism="fast")
