"""The Terraform configuration against the model, read back with python-hcl2: the same resources,
arguments, tags, policies and orders, for the default stack and for non-default settings."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from efsctl.stack.iac import mapping, terraform
from efsctl.stack.iac.mapping import Defaults
from efsctl.stack.model import subnet_cidrs, validate_vpc_cidr

from iac_support import ACCOUNT, REGION, TfEvaluator, load_hcl, model_resources, tf_resources

DEFAULT = Defaults("default")
CUSTOM = Defaults("team-a", vpc_cidr="10.50.0.0/20", memory=4096, architecture="x86_64")


def block(**attrs: Any) -> list[dict[str, Any]]:
    return [attrs]


def expected(r: Any) -> list[tuple[str, dict[str, Any]]]:
    """What one model resource must become: (type, arguments it must have), named after its key."""
    tags = dict(r.tags)
    kind = r.kind
    if kind == "vpc":
        return [("aws_vpc", {"cidr_block": r.cidr, "enable_dns_support": True, "enable_dns_hostnames": True,
                             "tags": tags})]
    if kind == "subnet":
        return [("aws_subnet", {"vpc_id": r.vpc, "cidr_block": r.cidr, "availability_zone": r.zone,
                                "map_public_ip_on_launch": False, "tags": tags,
                                "lifecycle": block(ignore_changes=["availability_zone"])})]
    if kind == "route-table":
        return [("aws_route_table", {"vpc_id": r.vpc, "tags": tags}),
                ("aws_route_table_association", {"route_table_id": "⟨route-table⟩",
                                                 "for_each": {"subnet_a": "⟨subnet-a⟩", "subnet_b": "⟨subnet-b⟩"}})]
    if kind == "vpc-endpoint":
        return [("aws_vpc_endpoint", {"vpc_id": r.vpc, "service_name": r.service_name, "vpc_endpoint_type": "Gateway",
                                      "route_table_ids": list(r.route_tables), "tags": tags})]
    if kind == "security-group":
        natives = [("aws_security_group", {"name": r.group_name, "description": r.description, "vpc_id": r.vpc,
                                           "tags": tags}),
                   # AWS's default rule, which `up` keeps and Terraform would otherwise remove.
                   ("aws_vpc_security_group_egress_rule", {"security_group_id": f"⟨{r.key}⟩", "ip_protocol": "-1",
                                                           "cidr_ipv4": "0.0.0.0/0"})]
        return natives + [("aws_vpc_security_group_ingress_rule", {
            "security_group_id": f"⟨{r.key}⟩", "ip_protocol": i.protocol, "from_port": i.port, "to_port": i.port,
            "referenced_security_group_id": i.source_group, "description": i.description, "tags": tags})
            for i in r.ingress]
    if kind == "efs":
        return [("aws_efs_file_system", {"creation_token": r.creation_token, "encrypted": True,
                                         "throughput_mode": "elastic", "performance_mode": "generalPurpose",
                                         "tags": tags})]
    if kind == "mount-target":
        return [("aws_efs_mount_target", {"file_system_id": r.file_system, "subnet_id": r.subnet,
                                          "security_groups": list(r.security_groups)})]
    if kind == "access-point":
        return [("aws_efs_access_point", {
            "file_system_id": r.file_system, "posix_user": block(uid=1000, gid=1000),
            "root_directory": block(path="/lambda", creation_info=block(owner_uid=1000, owner_gid=1000,
                                                                        permissions="0750")), "tags": tags})]
    if kind == "bucket":
        return [("aws_s3_bucket", {"bucket": r.name, "tags": tags}),
                ("aws_s3_bucket_public_access_block", {"bucket": "⟨bucket⟩", "block_public_acls": True,
                                                       "ignore_public_acls": True, "block_public_policy": True,
                                                       "restrict_public_buckets": True}),
                ("aws_s3_bucket_server_side_encryption_configuration", {"bucket": "⟨bucket⟩", "rule": block(
                    apply_server_side_encryption_by_default=block(sse_algorithm="AES256"))}),
                ("aws_s3_bucket_policy", {"bucket": "⟨bucket⟩", "policy": ["jsonencode", r.policy]})]
    if kind == "role":
        return [("aws_iam_role", {"name": r.name, "description": r.description,
                                  "assume_role_policy": ["jsonencode", r.trust], "tags": tags}),
                ("aws_iam_role_policy", {"name": "efsctl", "role": f"⟨{r.key}⟩", "policy": ["jsonencode", r.policy]})]
    if kind == "log-group":
        return [("aws_cloudwatch_log_group", {"name": r.name, "retention_in_days": 14, "tags": tags})]
    if kind == "function":
        return [("aws_lambda_function", {
            "function_name": r.name, "package_type": "Zip", "architectures": [r.architecture], "role": r.role,
            "handler": r.handler, "runtime": r.runtime, "memory_size": r.memory, "timeout": r.timeout,
            "description": f"efsctl: {r.key.removeprefix('fn-')}", "environment": block(variables=dict(r.environment)),
            "vpc_config": block(subnet_ids=list(r.subnets), security_group_ids=list(r.security_groups)),
            "file_system_config": block(arn=r.access_point, local_mount_path="/mnt/efs"),
            "filename": "./handlers.zip", "source_code_hash": ["filebase64sha256", "./handlers.zip"], "tags": tags})]
    if kind == "permission":
        return [("aws_lambda_permission", {"statement_id": r.statement_id, "action": "lambda:InvokeFunction",
                                           "function_name": r.function, "principal": r.principal,
                                           "source_arn": r.source_arn, "source_account": r.source_account})]
    if kind == "bucket-notification":
        return [("aws_s3_bucket_notification", {"bucket": r.bucket, "lambda_function": block(
            id="efsctl-models", lambda_function_arn=r.function, events=["s3:ObjectCreated:*"],
            filter_prefix="models/")})]
    if kind == "http-api":
        return [("aws_apigatewayv2_api", {"name": r.name, "protocol_type": "HTTP", "description": r.description,
                                          "tags": tags})]
    if kind == "api-integration":
        return [("aws_apigatewayv2_integration", {"api_id": "⟨api⟩", "integration_type": "AWS_PROXY",
                                                  "integration_method": "POST", "integration_uri": r.function,
                                                  "payload_format_version": "2.0", "timeout_milliseconds": 29000})]
    if kind == "api-routes":
        return [("aws_apigatewayv2_route", {"api_id": "⟨api⟩", "for_each": ["toset", list(r.route_keys)],
                                            "target": "integrations/⟨api-integration⟩",
                                            "authorization_type": "AWS_IAM"})]
    if kind == "api-stage":
        return [("aws_apigatewayv2_stage", {"api_id": "⟨api⟩", "name": "$default", "auto_deploy": True,
                                            "tags": tags})]
    raise AssertionError(f"no expectation for {kind}: add one (and a mapping in both formats)")


def generated(defaults: Defaults) -> tuple[dict[str, str], dict[str, Any], TfEvaluator]:
    files = terraform.render(defaults, zip_path="handlers.zip")
    main = load_hcl(files["main.tf"])
    variables = {}
    for entry in load_hcl(files["variables.tf"])["variable"]:
        for name, body in entry.items():
            default = body["default"]
            variables[name.strip('"')] = default.strip('"') if isinstance(default, str) else default
    newbits = main["locals"][0]["subnet_newbits"][2:-1]
    return files, main, TfEvaluator(variables, newbits)


def test_a_kind_without_a_mapping_does_not_render():
    resources = mapping.parameterised_stack(DEFAULT) + [SimpleNamespace(kind="queue", key="queue")]
    with pytest.raises(LookupError, match="no Terraform mapping for the model's queue"):
        terraform.render(DEFAULT, zip_path="handlers.zip", resources=resources)


@pytest.mark.parametrize("defaults", [DEFAULT, CUSTOM], ids=["default", "custom"])
def test_configuration_has_exactly_the_models_resources_arguments_tags_and_policies(defaults):
    _, main, evaluate = generated(defaults)
    model = model_resources(defaults.stack, vpc_cidr=defaults.vpc_cidr, memory=defaults.memory,
                            architecture=defaults.architecture)
    found = tf_resources(main)
    wanted = {(type_, key.replace("-", "_")): arguments for key, r in model.items() for type_, arguments in expected(r)}
    assert set(found) == set(wanted)
    for address, arguments in wanted.items():
        body = evaluate(found[address])
        assert {k: body.get(k) for k in arguments} == arguments, address


@pytest.mark.parametrize("defaults", [DEFAULT, CUSTOM], ids=["default", "custom"])
def test_variables_default_to_the_settings(defaults):
    _, _, evaluate = generated(defaults)
    assert evaluate.vars == {"stack_name": defaults.stack, "vpc_cidr": defaults.vpc_cidr, "memory": defaults.memory,
                             "architecture": defaults.architecture}


@pytest.mark.parametrize("prefix", range(16, 25))
def test_subnets_are_computed_from_the_vpc_block_as_the_model_computes_them(prefix):
    cidr = validate_vpc_cidr(f"10.7.0.0/{prefix}")
    _, main, evaluate = generated(Defaults("default", vpc_cidr=cidr))
    subnets = tf_resources(main)
    assert [evaluate(subnets[("aws_subnet", n)]["cidr_block"]) for n in ("subnet_a", "subnet_b")] == \
        list(subnet_cidrs(cidr))


def test_orders_the_model_does_not_state_are_depends_on_with_their_reason():
    files, main, evaluate = generated(DEFAULT)
    found = tf_resources(main)
    assert evaluate(found[("aws_lambda_function", "fn_producer")])["depends_on"] == [
        "aws_cloudwatch_log_group.log_producer", "aws_efs_mount_target.mt_a", "aws_efs_mount_target.mt_b",
        "aws_iam_role_policy.role_producer"]
    assert evaluate(found[("aws_s3_bucket_notification", "s3_notification")])["depends_on"] == [
        "aws_s3_bucket.bucket", "aws_lambda_permission.s3_permission"]
    text = files["main.tf"]
    assert "aws_lambda_permission.s3_permission, # S3 validates the destination: the invoke permission must " \
           "exist first" in text
    assert "aws_cloudwatch_log_group.log_producer, # its log group first, so Lambda never creates one without " \
           "retention" in text
    assert "aws_iam_role_policy.role_producer, # the role's policy first" in text


def test_account_region_and_zones_come_from_data_sources():
    _, main, evaluate = generated(DEFAULT)
    data = {(t.strip('"'), n.strip('"')) for entry in main["data"] for t, named in entry.items() for n in named}
    assert data == {("aws_caller_identity", "current"), ("aws_region", "current"), ("aws_partition", "current"),
                    ("aws_availability_zones", "available")}
    found = tf_resources(main)
    assert evaluate(found[("aws_s3_bucket", "bucket")]["bucket"]) == f"efsctl-default-{ACCOUNT}-{REGION}"
    assert evaluate(found[("aws_subnet", "subnet_b")]["availability_zone"]) == "eu-west-1b"
    providers = main["terraform"][0]["required_providers"][0]["aws"]
    assert providers["source"] == '"hashicorp/aws"'


def test_outputs_name_the_api_url_bucket_and_functions():
    files, _, evaluate = generated(DEFAULT)
    outputs = {name.strip('"'): evaluate(body["value"]) for entry in load_hcl(files["outputs.tf"])["output"]
               for name, body in entry.items()}
    assert outputs == {"api_url": "⟨api.endpoint⟩", "bucket": "⟨bucket⟩", "producer_function": "⟨fn-producer⟩",
                       "consumer_function": "⟨fn-consumer⟩"}
