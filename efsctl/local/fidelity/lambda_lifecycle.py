"""Lambda's lifecycle: roles that cannot be assumed yet, ``Pending`` functions, one update at a time.

What AWS does and moto does not:

- CreateFunction (and an update that changes the role) checks the execution role: it must trust
  ``lambda.amazonaws.com`` and, right after CreateRole, it cannot be assumed for a few seconds
  (IAM propagation): both are InvalidParameterValueException "The role defined for the function
  cannot be assumed by Lambda.". A function in a VPC needs a role that may create network
  interfaces: "The provided execution role does not have permissions to call
  CreateNetworkInterface on EC2".
- A new function is ``Pending`` (StateReason "The function is being created.", StateReasonCode
  ``Creating``) for the profile's duration; Invoke, UpdateFunctionCode and
  UpdateFunctionConfiguration are refused meanwhile (ResourceConflictException "The operation
  cannot be performed at this time. The function is currently in the following state: Pending").
- After an update ``LastUpdateStatus`` is ``InProgress`` for a while, and a second update is
  ResourceConflictException "An update is in progress for resource: <function arn>".

States are computed from when the function was created or last updated, on every read.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Mapping

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target
from efsctl.local.fidelity.iam_enforcement import identity_policies, policy_document, role_of
from efsctl.local.fidelity.iam_policy import statements
from efsctl.local.fidelity.timeline import Timeline, timeline

BORN = "_efsctl_born"
UPDATED = "_efsctl_updated"

ROLE_NOT_ASSUMABLE = "The role defined for the function cannot be assumed by Lambda."
NO_ENI_PERMISSION = "The provided execution role does not have permissions to call CreateNetworkInterface on EC2"
BEING_CREATED = "The function is being created."


def is_pending(line: Timeline, fn: Any) -> bool:
    return not line.done(getattr(fn, BORN, None), "function_pending")


def is_updating(line: Timeline, fn: Any) -> bool:
    return not line.done(getattr(fn, UPDATED, None), "function_updating")


def _statements(document: Any) -> list[Mapping[str, Any]]:
    return [statement for _, statement in statements(policy_document(document))]


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def trusts_lambda(role: Any) -> bool:
    for statement in _statements(role.assume_role_policy_document):
        if statement.get("Effect") != "Allow" or "sts:AssumeRole" not in _listed(statement.get("Action")):
            continue
        principal = statement.get("Principal")
        if principal == "*" or "lambda.amazonaws.com" in _listed((principal or {}).get("Service")):
            return True
    return False


def allows(account_id: str, role_arn: str, action: str) -> bool:
    """True if an inline or attached policy of the role allows ``action`` (resources not checked)."""
    for _, document in identity_policies(account_id, role_arn):
        for _, statement in statements(document):
            if statement.get("Effect") == "Allow" and any(
                    fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in _listed(statement.get("Action"))):
                return True
    return False


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.awslambda.exceptions import InvalidParameterValueException, LambdaClientError
    from moto.awslambda.models import LambdaBackend, LambdaFunction
    from moto.iam.models import Role

    line = timeline(ctx)

    def conflict(message: str) -> LambdaClientError:
        error = LambdaClientError("ResourceConflictException", message)
        error.code = 409
        return error

    def check_role(account_id: str, role_arn: str, vpc_config: dict[str, Any] | None) -> None:
        role = role_of(account_id, role_arn)
        if role is None:
            return   # moto answers for a role that does not exist
        if not trusts_lambda(role) or not line.done(getattr(role, BORN, None), "role_propagation"):
            raise InvalidParameterValueException(ROLE_NOT_ASSUMABLE)
        if vpc_config and vpc_config.get("SubnetIds") and not allows(account_id, role_arn, "ec2:CreateNetworkInterface"):
            raise InvalidParameterValueException(NO_ENI_PERMISSION)

    def refuse_while_busy(fn: Any) -> None:
        if is_pending(line, fn):
            raise conflict("The operation cannot be performed at this time. "
                           "The function is currently in the following state: Pending")

    def refuse_second_update(fn: Any) -> None:
        refuse_while_busy(fn)
        if is_updating(line, fn):
            raise conflict(f"An update is in progress for resource: {fn.function_arn}")

    def wrap_role_init(original):
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            setattr(self, BORN, line.now())
        return __init__

    def wrap_create(original):
        def create_function(self: Any, spec: dict[str, Any]) -> Any:
            check_role(self.account_id, str(spec.get("Role", "")), spec.get("VpcConfig"))
            fn = original(self, spec)
            latest = self.get_function(fn.function_name)
            setattr(latest, BORN, line.now())
            setattr(fn, BORN, getattr(latest, BORN))
            return fn
        return create_function

    def wrap_update_configuration(original):
        def update_function_configuration(self: Any, function_name: str, qualifier: str, body: dict[str, Any]) -> Any:
            fn = self.get_function(function_name, qualifier)
            refuse_second_update(fn)
            if "Role" in body or "VpcConfig" in body:
                check_role(self.account_id, str(body.get("Role", fn.role)), body.get("VpcConfig", fn._vpc_config))
            started = line.now()
            result = original(self, function_name, qualifier, body)
            setattr(fn, UPDATED, started)
            return _with_state(fn, result)
        return update_function_configuration

    def wrap_update_code(original):
        def update_function_code(self: Any, function_name: str, qualifier: str, body: dict[str, Any]) -> Any:
            fn = self.get_function(function_name, qualifier)
            refuse_second_update(fn)
            result = original(self, function_name, qualifier, body)
            if not body.get("DryRun"):
                setattr(fn, UPDATED, line.now())
            return _with_state(fn, result)
        return update_function_code

    def wrap_invoke(original):
        def invoke(self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any,
                   response_headers: Any) -> Any:
            refuse_while_busy(self.get_function(function_name, qualifier))
            return original(self, function_name, qualifier, body, headers, response_headers)
        return invoke

    def _with_state(fn: Any, config: Any) -> Any:
        return state_fields(fn, dict(config), on_create=False) if isinstance(config, dict) else config

    def state_fields(fn: Any, config: dict[str, Any], on_create: bool) -> dict[str, Any]:
        if is_pending(line, fn):
            config.update(State="Pending", StateReason=BEING_CREATED, StateReasonCode="Creating")
            if not on_create:
                config.update(LastUpdateStatus="InProgress", LastUpdateStatusReason=BEING_CREATED,
                              LastUpdateStatusReasonCode="Creating")
        elif not on_create and is_updating(line, fn):
            config.update(LastUpdateStatus="InProgress", LastUpdateStatusReason=BEING_CREATED,
                          LastUpdateStatusReasonCode="Creating")
        return config

    def wrap_get_configuration(original):
        def get_configuration(self: Any, on_create: bool = False) -> dict[str, Any]:
            return state_fields(self, original(self, on_create), on_create)
        return get_configuration

    patcher.wrap(Role, "__init__", wrap_role_init)
    patcher.wrap(LambdaBackend, "create_function", wrap_create)
    patcher.wrap(LambdaBackend, "update_function_configuration", wrap_update_configuration)
    patcher.wrap(LambdaBackend, "update_function_code", wrap_update_code)
    patcher.wrap(LambdaBackend, "invoke", wrap_invoke)
    patcher.wrap(LambdaFunction, "get_configuration", wrap_get_configuration)


PATCH = Patch(
    name="lambda_lifecycle",
    summary="role propagation and trust, Pending functions, LastUpdateStatus InProgress, conflicts refused",
    targets=(
        Target("moto.iam.models:Role.__init__"),
        Target("moto.iam.models:IAMBackend.get_roles", ("self",)),
        Target("moto.awslambda.models:LambdaBackend.create_function", ("self", "spec")),
        Target("moto.awslambda.models:LambdaBackend.update_function_configuration",
               ("self", "function_name", "qualifier", "body")),
        Target("moto.awslambda.models:LambdaBackend.update_function_code", ("self", "function_name", "qualifier", "body")),
        Target("moto.awslambda.models:LambdaBackend.invoke",
               ("self", "function_name", "qualifier", "body", "headers", "response_headers")),
        Target("moto.awslambda.models:LambdaFunction.get_configuration", ("self", "on_create")),
        Target("moto.awslambda.exceptions:InvalidParameterValueException", ("message",)),
    ),
    install=install,
)
