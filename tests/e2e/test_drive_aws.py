"""Opt-in, on a real AWS account: up, upload, predict, tail-logs, down.

Runs only with ``EFSCTL_E2E_AWS=1`` and credentials (the usual AWS_* variables, profile or SSO)
plus a region (``AWS_REGION``/``AWS_DEFAULT_REGION`` or the profile's). It creates a stack
named ``e2e-<random>`` (override with ``EFSCTL_E2E_STACK``) and deletes it at the end, even
when a step fails. Expect several minutes and a few cents (VPC Lambda, EFS, API Gateway).

    EFSCTL_E2E_AWS=1 AWS_PROFILE=sandbox python -m pytest tests/e2e/test_drive_aws.py -q
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets

import pytest

# Captured at import, before the autouse fixture strips AWS settings from each test's environment.
REAL_ENV = dict(os.environ)
AWS_SETTINGS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
                "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED", "AWS_ENDPOINT_URL")

pytestmark = pytest.mark.skipif(REAL_ENV.get("EFSCTL_E2E_AWS") != "1",
                                reason="real-AWS end to end: set EFSCTL_E2E_AWS=1 (with credentials) to run")


def test_round_trip_on_aws(tmp_path):
    from typer.testing import CliRunner

    from efsctl.cli import app
    from efsctl.drive.demo import write_sample_model
    from efsctl.waits import Clock, Outcome, Poll, wait_until

    stack = REAL_ENV.get("EFSCTL_E2E_STACK") or f"e2e-{secrets.token_hex(3)}"
    env = {name: REAL_ENV.get(name) for name in AWS_SETTINGS}
    env.update(EFSCTL_HOME=str(tmp_path / "home"), EFSCTL_STACK=stack)
    runner = CliRunner()

    def efsctl(*args):
        result = runner.invoke(app, list(args), env=env, catch_exceptions=True)
        print(f"$ efsctl {' '.join(args)} -> {result.exit_code}\n{result.stdout}{result.stderr}")
        return result

    model = tmp_path / "e2e model.safetensors"
    write_sample_model(model)
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    try:
        up = efsctl("up")
        assert up.exit_code == 0

        upload = efsctl("upload", str(model), "--wait", "--timeout", "600", "--json")
        assert upload.exit_code == 0
        assert json.loads(upload.stdout)["wait"]["on_efs"] is True

        predict = efsctl("predict", model.name, "--json")
        assert predict.exit_code == 0
        body = json.loads(predict.stdout)
        assert body["sha256"] == sha and body["format"] == "safetensors"

        assert efsctl("predict", "no-such-model.bin").exit_code == 1

        def both_functions_logged():
            result = efsctl("tail-logs", "--since", "30m", "--json")
            assert result.exit_code == 0
            docs = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
            return Outcome({"producer", "consumer"} <= {d["function"] for d in docs}, docs)

        # CloudWatch ingestion takes a few seconds
        wait_until(both_functions_logged, what="both functions' logs", timeout=120, clock=Clock(),
                   poll=Poll(floor=2.0, ceiling=10.0))
    finally:
        down = efsctl("down", "--yes")
        assert down.exit_code == 0
