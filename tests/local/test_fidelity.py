"""Fidelity patches seen through the API: FileSystemConfigs, bucket policies, access point ids."""

from __future__ import annotations

import json
import re

import pytest
from botocore.exceptions import ClientError
from localhelpers import handler_zip


def create(cloud, network, name, **overrides):
    spec = dict(FunctionName=name, Runtime="python3.12", Role=network.role_arn, Handler="app.plain",
                Code={"ZipFile": handler_zip()},
                VpcConfig={"SubnetIds": network.subnet_ids, "SecurityGroupIds": [network.sg_id]},
                FileSystemConfigs=[{"Arn": network.access_point_arn, "LocalMountPath": "/mnt/efs"}])
    spec.update(overrides)
    return cloud.client("lambda").create_function(**spec)


def error_of(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def test_access_point_ids_have_aws_shape(network):
    assert re.fullmatch(r"arn:aws:elasticfilesystem:us-east-1:\d{12}:access-point/fsap-[0-9a-f]{17}",
                        network.access_point_arn)


def test_file_system_configs_are_kept_and_returned(cloud, network):
    created = create(cloud, network, "fsc-kept")
    expected = [{"Arn": network.access_point_arn, "LocalMountPath": "/mnt/efs"}]
    assert created["FileSystemConfigs"] == expected
    lam = cloud.client("lambda")
    assert lam.get_function_configuration(FunctionName="fsc-kept")["FileSystemConfigs"] == expected
    assert lam.get_function(FunctionName="fsc-kept")["Configuration"]["FileSystemConfigs"] == expected
    lam.update_function_configuration(FunctionName="fsc-kept", Timeout=9)
    assert lam.get_function_configuration(FunctionName="fsc-kept")["FileSystemConfigs"] == expected
    # Detaching from the VPC while the mount stays is refused; both together are fine.
    code, message = error_of(lambda: lam.update_function_configuration(
        FunctionName="fsc-kept", VpcConfig={"SubnetIds": [], "SecurityGroupIds": []}))
    assert code == "InvalidParameterValueException" and "configured to execute in a VPC" in message
    lam.update_function_configuration(FunctionName="fsc-kept", VpcConfig={"SubnetIds": [], "SecurityGroupIds": []},
                                      FileSystemConfigs=[])
    assert "FileSystemConfigs" not in lam.get_function_configuration(FunctionName="fsc-kept")


@pytest.mark.parametrize("configs, code, fragment", [
    ([{"Arn": "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-12345678",
       "LocalMountPath": "/mnt/efs"}], "ValidationException", "'fileSystemConfigs.1.member.arn' failed"),
    ([{"Arn": "ACCESS_POINT", "LocalMountPath": "/efs"}], "ValidationException", None),
    ([{"Arn": "ACCESS_POINT", "LocalMountPath": "/mnt/a/b"}], "ValidationException",
     "'fileSystemConfigs.1.member.localMountPath' failed to satisfy constraint"),
])
def test_invalid_file_system_configs_are_refused(cloud, network, configs, code, fragment):
    configs = [{**c, "Arn": network.access_point_arn if c["Arn"] == "ACCESS_POINT" else c["Arn"]} for c in configs]
    found_code, message = error_of(lambda: create(cloud, network, "fsc-bad", FileSystemConfigs=configs))
    assert found_code == code
    assert fragment is None or fragment in message


def test_mount_outside_a_vpc_is_refused(cloud, network):
    code, message = error_of(lambda: create(cloud, network, "fsc-novpc", VpcConfig={}))
    assert code == "InvalidParameterValueException"
    assert message == f"Function must be configured to execute in a VPC to reference access point {network.access_point_arn}."


TLS_ONLY = {"Version": "2012-10-17", "Statement": [{
    "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
    "Resource": ["arn:aws:s3:::{b}", "arn:aws:s3:::{b}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def test_tls_only_bucket_policy_does_not_block_the_loopback_endpoint(cloud):
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="efsctl-tls-only")
    s3.put_bucket_policy(Bucket="efsctl-tls-only", Policy=json.dumps(TLS_ONLY).replace("{b}", "efsctl-tls-only"))
    s3.put_object(Bucket="efsctl-tls-only", Key="models/a", Body=b"ok")
    assert s3.get_object(Bucket="efsctl-tls-only", Key="models/a")["Body"].read() == b"ok"
    s3.delete_object(Bucket="efsctl-tls-only", Key="models/a")


def test_an_unconditional_deny_still_denies(cloud):
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="efsctl-deny")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                                                      "Resource": "arn:aws:s3:::efsctl-deny/secret/*"}]}
    s3.put_bucket_policy(Bucket="efsctl-deny", Policy=json.dumps(policy))
    s3.put_object(Bucket="efsctl-deny", Key="secret/a", Body=b"no")
    s3.put_object(Bucket="efsctl-deny", Key="public/a", Body=b"yes")
    assert s3.get_object(Bucket="efsctl-deny", Key="public/a")["Body"].read() == b"yes"
    with pytest.raises(ClientError):
        s3.get_object(Bucket="efsctl-deny", Key="secret/a")


def test_openapi_documents_are_still_validated(cloud):
    # The daemon defers openapi_spec_validator's import to the first validation (efsctl/local/startup.py).
    with pytest.raises(ClientError) as caught:
        cloud.client("apigateway").import_rest_api(failOnWarnings=True, body=json.dumps(
            {"openapi": "3.0.0", "info": {"title": "t", "description": "d"}, "paths": {"/x": {"get": "nope"}}}))
    assert caught.value.response["Error"]["Code"] == "BadRequestException"


def test_managed_policies_are_loaded(cloud):
    policy = cloud.client("iam").get_policy(
        PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")["Policy"]
    assert policy["PolicyName"] == "AWSLambdaVPCAccessExecutionRole"
