"""predict: single calls rendered or raw, load-mode statistics, errors as exit 1."""

import pytest

from efsctl.drive.api import ApiClient, ApiError
from efsctl.drive.predict import analysis_highlights, percentile, run_load

RESULT = {"model": "resnet.safetensors", "size": 1048576, "sha256": "ab" * 32, "format": "safetensors",
          "analysis": {"entropy_bits_per_byte": 7.91, "tensors": 2, "dtypes": {"F32": 2}, "parameters": 262144},
          "cached": False, "output": {"efs_path": "/mnt/efs/outputs/1.json", "s3_key": "outputs/1.json"},
          "request_id": "req-1", "duration_ms": 12}
NOT_FOUND = (404, {"error": {"code": "NotFound", "message": "Model 'nope.bin' not found"}})


def test_percentiles_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, q) for q in (50, 90, 99, 100)] == [50, 90, 99, 100]
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0


class ScriptedTimer:
    """start of run, then (start, end) per request, then end of run: latencies 1..n ms."""

    def __init__(self, n):
        ticks = [0.0]
        t = 0.0
        for i in range(1, n + 1):
            ticks += [t, t + i / 1000.0]
            t += i / 1000.0
        ticks.append(t)
        self.ticks = iter(ticks)
        self.total = t

    def __call__(self):
        return next(self.ticks)


def test_load_statistics_with_a_scripted_timer():
    timer = ScriptedTimer(100)
    failing = {10, 20}
    calls = iter(range(1, 101))

    def call():
        i = next(calls)
        if i in failing:
            raise ApiError("boom", status=500)

    result = run_load(None, "m", concurrency=1, requests=100, timer=timer, call=call)
    doc = result.to_dict()
    assert doc["requests"] == 100 and doc["concurrency"] == 1 and doc["errors"] == 2
    assert doc["error_messages"] == {"boom": 2}
    ok = sorted(i for i in range(1, 101) if i not in failing)
    assert doc["p50_ms"] == pytest.approx(ok[48]) and doc["p90_ms"] == pytest.approx(ok[88])
    assert doc["p99_ms"] == pytest.approx(ok[97]) and doc["max_ms"] == pytest.approx(100)
    assert doc["rps"] == pytest.approx(98 / timer.total, rel=1e-3)


def test_load_over_http_reuses_connections(api_server):
    api_server.route("POST", "/predict", (200, RESULT))
    result = run_load(ApiClient(api_server.url, None, max_connections=4), "m", concurrency=4, requests=40)
    assert result.errors == 0 and result.ok == 40
    assert len(api_server.requests) == 40 and len(api_server.connections) <= 4
    stats = result.stats()
    assert 0 < stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"] <= stats["max_ms"] and stats["rps"] > 0


def test_highlights():
    text = analysis_highlights(RESULT["analysis"])
    assert text == "2 tensors, F32×2, 262,144 parameters, entropy 7.91 bits/byte"
    gguf = analysis_highlights({"version": 3, "tensor_count": 291, "kv_count": 24, "architecture": "llama"})
    assert gguf == "3 version, 291 tensor count, 24 kv count, architecture llama"
    invalid = analysis_highlights({"header_bytes": 80, "tensors": 1, "valid": False, "error": "invalid offset"})
    assert invalid == "INVALID: invalid offset, 1 tensors"
    assert analysis_highlights({"error": "the analysis failed (ValueError)"}) == "not analysed: the analysis failed (ValueError)"


def test_cli_predict_summary(cli, drive_stack, api_server):
    api_server.route("POST", "/predict", (200, RESULT))
    result = cli("predict", "resnet.safetensors")
    assert result.exit_code == 0, result
    out = result.stdout
    for text in ("resnet.safetensors", "1.0 MiB (1,048,576 bytes)", "ab" * 32, "safetensors",
                 "2 tensors, F32×2, 262,144 parameters, entropy 7.91 bits/byte", "/mnt/efs/outputs/1.json",
                 f"s3://{drive_stack.outputs['bucket']}/outputs/1.json", "12 ms in the function", "req-1"):
        assert text in out, text
    assert api_server.requests[0].json() == {"model": "resnet.safetensors", "verify": False}
    assert "/us-east-1/execute-api/aws4_request" in api_server.requests[0].headers["authorization"]


def test_cli_predict_json_is_the_raw_result(cli, drive_stack, api_server):
    api_server.route("POST", "/predict", (200, RESULT))
    result = cli("predict", "resnet.safetensors", "--verify", "--json")
    assert result.exit_code == 0 and result.json() == RESULT
    assert api_server.requests[0].json()["verify"] is True


def test_cli_predict_unknown_model(cli, drive_stack, api_server):
    api_server.route("POST", "/predict", NOT_FOUND)
    result = cli("predict", "nope.bin")
    assert result.exit_code == 1
    assert "Model 'nope.bin' not found" in result.stderr and "efsctl models" in result.stderr


def test_cli_predict_forbidden(cli, drive_stack, api_server):
    api_server.route("POST", "/predict", (403, {"message": "Forbidden"}))
    result = cli("predict", "m.bin", "--json")
    assert result.exit_code == 1
    assert "403 Forbidden" in result.json()["error"]["message"]


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", ".hidden", "a\\b", "a/../b"])
def test_cli_predict_hostile_names(cli, drive_stack, api_server, name):
    result = cli("predict", name)
    assert result.exit_code == 2 and "Invalid model name" in result.stderr
    assert api_server.requests == []


def test_cli_load_mode_json_keys(cli, drive_stack, api_server):
    api_server.route("POST", "/predict", (200, RESULT))
    result = cli("predict", "resnet.safetensors", "--concurrency", "3", "--requests", "12", "--json")
    assert result.exit_code == 0, result
    doc = result.json()
    assert {"p50_ms", "p90_ms", "p99_ms", "max_ms", "rps", "errors", "requests", "concurrency"} <= set(doc)
    assert doc["requests"] == 12 and doc["concurrency"] == 3 and doc["errors"] == 0
    assert len(api_server.requests) == 12


def test_cli_load_mode_errors_exit_1(cli, drive_stack, api_server):
    api_server.route("POST", "/predict", NOT_FOUND)
    result = cli("predict", "nope.bin", "--requests", "5")
    assert result.exit_code == 1
    assert "5 of 5 requests failed" in result.stderr and "not found" in result.stderr
    assert "errors" in result.stdout


def test_cli_models(cli, drive_stack, api_server):
    models = [{"name": "b model.bin", "size": 2048, "sha256": "cd" * 32, "modified": 1714560000},
              {"name": "a.gguf", "size": 10, "sha256": "ef" * 32, "modified": "2024-05-01T10:00:00Z"}]
    api_server.route("GET", "/models", (200, {"models": models}))
    result = cli("models", "--json")
    assert result.exit_code == 0 and result.json() == {"models": models}
    result = cli("models")
    lines = result.stdout.splitlines()
    assert "name" in lines[0] and "sha256" in lines[0]
    assert lines[1].startswith("a.gguf") and "b model.bin" in lines[2] and "2.0 KiB" in lines[2]
    assert "cdcdcdcdcdcd…" in lines[2]


def test_cli_models_truncated(cli, drive_stack, api_server):
    api_server.route("GET", "/models", (200, {"models": [{"name": "a", "size": 1, "sha256": None,
                                                          "modified": None}], "truncated": True}))
    assert cli("models", "--json").json()["truncated"] is True
    result = cli("models")
    assert result.exit_code == 0 and "listed only the first 1 models" in result.stderr


def test_cli_models_empty(cli, drive_stack, api_server):
    api_server.route("GET", "/models", (200, {"models": []}))
    result = cli("models")
    assert result.exit_code == 0 and "No models on EFS yet" in result.stdout


def test_cli_without_api_url(cli, drive_stack, efsctl_home):
    from efsctl.state import StateStore

    store = StateStore(efsctl_home)
    state = store.load("default")
    state.outputs.pop("api_url")
    store.save(state)
    result = cli("models")
    assert result.exit_code == 2 and "has no API URL recorded" in result.stderr


def test_cli_predict_verify_of_a_corrupt_model_exits_1_saying_how_to_repair(cli, drive_stack, api_server):
    message = (f"model 'resnet.safetensors' is corrupt on EFS: its bytes hash to {'b' * 64} but the producer "
               f"installed {'a' * 64}; upload it again to repair it")
    api_server.route("POST", "/predict", (409, {"error": {"code": "IntegrityError", "message": message,
                                                          "expected_sha256": "a" * 64, "actual_sha256": "b" * 64}}))
    result = cli("predict", "resnet.safetensors", "--verify")
    assert result.exit_code == 1, result
    assert "Model 'resnet.safetensors' is corrupt on EFS" in result.stderr and "a" * 64 in result.stderr
    assert "efsctl upload" in result.stderr and "Traceback" not in result.output
    result = cli("predict", "resnet.safetensors", "--verify", "--json")
    assert result.exit_code == 1 and "is corrupt on EFS" in result.json()["error"]["message"]


def test_cli_models_marks_corrupt_models_and_reports_orphaned_bytes(cli, drive_stack, api_server):
    models = [{"name": "ok.bin", "size": 10, "sha256": "ef" * 32, "modified": "2024-05-01T10:00:00Z"},
              {"name": "bad.bin", "size": 10, "sha256": "cd" * 32, "modified": "2024-05-01T10:00:00Z",
               "corrupt": {"expected_sha256": "ab" * 32, "actual_sha256": "cd" * 32, "detected_at": "t"}}]
    body = {"models": models, "orphaned": {"files": 1, "bytes": 184 << 20}}
    api_server.route("GET", "/models", (200, body))
    assert cli("models", "--json").json() == body
    result = cli("models")
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    assert "state" in lines[0] and lines[1].startswith("bad.bin") and "corrupt" in lines[1]
    assert "corrupt" not in lines[2]
    assert "bad.bin is corrupt on EFS" in result.stderr and "Upload the original file again" in result.stderr
    assert "184.0 MiB in 1 temporary file left on EFS by copies that were killed" in result.stderr


def test_cli_models_orphans_with_no_models(cli, drive_stack, api_server):
    api_server.route("GET", "/models", (200, {"models": [], "orphaned": {"files": 2, "bytes": 2048}}))
    result = cli("models")
    assert result.exit_code == 0 and "No models on EFS yet" in result.stdout
    assert "2.0 KiB in 2 temporary files" in result.stderr
