"""IAM roles with one inline policy each. IAM is global and not in the tagging API: roles
are found by their deterministic names."""

from __future__ import annotations

import json
from typing import Any, Mapping

from efsctl.aws.errors import aws_call, is_code
from efsctl.aws.paginate import paginate
from efsctl.aws.session import AwsContext
from efsctl.aws.tags import tag_dict, tag_list


def _iam(aws: AwsContext) -> Any:
    return aws.client("iam")


def _document(value: Any) -> dict[str, Any]:
    # boto3 decodes IAM's URL-encoded JSON into a dict; be tolerant of a string anyway.
    if isinstance(value, str):
        from urllib.parse import unquote

        return json.loads(unquote(value))
    return value or {}


@aws_call
def get_role(aws: AwsContext, name: str) -> dict[str, Any] | None:
    """The role with ``Tags`` as a dict and ``AssumeRolePolicyDocument`` decoded, or ``None``."""
    try:
        role = dict(_iam(aws).get_role(RoleName=name)["Role"])
    except Exception as exc:
        if is_code(exc, "NoSuchEntity"):
            return None
        raise
    role["AssumeRolePolicyDocument"] = _document(role.get("AssumeRolePolicyDocument"))
    if "Tags" in role:
        role["Tags"] = tag_dict(role["Tags"])
    else:
        role["Tags"] = tag_dict(paginate(_iam(aws), "list_role_tags", "Tags", RoleName=name))
    return role


@aws_call
def create_role(aws: AwsContext, name: str, *, trust: Mapping[str, Any], description: str,
                tags: Mapping[str, str]) -> tuple[dict[str, Any], bool]:
    """``(role, created)``: ``created`` is False when the role already existed."""
    try:
        role = dict(_iam(aws).create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
                                          Description=description, Tags=tag_list(tags))["Role"])
    except Exception as exc:
        existing = get_role(aws, name) if is_code(exc, "EntityAlreadyExists") else None
        if existing is None:
            raise
        return existing, False
    # IAM reads can lag a fresh create: answer from the create's own response.
    role["AssumeRolePolicyDocument"] = dict(trust)
    role["Tags"] = dict(tags)
    return role, True


@aws_call
def set_trust_policy(aws: AwsContext, name: str, trust: Mapping[str, Any]) -> None:
    _iam(aws).update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))


@aws_call
def inline_policy_names(aws: AwsContext, role: str) -> list[str]:
    return list(paginate(_iam(aws), "list_role_policies", "PolicyNames", RoleName=role))


@aws_call
def attached_policy_arns(aws: AwsContext, role: str) -> list[str]:
    return [p["PolicyArn"] for p in paginate(_iam(aws), "list_attached_role_policies", "AttachedPolicies",
                                             RoleName=role)]


@aws_call
def get_inline_policy(aws: AwsContext, role: str, policy_name: str) -> dict[str, Any] | None:
    try:
        return _document(_iam(aws).get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"])
    except Exception as exc:
        if is_code(exc, "NoSuchEntity"):
            return None
        raise


@aws_call
def put_inline_policy(aws: AwsContext, role: str, policy_name: str, document: Mapping[str, Any]) -> None:
    _iam(aws).put_role_policy(RoleName=role, PolicyName=policy_name, PolicyDocument=json.dumps(document))


@aws_call
def tag_role(aws: AwsContext, name: str, tags: Mapping[str, str]) -> None:
    if tags:
        _iam(aws).tag_role(RoleName=name, Tags=tag_list(tags))


# --- teardown (`efsctl down`) ----------------------------------------------------------------

@aws_call
def delete_role(aws: AwsContext, name: str) -> bool:
    """Delete the role after what IAM requires gone first: inline policies, attached managed
    policies, instance-profile memberships. ``False`` if it was already gone."""
    client = _iam(aws)
    try:
        for policy in paginate(client, "list_role_policies", "PolicyNames", RoleName=name):
            client.delete_role_policy(RoleName=name, PolicyName=policy)
        for attached in paginate(client, "list_attached_role_policies", "AttachedPolicies", RoleName=name):
            client.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        for profile in paginate(client, "list_instance_profiles_for_role", "InstanceProfiles", RoleName=name):
            client.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
        client.delete_role(RoleName=name)
        return True
    except Exception as exc:
        if is_code(exc, "NoSuchEntity"):
            return False
        raise
