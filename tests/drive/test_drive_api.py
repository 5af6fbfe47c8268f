"""The signed API client: SigV4 headers a verifier accepts, keep-alive, error mapping."""

import socket

import pytest

from efsctl.aws.sigv4 import Signer
from efsctl.drive.api import ApiClient, ApiError, model_path

REGION = "us-east-1"


class Creds:
    def __init__(self, access_key="AKIDEXAMPLE", secret_key="secret", token=None):
        self.access_key, self.secret_key, self.token = access_key, secret_key, token


def client(api_server, creds=None, **kwargs):
    return ApiClient(api_server.url, Signer(creds or Creds(), REGION).sign, **kwargs)


def test_signed_post_verifies(api_server, verify_sigv4):
    api_server.route("POST", "/predict", (200, {"model": "m", "sha256": "ab"}))
    response = client(api_server).predict("m", verify=True)
    assert response.status == 200 and response.body["model"] == "m"
    (req,) = api_server.requests
    assert req.json() == {"model": "m", "verify": True}
    assert "x-amz-security-token" not in req.headers
    url = f"http://{req.headers['host']}{req.path}"
    assert verify_sigv4("POST", url, req.headers, req.body, access_key="AKIDEXAMPLE", secret_key="secret")
    assert not verify_sigv4("POST", url, req.headers, req.body + b" ", access_key="AKIDEXAMPLE", secret_key="secret")
    assert not verify_sigv4("POST", url, req.headers, req.body, access_key="AKIDEXAMPLE", secret_key="other")


@pytest.mark.parametrize("name, path", [
    ("my model.bin", "/models/my%20model.bin"),
    ("team/数据 v2.onnx", "/models/team/%E6%95%B0%E6%8D%AE%20v2.onnx"),
    ("a+b%c.pt", "/models/a%2Bb%25c.pt"),
])
def test_model_path_is_encoded_and_signature_covers_it(api_server, verify_sigv4, name, path):
    assert model_path(name) == path
    api_server.route("GET", path, (200, {"name": name}))
    assert client(api_server).get_model(name).body == {"name": name}
    (req,) = api_server.requests
    assert req.path == path and " " not in req.path
    url = f"http://{req.headers['host']}{req.path}"
    assert verify_sigv4("GET", url, req.headers, b"", access_key="AKIDEXAMPLE", secret_key="secret")


def test_temporary_credentials_add_the_session_token(api_server, verify_sigv4):
    api_server.route("GET", "/models", (200, {"models": []}))
    creds = Creds("ASIATEMP", "s3cr3t", "the-session-token")
    client(api_server, creds).list_models()
    (req,) = api_server.requests
    assert req.headers["x-amz-security-token"] == "the-session-token"
    assert "x-amz-security-token" in req.headers["authorization"]
    assert verify_sigv4("GET", f"http://{req.headers['host']}/models", req.headers, b"", access_key="ASIATEMP",
                        secret_key="s3cr3t", token="the-session-token")


def test_refreshable_credentials_are_frozen_per_request(api_server):
    class Refreshable:
        calls = 0

        def get_frozen_credentials(self):
            Refreshable.calls += 1
            return Creds("AKID%d" % Refreshable.calls, "s")

    api_server.route("GET", "/models", (200, {"models": []}))
    api = ApiClient(api_server.url, Signer(Refreshable(), REGION).sign)
    api.list_models()
    api.list_models()
    keys = [r.headers["authorization"].split("Credential=")[1].split("/")[0] for r in api_server.requests]
    assert keys == ["AKID1", "AKID2"]


def test_connections_are_reused(api_server):
    api_server.route("GET", "/models", (200, {"models": []}))
    api = client(api_server)
    for _ in range(5):
        api.list_models()
    assert len(api_server.connections) == 1


@pytest.mark.parametrize("status, body, words", [
    (403, {"message": "Forbidden"}, ["403 Forbidden", "signature"]),
    (404, {"error": {"code": "NotFound", "message": "Model 'x' not found"}}, ["Model 'x' not found"]),
    (404, {"error": {"code": "NotFound", "message": "no such model: x"}}, ["Not found: no such model: x"]),
    (404, {"message": "Not Found"}, ["Not found: POST /predict"]),
    (400, {"error": {"code": "BadRequest", "message": "missing model"}}, ["400 BadRequest", "missing model"]),
    (413, {"error": {"code": "PayloadTooLarge", "message": "body over 64 KiB"}}, ["too large", "413"]),
    (429, {"message": "Too Many Requests"}, ["throttling"]),
    (500, {"message": "Internal Server Error"}, ["The API failed (500): Internal Server Error"]),
    (502, b"<html>bad gateway</html>", ["The API failed (502)", "bad gateway"]),
])
def test_error_mapping(api_server, status, body, words):
    api_server.route("POST", "/predict", (status, body))
    with pytest.raises(ApiError) as info:
        client(api_server).predict("x")
    err = info.value
    assert err.status == status and err.exit_code == 1
    for word in words:
        assert word in err.message
    if isinstance(body, dict) and "error" in body:
        assert err.code == body["error"]["code"]


@pytest.mark.parametrize("code, message, hint", [
    ("IntegrityError", "model 'm' is corrupt on EFS: its bytes hash to b but the producer installed a; upload it "
     "again to repair it", "with the original file replaces it"),
    ("UploadRejected", "the producer refused the latest upload of 'm': the name clashes", "tail-logs"),
    ("ModelUnreadable", "model 'm' exists but the consumer may not read it", "Upload the file again"),
])
def test_409s_say_what_is_wrong_with_the_model_and_what_to_do(api_server, code, message, hint):
    api_server.route("GET", "/models/m", (409, {"error": {"code": code, "message": message}}))
    with pytest.raises(ApiError) as info:
        client(api_server).get_model("m")
    assert info.value.code == code and info.value.status == 409 and info.value.exit_code == 1
    assert info.value.message == message[0].upper() + message[1:] + "."
    assert hint in info.value.hint


def test_unreachable_api():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(ApiError) as info:
        ApiClient(f"http://127.0.0.1:{port}", None, connect_timeout=1).list_models()
    assert info.value.status == 0
    assert f"Cannot reach the API at http://127.0.0.1:{port} (connection refused)" in info.value.message
    assert "efsctl status" in info.value.hint


def test_signer_without_credentials_is_a_credentials_error():
    from efsctl.errors import CredentialsError

    with pytest.raises(CredentialsError):
        Signer(None, REGION)
