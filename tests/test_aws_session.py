import boto3
import pytest
from botocore.exceptions import ClientError

from efsctl.aws.errors import translate
from efsctl.aws.paginate import paginate
from efsctl.aws.session import AwsContext, is_mutating
from efsctl.errors import AwsError, ConfigError, CredentialsError


def client_error(code, message="boom", op="CreateVpc"):
    return ClientError({"Error": {"Code": code, "Message": message}}, op)


def test_no_credentials_points_at_local_and_demo():
    with pytest.raises(CredentialsError) as info:
        AwsContext(region="us-east-1").require_credentials()
    assert "efsctl up --local" in info.value.message and "efsctl demo" in info.value.message
    assert info.value.exit_code == 2


def test_no_region_says_how_to_set_one(aws_credentials, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError) as info:
        AwsContext().require_credentials()
    assert "--region" in info.value.message and "AWS_REGION" in info.value.message


@pytest.mark.parametrize("code,expected,cls", [
    ("ExpiredToken", "expired", CredentialsError),
    ("AccessDenied", "AWS denied CreateVpc", AwsError),
    ("UnauthorizedOperation", "AWS denied CreateVpc", AwsError),
    ("VpcLimitExceeded", "VPCs per region", AwsError),
    ("AddressLimitExceeded", "Elastic IP", AwsError),
    ("InvalidClientTokenId", "rejected your credentials", CredentialsError),
    ("SomethingElse", "AWS CreateVpc failed: SomethingElse: boom.", AwsError),
])
def test_translate_gives_an_actionable_sentence(code, expected, cls):
    err = translate(client_error(code))
    assert isinstance(err, cls)
    assert expected in err.message


def test_denied_names_the_action_in_the_hint():
    err = translate(client_error("AccessDenied", op="CreateFileSystem"))
    assert "CreateFileSystem" in err.hint


def test_is_mutating():
    assert is_mutating("CreateVpc") and is_mutating("PutBucketPolicy") and is_mutating("AddPermission")
    assert not any(map(is_mutating, ["DescribeVpcs", "ListFunctions", "GetPolicy", "HeadBucket"]))


def test_clients_are_cached_and_hooks_see_every_call(moto_aws):
    ctx = AwsContext(region="us-east-1")
    calls = []
    ctx.add_call_hook(lambda service, op, params: calls.append((service, op)))
    assert ctx.client("ec2") is ctx.client("ec2")
    ctx.client("ec2").create_vpc(CidrBlock="10.0.0.0/16")
    ctx.client("ec2").describe_vpcs()
    assert calls == [("ec2", "CreateVpc"), ("ec2", "DescribeVpcs")]
    assert ctx.account_id() == "123456789012"
    ua = ctx.client("s3")._client_config.user_agent_extra
    assert ua.startswith("efsctl/")


def test_paginate_walks_every_page(moto_aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="efsctl-test-bucket")
    for i in range(7):
        s3.put_object(Bucket="efsctl-test-bucket", Key=f"k{i}", Body=b"x")
    keys = [o["Key"] for o in paginate(s3, "list_objects_v2", "Contents", Bucket="efsctl-test-bucket", PaginationConfig={"PageSize": 2})]
    assert keys == [f"k{i}" for i in range(7)]
