"""Injected throttling: each service's own error, and botocore's standard retries absorb it."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from fidelityworld import REGION, make_world

from efsctl.local.fidelity.api_calls import Throttle


CALLS = {"ec2": "describe_vpcs", "lambda": "list_functions", "efs": "describe_file_systems", "iam": "list_roles",
         "logs": "describe_log_groups", "sts": "get_caller_identity"}
_clients: dict[tuple[str, int], object] = {}


def call(service: str, max_attempts: int):
    """Call a cheap read of ``service`` with botocore's standard retry mode."""
    if (service, max_attempts) not in _clients:
        config = Config(retries={"mode": "standard", "max_attempts": max_attempts})
        _clients[service, max_attempts] = boto3.client(service, region_name=REGION, config=config,
                                                       aws_access_key_id="t", aws_secret_access_key="t")
    return getattr(_clients[service, max_attempts], CALLS[service])()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)   # botocore's backoff only: the cloud itself never sleeps


def test_throttle_rate_bounds():
    with pytest.raises(ValueError):
        Throttle(1.0)
    assert not Throttle(0.0).refuse()
    always = Throttle(0.999999)
    assert all(always.refuse() for _ in range(20)) and always.refused == 20


@pytest.mark.parametrize("service, code, status", [
    ("ec2", "RequestLimitExceeded", 503), ("lambda", "TooManyRequestsException", 429),
    ("efs", "ThrottlingException", 429), ("iam", "Throttling", 400), ("logs", "ThrottlingException", 400),
    ("sts", "Throttling", 400),
])
def test_each_service_throttles_in_its_own_words(aws_credentials, service, code, status):
    with make_world("instant", {"throttle_rate": "0.999999"}):
        with pytest.raises(ClientError) as caught:
            call(service, 1)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_standard_retries_absorb_a_throttling_rate(aws_credentials):
    with make_world("aws", {"throttle_rate": "0.3", "throttle_seed": "7"}) as world:
        for _ in range(10):
            for service in CALLS:
                call(service, 8)
        assert world.ctx.extra["_throttle"].refused >= 10
