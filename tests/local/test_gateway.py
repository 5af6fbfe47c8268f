"""The execute-api gateway: routes from the HTTP API, SigV4, payload 2.0, response mapping, errors."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest
from localhelpers import http_request, signed_headers


@dataclass
class Api:
    api_id: str
    url: str
    echo: str


@pytest.fixture(scope="module")
def api(cloud, make_function) -> Api:
    apigw, lam = cloud.client("apigatewayv2"), cloud.client("lambda")
    echo = make_function("echo", efs=False)
    plain = make_function("plain", efs=False)
    sleepy = make_function("sleepy", efs=False, timeout=20)
    unpermitted = make_function("plain", efs=False)
    api_id = apigw.create_api(Name="test-api", ProtocolType="HTTP", Tags={"efsctl:stack": "test"})["ApiId"]
    arn = lambda fn: lam.get_function(FunctionName=fn)["Configuration"]["FunctionArn"]  # noqa: E731

    def integrate(fn, timeout_ms=30000):
        uri = f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn(fn)}/invocations"
        return apigw.create_integration(ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=uri,
                                        PayloadFormatVersion="2.0", TimeoutInMillis=timeout_ms)["IntegrationId"]

    echo_int, plain_int = integrate(echo), integrate(plain)
    routes = [("POST /predict", echo_int, "AWS_IAM"), ("GET /models/{name+}", echo_int, "AWS_IAM"),
              ("GET /models", plain_int, "AWS_IAM"), ("GET /open/{id}", echo_int, "NONE"),
              ("GET /plain", plain_int, "NONE"), ("GET /slow", integrate(sleepy, 1000), "NONE"),
              ("GET /denied", integrate(unpermitted), "NONE")]
    for key, integration, auth in routes:
        apigw.create_route(ApiId=api_id, RouteKey=key, Target=f"integrations/{integration}", AuthorizationType=auth)
    apigw.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    for fn in (echo, plain, sleepy):
        lam.add_permission(FunctionName=fn, StatementId="apigw", Action="lambda:InvokeFunction",
                           Principal="apigateway.amazonaws.com",
                           SourceArn=f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/*/*/*")
    lam.add_permission(FunctionName=unpermitted, StatementId="other-api", Action="lambda:InvokeFunction",
                       Principal="apigateway.amazonaws.com",
                       SourceArn="arn:aws:execute-api:us-east-1:123456789012:otherapi/*/*/*")
    return Api(api_id, cloud.gateway_url, echo)


def signed_post(url, body, **extra):
    headers = {"content-type": "application/json", **extra}
    return http_request("POST", url, body, signed_headers("POST", url, body, headers))


def test_signed_request_reaches_handler_with_payload_v2_event(api):
    body = json.dumps({"model": "resnet.safetensors"}).encode()
    url = f"{api.url}/predict?b=2&a=1&a=3"
    headers = {"content-type": "application/json", "cookie": "s=1; t=2", "x-multi": "one"}
    status, resp_headers, resp = http_request("POST", url, body, signed_headers("POST", url, body, headers))
    assert status == 201, resp
    assert resp_headers["x-echo"] == "yes" and resp_headers["set-cookie"] == "a=1"
    assert resp_headers["content-type"] == "application/json" and resp_headers["apigw-requestid"]
    event = json.loads(resp)["event"]
    assert event["version"] == "2.0" and event["routeKey"] == "POST /predict"
    assert event["rawPath"] == "/predict" and event["rawQueryString"] == "b=2&a=1&a=3"
    assert event["queryStringParameters"] == {"b": "2", "a": "1,3"}
    assert event["cookies"] == ["s=1", "t=2"] and "cookie" not in event["headers"]
    assert event["headers"]["content-type"] == "application/json" and event["headers"]["x-multi"] == "one"
    assert all(k == k.lower() for k in event["headers"])
    assert event["body"] == body.decode() and event["isBase64Encoded"] is False
    assert "pathParameters" not in event
    ctx = event["requestContext"]
    assert ctx["accountId"] == "123456789012" and ctx["apiId"] == api.api_id and ctx["stage"] == "$default"
    assert ctx["http"]["method"] == "POST" and ctx["http"]["path"] == "/predict"
    assert ctx["http"]["sourceIp"] == "127.0.0.1" and ctx["http"]["protocol"] == "HTTP/1.1"
    assert ctx["routeKey"] == "POST /predict" and ctx["requestId"] == resp_headers["apigw-requestid"]
    assert abs(ctx["timeEpoch"] / 1000 - time.time()) < 60 and ctx["time"].endswith("+0000")
    assert ctx["authorizer"]["iam"]["accessKey"] == "efsctllocal"
    assert ctx["domainName"] == "127.0.0.1"


def test_greedy_path_parameter(api):
    url = f"{api.url}/models/team/a%20b.gguf"
    status, _, resp = http_request("GET", url, headers=signed_headers("GET", url))
    assert status == 201, resp
    event = json.loads(resp)["event"]
    assert event["pathParameters"] == {"name": "team/a b.gguf"} and event["rawPath"] == "/models/team/a b.gguf"
    assert event["routeKey"] == "GET /models/{name+}" and "body" not in event


def test_unsigned_and_badly_signed_requests_are_forbidden(api):
    body = b'{"model": "x"}'
    status, _, resp = http_request("POST", f"{api.url}/predict", body, {"content-type": "application/json"})
    assert (status, json.loads(resp)) == (403, {"message": "Forbidden"})
    headers = signed_headers("POST", f"{api.url}/predict", body, secret="wrong-secret")
    status, _, resp = http_request("POST", f"{api.url}/predict", body, headers)
    assert (status, json.loads(resp)) == (403, {"message": "Forbidden"})
    headers = signed_headers("POST", f"{api.url}/predict", body)
    status, _, _ = http_request("POST", f"{api.url}/predict", body + b" ", headers)   # body changed after signing
    assert status == 403


def test_keys_the_local_clouds_iam_issued_sign_too(api, cloud):
    iam, sts = cloud.client("iam"), cloud.client("sts")
    user = f"caller-{int(time.time() * 1000)}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    body = json.dumps({"model": "m"}).encode()
    url = f"{api.url}/predict"
    headers = signed_headers("POST", url, body, {"content-type": "application/json"}, key=key["AccessKeyId"],
                             secret=key["SecretAccessKey"])
    status, _, resp = http_request("POST", url, body, headers)
    assert status == 201, resp   # the echo handler's own status
    caller = json.loads(resp)["event"]["requestContext"]["authorizer"]["iam"]
    assert caller["accessKey"] == key["AccessKeyId"] and caller["userArn"].endswith(f":user/{user}")
    # a key the cloud never issued, or an issued one with another secret, is refused
    for forged in ({"key": "AKIAFORGED0000000000", "secret": key["SecretAccessKey"]},
                   {"key": key["AccessKeyId"], "secret": "not-its-secret"}):
        status, _, _ = http_request("POST", url, body, signed_headers("POST", url, body, **forged))
        assert status == 403, forged
    # temporary credentials sign with their session token, and only with it
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]}
    role = iam.create_role(RoleName=f"{user}-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    temp = sts.assume_role(RoleArn=role, RoleSessionName="api-caller")["Credentials"]
    session = dict(key=temp["AccessKeyId"], secret=temp["SecretAccessKey"])
    status, _, resp = http_request("POST", url, body, signed_headers("POST", url, body, token=temp["SessionToken"],
                                                                     **session))
    assert status == 201, resp
    assert ":assumed-role/" in json.loads(resp)["event"]["requestContext"]["authorizer"]["iam"]["userArn"]
    status, _, _ = http_request("POST", url, body, signed_headers("POST", url, body, **session))   # no token
    assert status == 403


def test_unknown_route_is_not_found(api):
    for method, path in (("GET", "/nothing"), ("DELETE", "/predict"), ("GET", "/open")):
        status, _, resp = http_request(method, api.url + path)
        assert (status, json.loads(resp)) == (404, {"message": "Not Found"}), path


def test_open_route_and_plain_json_result(api):
    status, headers, resp = http_request("GET", f"{api.url}/plain")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(resp) == {"hello": "world"}
    status, _, resp = http_request("GET", f"{api.url}/open/42")
    assert status == 201 and json.loads(resp)["event"]["pathParameters"] == {"id": "42"}


def test_host_header_selects_the_api(api):
    status, _, _ = http_request("GET", f"{api.url}/plain", headers={"Host": f"{api.api_id}.execute-api.us-east-1.amazonaws.com"})
    assert status == 200
    status, _, _ = http_request("GET", f"{api.url}/plain", headers={"Host": "nosuchapi.execute-api.us-east-1.amazonaws.com"})
    assert status == 404


def test_missing_invoke_permission_is_internal_server_error(api):
    status, _, resp = http_request("GET", f"{api.url}/denied")
    assert (status, json.loads(resp)) == (500, {"message": "Internal Server Error"})


def test_integration_timeout_is_service_unavailable(api):
    started = time.perf_counter()
    status, _, resp = http_request("GET", f"{api.url}/slow")
    assert (status, json.loads(resp)) == (503, {"message": "Service Unavailable"})
    assert 0.9 < time.perf_counter() - started < 5


def test_handler_error_is_internal_server_error(cloud, make_function, api):
    apigw, lam = cloud.client("apigatewayv2"), cloud.client("lambda")
    fn = make_function("boom", efs=False)
    fn_arn = lam.get_function(FunctionName=fn)["Configuration"]["FunctionArn"]
    integration = apigw.create_integration(ApiId=api.api_id, IntegrationType="AWS_PROXY", IntegrationUri=fn_arn,
                                           PayloadFormatVersion="2.0")["IntegrationId"]
    apigw.create_route(ApiId=api.api_id, RouteKey="GET /boom", Target=f"integrations/{integration}")
    lam.add_permission(FunctionName=fn, StatementId="apigw", Action="lambda:InvokeFunction",
                       Principal="apigateway.amazonaws.com",
                       SourceArn=f"arn:aws:execute-api:us-east-1:123456789012:{api.api_id}/*/GET/boom")
    status, _, resp = http_request("GET", f"{api.url}/boom")
    assert (status, json.loads(resp)) == (500, {"message": "Internal Server Error"})
