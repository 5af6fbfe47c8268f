"""AWS Lambda: functions, their code and configuration, and resource-policy permissions."""

from __future__ import annotations

import json
from typing import Any, Mapping

from efsctl.aws.errors import attempt, aws_call, is_code
from efsctl.aws.session import AwsContext


def _lambda(aws: AwsContext) -> Any:
    return aws.client("lambda")


def update_in_progress(exc: BaseException) -> str | None:
    """Why Lambda refused a change for now, if it did: a function still Pending, or mid-update,
    refuses another (AWS-RULES 8, 9). For ``retry(retryable=...)``."""
    from efsctl.errors import AwsError

    if isinstance(exc, AwsError) and exc.code in ("ResourceConflictException", "ResourceNotReadyException"):
        return "an update or creation is still in progress"
    return None


@aws_call
def get_function(aws: AwsContext, name: str) -> dict[str, Any] | None:
    """``{"Configuration": ..., "Tags": {...}}`` or ``None``."""
    try:
        response = _lambda(aws).get_function(FunctionName=name)
    except Exception as exc:
        if is_code(exc, "ResourceNotFoundException"):
            return None
        raise
    return {"Configuration": response["Configuration"], "Tags": response.get("Tags") or {}}


@aws_call
def function_configuration(aws: AwsContext, name: str) -> dict[str, Any] | None:
    try:
        return _lambda(aws).get_function_configuration(FunctionName=name)
    except Exception as exc:
        if is_code(exc, "ResourceNotFoundException"):
            return None
        raise


@aws_call
def create_function(aws: AwsContext, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """Create the function; ``None`` if one of that name already exists."""
    try:
        return _lambda(aws).create_function(**spec)
    except Exception as exc:
        if is_code(exc, "ResourceConflictException") and "exist" in str(exc).lower():
            return None
        raise


@aws_call
def update_code(aws: AwsContext, name: str, zip_bytes: bytes, architecture: str) -> dict[str, Any]:
    return _lambda(aws).update_function_code(FunctionName=name, ZipFile=zip_bytes, Architectures=[architecture])


@aws_call
def update_configuration(aws: AwsContext, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    return _lambda(aws).update_function_configuration(FunctionName=name, **config)


@aws_call
def invoke(aws: AwsContext, name: str, payload: Mapping[str, Any]) -> Any:
    """Invoke ``name`` synchronously with ``payload`` (JSON) and return its decoded answer; a
    function error becomes an :class:`AwsError` with the function's own message."""
    from efsctl.errors import AwsError

    response = _lambda(aws).invoke(FunctionName=name, InvocationType="RequestResponse",
                                   Payload=json.dumps(payload).encode())
    raw = response["Payload"].read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    if response.get("FunctionError"):
        detail = body.get("errorMessage") if isinstance(body, dict) else body
        raise AwsError(f"{name} failed: {str(detail or 'no message').rstrip('.')}.",
                       f"`efsctl tail-logs --since 5m` shows what {name} logged.", code="FunctionError",
                       operation="Invoke")
    return body


@aws_call
def reserved_concurrency(aws: AwsContext, name: str) -> int | None:
    """The function's reserved concurrency (0: it is stopped), or ``None`` when it has none."""
    response = _lambda(aws).get_function_concurrency(FunctionName=name)
    value = response.get("ReservedConcurrentExecutions")
    return int(value) if value is not None else None


@aws_call
def tag_function(aws: AwsContext, arn: str, tags: Mapping[str, str]) -> None:
    if tags:
        _lambda(aws).tag_resource(Resource=arn, Tags=dict(tags))


@aws_call
def policy_statements(aws: AwsContext, name: str) -> list[dict[str, Any]]:
    """The statements of the function's resource policy ([] when it has none)."""
    try:
        policy = _lambda(aws).get_policy(FunctionName=name)["Policy"]
    except Exception as exc:
        if is_code(exc, "ResourceNotFoundException"):
            return []
        raise
    return list(json.loads(policy).get("Statement", []))


@aws_call
def add_permission(aws: AwsContext, name: str, *, statement_id: str, principal: str, source_arn: str,
                   source_account: str | None = None) -> None:
    params: dict[str, Any] = {"FunctionName": name, "StatementId": statement_id, "Action": "lambda:InvokeFunction",
                              "Principal": principal, "SourceArn": source_arn}
    if source_account:
        params["SourceAccount"] = source_account
    _lambda(aws).add_permission(**params)


@aws_call
def remove_permission(aws: AwsContext, name: str, statement_id: str) -> None:
    try:
        _lambda(aws).remove_permission(FunctionName=name, StatementId=statement_id)
    except Exception as exc:
        if not is_code(exc, "ResourceNotFoundException"):
            raise


# --- teardown (`efsctl down`) ----------------------------------------------------------------

DETACHED_VPC = {"SubnetIds": [], "SecurityGroupIds": []}  # moto needs both lists, empty


@aws_call
def detach_from_vpc(aws: AwsContext, name: str) -> dict[str, Any] | None:
    """Take the function out of its VPC (and off its file system, which needs the VPC), so
    Lambda starts releasing its network interfaces. ``None`` if the function is gone.
    ``ResourceConflictException`` (an update or creation still in progress) propagates."""
    try:
        return _lambda(aws).update_function_configuration(FunctionName=name, VpcConfig=dict(DETACHED_VPC),
                                                          FileSystemConfigs=[])
    except Exception as exc:
        if is_code(exc, "ResourceNotFoundException"):
            return None
        raise


@aws_call
def delete_function(aws: AwsContext, name: str) -> bool:
    return attempt(lambda: _lambda(aws).delete_function(FunctionName=name), "ResourceNotFoundException")
