"""The AWS layer: errors become one clear sentence (callers never see botocore); request shapes AWS requires."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from efsctl.aws.errors import aws_call, translate
from efsctl.errors import AwsError, CredentialsError


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_access_denied_names_the_iam_action():
    err = translate(client_error("UnauthorizedOperation", "You are not authorized to perform this operation. "
                                 "Encoded authorization failure message: 3kYtX...", "CreateVpc"), service="ec2")
    assert err.message == "AWS denied ec2:CreateVpc: You are not authorized to perform this operation."
    assert err.hint == "Grant your identity permission for ec2:CreateVpc and run the command again."
    s3 = translate(client_error("AccessDenied", "Access Denied", "PutBucketEncryption"), service="s3")
    assert s3.message == "AWS denied s3:PutEncryptionConfiguration: Access Denied."


def test_expired_token_and_quotas():
    assert isinstance(translate(client_error("ExpiredToken", "The security token included in the request is expired",
                                             "DescribeVpcs")), CredentialsError)
    vpc = translate(client_error("VpcLimitExceeded", "The maximum number of VPCs has been reached.", "CreateVpc"))
    assert vpc.message == ("An AWS quota stops CreateVpc: the account is at its limit of VPCs per region "
                           "(The maximum number of VPCs has been reached).")
    eip = translate(client_error("AddressLimitExceeded", "The maximum number of addresses has been reached.",
                                 "AllocateAddress"))
    assert "Elastic IP addresses" in eip.message


def test_helpers_raise_efsctl_errors_naming_their_service():
    from efsctl.aws import efs

    class Client:
        def describe_file_systems(self, **_):
            raise client_error("AccessDeniedException", "no", "DescribeFileSystems")

        def can_paginate(self, _):
            return False

    class Aws:
        def client(self, _):
            return Client()

    with pytest.raises(AwsError, match="AWS denied elasticfilesystem:DescribeFileSystems"):
        efs.describe_file_system(Aws(), "fs-1")
    assert aws_call(lambda: 1)() == 1


def test_every_aws_layer_call_is_wrapped_to_raise_efsctl_errors():
    """A helper taking ``aws`` first must carry ``@aws_call``, so a botocore error never reaches a
    command as a traceback. The upload translates its own errors (naming the object), and
    ``ca_bundle`` makes no call (it reads botocore's configuration)."""
    import importlib
    import inspect
    import pkgutil

    import efsctl.aws

    unwrapped = []
    for info in pkgutil.iter_modules(efsctl.aws.__path__):
        module = importlib.import_module(f"efsctl.aws.{info.name}")
        for name, fn in vars(module).items():
            if (inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_")
                    and list(inspect.signature(fn).parameters)[:1] == ["aws"] and not hasattr(fn, "__wrapped__")):
                unwrapped.append(f"{info.name}.{name}")
    assert sorted(unwrapped) == ["sigv4.ca_bundle", "transfer.upload_file"]


class _Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def client(self, _service):
        return self

    def __getattr__(self, operation):
        return lambda **params: self.calls.append((operation, params)) or {}


@pytest.mark.parametrize("region,expected", [
    ("us-east-1", {"Bucket": "b"}),
    ("eu-west-1", {"Bucket": "b", "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}}),
])
def test_bucket_location_constraint_only_outside_us_east_1(region, expected):
    from efsctl.aws import s3

    aws = _Recording()
    assert s3.create_bucket(aws, "b", region) is True
    assert aws.calls == [("create_bucket", expected)]
