"""Network interfaces of Lambda functions in a VPC, and the VPC a function reports.

A function with subnets owns interfaces in them (moto creates none): one per subnet, with the
function's security groups, described ``AWS Lambda VPC ENI-<function>``, InterfaceType
``lambda``, requester-managed and ``in-use``. They are made when the function, or its VPC
configuration, is created, and released when the function is deleted or leaves the VPC (or
changes subnets or groups): at once under ``instant``, after the profile's linger under ``aws``
(AWS takes up to 20 minutes). Until they are gone, the subnets and security groups cannot be
deleted (see ``vpc_dependencies``). Lambda deletes them with the function's role; if the role
is gone by then, they are left ``available`` for their owner to delete, as on AWS. Those calls
are made with the function's role and recorded for the least-privilege report.

Subnets and security groups are checked when the configuration is set, with Lambda's messages,
and the function reports the VPC of its subnets (moto says ``vpc-123abc``).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target
from efsctl.local.fidelity.iam_enforcement import lambda_actions, role_of
from efsctl.local.fidelity.timeline import timeline

ENIS = "_efsctl_enis"
DESCRIPTION = "AWS Lambda VPC ENI-{name}"
ATTACH_ACTIONS = ("ec2:DescribeSubnets", "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces")
RELEASE_ACTIONS = ("ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface")


# Whether a role may still delete its function's interfaces (function, account, role ARN), set by
# install() when the IAM enforcement patch is there; looked up at call time, so a timer restored
# from a saved cloud (which holds only plain arguments) still asks.
RELEASE_CHECK: list[Callable[[str, str, str], bool]] = []


def release_interfaces(account_id: str, region: str, eni_ids: list[str], role_arn: str,
                       function_name: str = "") -> None:
    """Lambda lets go of a function's interfaces (a module function, so the timeline can save it):
    deleted with the function's role, or left ``available`` for their owner if the role is gone
    (or no longer allows it)."""
    from moto.ec2.models import ec2_backends

    ec2_backend = ec2_backends[account_id][region]
    role_alive = role_of(account_id, role_arn) is not None
    if role_alive and RELEASE_CHECK:
        role_alive = RELEASE_CHECK[0](function_name, account_id, role_arn)
    for eni_id in eni_ids:
        eni = ec2_backend.enis.get(eni_id)
        if eni is None:
            continue
        if role_alive:
            ec2_backend.enis.pop(eni_id, None)
            eni.subnet.del_subnet_ip(eni.private_ip_address)
        else:   # Lambda could not act for the function any more: orphaned
            eni.status = "available"


def network_of(vpc_config: dict[str, Any] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    config = vpc_config or {}
    return tuple(sorted(config.get("SubnetIds") or [])), tuple(sorted(config.get("SecurityGroupIds") or []))


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.awslambda.exceptions import InvalidParameterValueException
    from moto.awslambda.models import LambdaBackend, LambdaFunction
    from moto.ec2.models import ec2_backends

    line = timeline(ctx)

    def may_release(function: str, account_id: str, role_arn: str) -> bool:
        actions = lambda_actions(ctx)
        return actions is None or actions.network(function, account_id, role_arn, RELEASE_ACTIONS)

    RELEASE_CHECK[:] = [may_release]

    def ec2(fn_or_backend: Any) -> Any:
        region = getattr(fn_or_backend, "region", None) or fn_or_backend.region_name
        return ec2_backends[fn_or_backend.account_id][region]

    def check_network(backend: Any, vpc_config: dict[str, Any] | None) -> None:
        subnets, groups = network_of(vpc_config)
        if not subnets:
            return
        ec2_backend = ec2(backend)
        for subnet_id in subnets:
            if not any(subnet_id in by_id for by_id in ec2_backend.subnets.values()):
                raise InvalidParameterValueException(
                    "Error occurred while DescribeSubnets. EC2 Error Code: InvalidSubnetID.NotFound. "
                    f"EC2 Error Message: The subnet ID '{subnet_id}' does not exist")
        for group_id in groups:
            if ec2_backend.get_security_group_from_id(group_id) is None:
                raise InvalidParameterValueException(
                    "Error occurred while DescribeSecurityGroups. EC2 Error Code: InvalidGroup.NotFound. "
                    f"EC2 Error Message: The security group '{group_id}' does not exist")

    def attach(fn: Any) -> None:
        subnets, groups = network_of(fn._vpc_config)
        ec2_backend = ec2(fn)
        enis = []
        for subnet_id in subnets:
            eni = ec2_backend.create_network_interface(ec2_backend.get_subnet(subnet_id), None, group_ids=list(groups),
                                                       description=DESCRIPTION.format(name=fn.function_name))
            eni.interface_type = "lambda"
            eni.requester_managed = True
            eni.requester_id = f"{fn.account_id}:{fn.function_name}"
            eni.status = "in-use"
            enis.append(eni.id)
        setattr(fn, ENIS, enis)
        if enis and lambda_actions(ctx) is not None:
            lambda_actions(ctx).network(fn.function_name, fn.account_id, fn.role, ATTACH_ACTIONS)

    def release(fn: Any) -> None:
        enis = list(getattr(fn, ENIS, None) or [])
        setattr(fn, ENIS, [])
        if enis:
            line.after("eni_linger", functools.partial(release_interfaces, fn.account_id, fn.region, enis, fn.role,
                                                       fn.function_name))

    def wrap_create(original):
        def create_function(self: Any, spec: dict[str, Any]) -> Any:
            check_network(self, spec.get("VpcConfig"))
            fn = original(self, spec)
            latest = self.get_function(fn.function_name)
            attach(latest)
            return fn
        return create_function

    def wrap_update(original):
        def update_function_configuration(self: Any, function_name: str, qualifier: str, body: dict[str, Any]) -> Any:
            fn = self.get_function(function_name, qualifier)
            before = network_of(fn._vpc_config)
            if "VpcConfig" in body:
                check_network(self, body["VpcConfig"])
            result = original(self, function_name, qualifier, body)
            if network_of(fn._vpc_config) != before:
                release(fn)
                attach(fn)
            return result
        return update_function_configuration

    def wrap_delete(original):
        def delete_function(self: Any, function_name: str, qualifier: str | None = None) -> None:
            fn = self.get_function(function_name) if qualifier is None else None
            original(self, function_name, qualifier)
            if fn is not None:
                release(fn)
        return delete_function

    def vpc_config(self: Any) -> dict[str, Any] | None:
        if not self._vpc_config:
            return None
        config = dict(self._vpc_config)
        subnets = config.get("SubnetIds") or []
        vpc_id = ""
        if subnets:
            try:
                vpc_id = ec2(self).get_subnet(subnets[0]).vpc_id
            except Exception:  # noqa: BLE001 - the subnet went away: report none, as AWS does
                vpc_id = ""
        config["VpcId"] = vpc_id
        config.setdefault("SubnetIds", [])
        config.setdefault("SecurityGroupIds", [])
        return config

    patcher.wrap(LambdaBackend, "create_function", wrap_create)
    patcher.wrap(LambdaBackend, "update_function_configuration", wrap_update)
    patcher.wrap(LambdaBackend, "delete_function", wrap_delete)
    patcher.replace(LambdaFunction, "vpc_config", property(vpc_config))


PATCH = Patch(
    name="lambda_enis",
    summary="Lambda's VPC interfaces made, lingering after release, orphaned without the role; real VpcId",
    targets=(
        Target("moto.awslambda.models:LambdaBackend.create_function", ("self", "spec")),
        Target("moto.awslambda.models:LambdaBackend.update_function_configuration",
               ("self", "function_name", "qualifier", "body")),
        Target("moto.awslambda.models:LambdaBackend.delete_function", ("self", "function_name", "qualifier")),
        Target("moto.awslambda.models:LambdaFunction.vpc_config"),
        Target("moto.ec2.models:EC2Backend.create_network_interface"),
        Target("moto.ec2.models:EC2Backend.get_subnet", ("self", "subnet_id")),
    ),
    install=install,
)
