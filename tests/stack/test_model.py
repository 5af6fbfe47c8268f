"""The desired stack as data, and the deterministic code package. Pure: no AWS."""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import sys
import zipfile

import pytest

from efsctl.errors import ConfigError
from efsctl.stack import package
from efsctl.stack.model import (KEYS, TAG_REGION, TAG_RESOURCE, TAG_STACK, Fmt, Ref, StackConfig, by_key,
                                desired_stack, subnet_cidrs, topological_order, validate_memory, validate_vpc_cidr)

CONFIG = StackConfig(stack="demo", region="us-west-2", account="111122223333", zones=("us-west-2a", "us-west-2b"))


def test_the_stack_has_every_design_resource_in_order():
    assert [r.key for r in desired_stack(CONFIG)] == list(KEYS)
    assert desired_stack(CONFIG) == desired_stack(CONFIG)


def test_every_taggable_resource_carries_the_stack_tags():
    for resource in desired_stack(CONFIG):
        if resource.taggable:
            assert resource.tags[TAG_STACK] == "demo" and resource.tags[TAG_RESOURCE] == resource.key
        else:
            assert resource.tags == {}
    assert by_key(desired_stack(CONFIG))["role-producer"].tags[TAG_REGION] == "us-west-2"


def test_dependencies_encode_the_order_aws_enforces():
    stack = by_key(desired_stack(CONFIG))
    for which in ("producer", "consumer"):
        deps = stack[f"fn-{which}"].dependencies()
        assert {f"log-{which}", "mt-a", "mt-b", f"role-{which}", "access-point", "subnet-a", "subnet-b",
                "sg-lambda"} <= set(deps)
    assert {"efs", "subnet-a", "sg-efs"} <= set(stack["mt-a"].dependencies())
    assert "s3-permission" in stack["s3-notification"].dependencies()
    assert "fn-producer" in stack["s3-permission"].dependencies()
    assert stack["sg-efs"].dependencies() == ("vpc", "sg-lambda")
    assert "api-integration" in stack["api-routes"].dependencies()
    order = [r.key for r in topological_order(desired_stack(CONFIG))]
    assert order.index("efs") < order.index("mt-a") < order.index("fn-producer")


def test_subnets_span_two_zones_and_the_vpc_has_dns():
    stack = by_key(desired_stack(CONFIG))
    assert (stack["subnet-a"].zone, stack["subnet-b"].zone) == ("us-west-2a", "us-west-2b")
    assert (stack["subnet-a"].cidr, stack["subnet-b"].cidr) == ("10.42.0.0/20", "10.42.16.0/20")
    assert not stack["subnet-a"].map_public_ip
    assert stack["vpc"].dns_support and stack["vpc"].dns_hostnames
    assert stack["s3-endpoint"].service_name == "com.amazonaws.us-west-2.s3"


def test_security_groups_only_allow_nfs_from_the_functions():
    stack = by_key(desired_stack(CONFIG))
    assert stack["sg-lambda"].ingress == ()
    (rule,) = stack["sg-efs"].ingress
    assert (rule.protocol, rule.port, rule.source_group) == ("tcp", 2049, Ref("sg-lambda"))


def test_storage_and_functions_as_designed():
    stack = by_key(desired_stack(CONFIG))
    efs = stack["efs"]
    assert (efs.encrypted, efs.throughput_mode, efs.creation_token) == (True, "elastic", "efsctl-demo-us-west-2")
    ap = stack["access-point"]
    assert ap.posix_user == {"Uid": 1000, "Gid": 1000}
    assert ap.root_directory == {"Path": "/lambda", "CreationInfo": {"OwnerUid": 1000, "OwnerGid": 1000,
                                                                     "Permissions": "0750"}}
    bucket = stack["bucket"]
    assert bucket.name == "efsctl-demo-111122223333-us-west-2"
    assert all(bucket.public_access_block.values())
    assert bucket.policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    producer, consumer = stack["fn-producer"], stack["fn-consumer"]
    assert (producer.runtime, producer.architecture, producer.timeout, consumer.timeout) == (
        "python3.12", "arm64", 900, 29)
    assert producer.mount_path == "/mnt/efs" and producer.access_point == Ref("access-point", "arn")
    assert producer.environment == {"EFS_MOUNT_PATH": "/mnt/efs", "BUCKET": bucket.name, "MODELS_PREFIX": "models/",
                                    "OUTPUTS_PREFIX": "outputs/"}
    assert stack["log-producer"].name == "/aws/lambda/efsctl-demo-producer"
    assert stack["log-producer"].retention_days == 14
    assert stack["api-routes"].route_keys == ("POST /predict", "GET /models", "GET /models/{name+}")
    assert stack["api-routes"].authorization == "AWS_IAM"
    assert stack["api-permission"].source_arn == Fmt(
        "arn:aws:execute-api:us-west-2:111122223333:{api}/*/*/*", api=Ref("api"))
    assert stack["s3-permission"].source_arn == "arn:aws:s3:::efsctl-demo-111122223333-us-west-2"
    assert stack["s3-permission"].source_account == "111122223333"


def _statements(which: str) -> dict:
    return {s["Sid"]: s for s in by_key(desired_stack(CONFIG))[f"role-{which}"].policy["Statement"]}


def test_roles_are_least_privilege():
    producer, consumer = _statements("producer"), _statements("consumer")
    assert producer["ReadModels"]["Action"] == "s3:GetObject"
    assert producer["ReadModels"]["Resource"] == "arn:aws:s3:::efsctl-demo-111122223333-us-west-2/models/*"
    assert consumer["WriteOutputs"]["Action"] == "s3:PutObject"
    assert consumer["WriteOutputs"]["Resource"] == "arn:aws:s3:::efsctl-demo-111122223333-us-west-2/outputs/*"
    for statements, which in ((producer, "producer"), (consumer, "consumer")):
        for statement in statements.values():
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert "*" not in actions and all(":" in a and not a.endswith(":*") for a in actions)
            if statement["Resource"] == "*":
                assert statement["Sid"] == "VpcNetworkInterfaces"
        assert statements["MountFileSystem"]["Resource"] == Ref("efs", "arn")
        assert statements["WriteOwnLogs"]["Resource"] == (
            f"arn:aws:logs:us-west-2:111122223333:log-group:/aws/lambda/efsctl-demo-{which}:*")
        # Exactly AWSLambdaVPCAccessExecutionRole's EC2 actions, nothing more.
        assert sorted(statements["VpcNetworkInterfaces"]["Action"]) == [
            "ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface",
            "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:UnassignPrivateIpAddresses"]


@pytest.mark.parametrize("cidr,expected", [("10.42.0.0/16", ("10.42.0.0/20", "10.42.16.0/20")),
                                           ("192.168.8.0/22", ("192.168.8.0/24", "192.168.9.0/24")),
                                           ("172.16.0.0/24", ("172.16.0.0/25", "172.16.0.128/25"))])
def test_subnet_cidrs(cidr, expected):
    assert subnet_cidrs(cidr) == expected


@pytest.mark.parametrize("cidr", ["10.42.0.0/8", "10.42.0.1/16", "nonsense", "fd00::/48", "10.0.0.0/28"])
def test_bad_vpc_cidr_is_a_usage_error(cidr):
    with pytest.raises(ConfigError):
        validate_vpc_cidr(cidr)


@pytest.mark.parametrize("memory", [64, 10_241])
def test_memory_outside_lambda_limits_is_a_usage_error(memory):
    with pytest.raises(ConfigError, match="128-10240"):
        validate_memory(memory)


def test_zip_is_byte_for_byte_reproducible(tmp_path):
    (tmp_path / "producer.py").write_text("def handler(e, c):\n    return 1\n")
    (tmp_path / "consumer.py").write_text("def handler(e, c):\n    return 2\n")
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "notes.txt").write_text("not code")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.py").write_text("x = 1\n")
    first = package.build(tmp_path)
    (tmp_path / "producer.py").touch()  # a new mtime changes nothing
    second = package.build(tmp_path)
    assert first == second
    assert first.files == ("consumer.py", "producer.py")
    assert first.sha256 == base64.b64encode(hashlib.sha256(first.zip_bytes).digest()).decode()
    with zipfile.ZipFile(io.BytesIO(first.zip_bytes)) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["consumer.py", "producer.py"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    (tmp_path / "producer.py").write_text("def handler(e, c):\n    return 3\n")
    assert package.build(tmp_path).sha256 != first.sha256


def test_code_directory_is_found_without_importing_lambda_code():
    code = ("import sys\nfrom efsctl.stack import package\nd = package.code_directory()\n"
            "assert d.name == 'lambda_code' and 'lambda_code' not in sys.modules, sys.modules.get('lambda_code')\n"
            "print(package.build().sha256)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == package.build().sha256
