"""EC2 dependencies AWS enforces and moto does not, and gateway endpoints that are ``pending``.

AWS refuses to delete what is still in use, with ``DependencyViolation``:

- a security group attached to a network interface, or referenced by another group's rule:
  "resource sg-... has a dependent object";
- a subnet that holds network interfaces (Lambda's, a mount target's): "The subnet 'subnet-...'
  has dependencies and cannot be deleted.";
- a VPC that still has security groups (other than its default) or endpoints (moto checks
  only subnets and route tables).

A requester-managed interface in use (Lambda's, a mount target's) cannot be deleted by its
owner: ``InvalidParameterValue`` "Network interface 'eni-...' is currently in use.". The owning
service deletes it (internal calls are not refused; only the DeleteNetworkInterface API is).

A new gateway endpoint is ``pending`` for the profile's duration before it is ``available``, and
DescribeVpcEndpoints accepts AWS's ``vpc-endpoint-id`` filter (moto raises on it).
"""

from __future__ import annotations

import itertools
from typing import Any

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target
from efsctl.local.fidelity.timeline import timeline

BORN = "_efsctl_born"
STATE = "_efsctl_state"


def referencing_groups(backend: Any, group_id: str) -> list[str]:
    """Ids of the other security groups whose rules name ``group_id``."""
    found = []
    for groups in list(backend.groups.values()):
        for group in list(groups.values()):
            if group.id == group_id:
                continue
            for rule in itertools.chain(group.ingress_rules, group.egress_rules):
                named = [(getattr(rule, "source_group", None) or {}).get("GroupId")]
                named += [g.get("GroupId") for g in getattr(rule, "source_groups", None) or []]
                if group_id in named:
                    found.append(group.id)
                    break
    return found


def interfaces_with_group(backend: Any, group_id: str) -> list[str]:
    return [eni.id for eni in list(backend.enis.values()) if any(g.id == group_id for g in eni._group_set)]


def interfaces_in_subnet(backend: Any, subnet_id: str) -> list[str]:
    return [eni.id for eni in list(backend.enis.values()) if eni.subnet is not None and eni.subnet.id == subnet_id]


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.ec2.exceptions import DependencyViolationError, EC2ClientError
    from moto.ec2.models import EC2Backend
    from moto.ec2.models.vpcs import VPCEndPoint
    from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces

    line = timeline(ctx)

    def wrap_delete_security_group(original):
        def delete_security_group(self: Any, name: str | None = None, group_id: str | None = None) -> None:
            group = self.get_security_group_by_name_or_id(group_id or name) if (group_id or name) else None
            if group is not None and (interfaces_with_group(self, group.id) or referencing_groups(self, group.id)):
                raise DependencyViolationError(f"resource {group.id} has a dependent object")
            return original(self, name, group_id)
        return delete_security_group

    def wrap_delete_subnet(original):
        def delete_subnet(self: Any, subnet_id: str) -> Any:
            if interfaces_in_subnet(self, subnet_id):
                raise DependencyViolationError(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
            return original(self, subnet_id)
        return delete_subnet

    def wrap_delete_vpc(original):
        def delete_vpc(self: Any, vpc_id: str) -> Any:
            groups = [g for g in (self.groups.get(vpc_id) or {}).values() if g.name != "default"]
            endpoints = [e for e in self.vpc_end_points.values()
                         if e.vpc_id == vpc_id and e.state not in ("deleted", "deleting")]
            if groups or endpoints:
                raise DependencyViolationError(f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")
            return original(self, vpc_id)
        return delete_vpc

    def wrap_delete_network_interface(original):
        def delete_network_interface(self: Any) -> Any:
            eni = self.ec2_backend.enis.get(self._get_param("NetworkInterfaceId"))
            if eni is not None and eni.requester_managed and eni.status == "in-use":
                raise EC2ClientError("InvalidParameterValue", f"Network interface '{eni.id}' is currently in use.")
            return original(self)
        return delete_network_interface

    def wrap_endpoint_init(original):
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            setattr(self, BORN, line.now())
        return __init__

    def get_state(self: Any) -> str:
        state = self.__dict__.get(STATE, "available")
        if state == "available" and not line.done(self.__dict__.get(BORN), "endpoint_pending"):
            return "pending"
        return state

    def set_state(self: Any, value: str) -> None:
        self.__dict__[STATE] = value

    def wrap_endpoint_filter(original):
        def get_filter_value(self: Any, filter_name: str, method_name: str | None = None) -> Any:
            if filter_name == "vpc-endpoint-id":
                return self.id
            return original(self, filter_name, method_name)
        return get_filter_value

    patcher.wrap(EC2Backend, "delete_security_group", wrap_delete_security_group)
    patcher.wrap(EC2Backend, "delete_subnet", wrap_delete_subnet)
    patcher.wrap(EC2Backend, "delete_vpc", wrap_delete_vpc)
    patcher.wrap(ElasticNetworkInterfaces, "delete_network_interface", wrap_delete_network_interface)
    patcher.wrap(VPCEndPoint, "__init__", wrap_endpoint_init)
    patcher.replace(VPCEndPoint, "state", property(get_state, set_state))
    patcher.wrap(VPCEndPoint, "get_filter_value", wrap_endpoint_filter)


PATCH = Patch(
    name="vpc_dependencies",
    summary="DependencyViolation for groups, subnets and VPCs in use; in-use interfaces kept; endpoints pending",
    targets=(
        Target("moto.ec2.models:EC2Backend.delete_security_group", ("self", "name", "group_id")),
        Target("moto.ec2.models:EC2Backend.delete_subnet", ("self", "subnet_id")),
        Target("moto.ec2.models:EC2Backend.delete_vpc", ("self", "vpc_id")),
        Target("moto.ec2.models:EC2Backend.get_security_group_by_name_or_id", ("self", "group_name_or_id", "vpc_id")),
        Target("moto.ec2.models.vpcs:VPCEndPoint.__init__"),
        Target("moto.ec2.models.vpcs:VPCEndPoint.get_filter_value", ("self", "filter_name", "method_name")),
        Target("moto.ec2.responses.elastic_network_interfaces:ElasticNetworkInterfaces.delete_network_interface",
               ("self",)),
        Target("moto.ec2.exceptions:DependencyViolationError", ("message",)),
    ),
    install=install,
)
