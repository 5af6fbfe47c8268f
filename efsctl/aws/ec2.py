"""EC2 networking: VPC, subnets, route table, S3 gateway endpoint, security groups, ENIs.

Creates carry their tags (``TagSpecifications``) so a resource never exists untagged, and
pass a ``ClientToken`` where EC2 offers one so a retried request cannot create a twin.
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping

from efsctl.aws.errors import attempt, aws_call, is_code
from efsctl.aws.paginate import paginate
from efsctl.aws.session import AwsContext
from efsctl.aws.tags import tag_filters, tag_list, tag_specs
from efsctl.errors import AwsError

LAMBDA_ENI_DESCRIPTION = "AWS Lambda VPC ENI*"
GONE_ENDPOINT_STATES = {"deleted", "deleting", "rejected", "failed", "expired"}
USABLE_ZONE_OPT_IN = {None, "opt-in-not-required", "opted-in"}


def _ec2(aws: AwsContext) -> Any:
    return aws.client("ec2")


def _token() -> str:
    # Idempotent across botocore's own retries of one request; a fresh token per create means a
    # token can never resolve to a resource deleted since (tags make re-runs idempotent).
    return f"efsctl-{uuid.uuid4().hex}"


def _filters(tags: Mapping[str, str] | None = None, **named: str | list[str] | None) -> list[dict[str, Any]]:
    filters = tag_filters(tags or {})
    for name, value in named.items():
        if value:
            filters.append({"Name": name.replace("_", "-"), "Values": value if isinstance(value, list) else [value]})
    return filters


# --- availability zones --------------------------------------------------------------------

@aws_call
def usable_zones(aws: AwsContext) -> list[str]:
    """Names of the region's ``available`` AZs that need no opt-in (or are opted in), sorted."""
    zones = _ec2(aws).describe_availability_zones(
        Filters=[{"Name": "zone-type", "Values": ["availability-zone"]}])["AvailabilityZones"]
    return sorted(z["ZoneName"] for z in zones
                  if z.get("State") == "available" and z.get("OptInStatus") in USABLE_ZONE_OPT_IN)


# --- VPC -----------------------------------------------------------------------------------

@aws_call
def find_vpcs(aws: AwsContext, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    return list(paginate(_ec2(aws), "describe_vpcs", "Vpcs", Filters=_filters(tags)))


@aws_call
def describe_vpc(aws: AwsContext, vpc_id: str) -> dict[str, Any] | None:
    vpcs = list(paginate(_ec2(aws), "describe_vpcs", "Vpcs", Filters=_filters(vpc_id=vpc_id)))
    return vpcs[0] if vpcs else None


@aws_call
def create_vpc(aws: AwsContext, cidr: str, tags: Mapping[str, str]) -> dict[str, Any]:
    return _ec2(aws).create_vpc(CidrBlock=cidr, TagSpecifications=tag_specs("vpc", tags))["Vpc"]


@aws_call
def vpc_dns(aws: AwsContext, vpc_id: str) -> dict[str, bool]:
    """``{"support": bool, "hostnames": bool}``."""
    ec2 = _ec2(aws)
    support = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsSupport")
    hostnames = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")
    return {"support": bool(support["EnableDnsSupport"]["Value"]),
            "hostnames": bool(hostnames["EnableDnsHostnames"]["Value"])}


@aws_call
def set_vpc_dns(aws: AwsContext, vpc_id: str, *, support: bool | None = None, hostnames: bool | None = None) -> None:
    # ModifyVpcAttribute takes exactly one attribute per call.
    if support is not None:
        _ec2(aws).modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": support})
    if hostnames is not None:
        _ec2(aws).modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": hostnames})


# --- subnets -------------------------------------------------------------------------------

@aws_call
def find_subnets(aws: AwsContext, tags: Mapping[str, str] | None = None, *, vpc_id: str | None = None,
                 cidr: str | None = None) -> list[dict[str, Any]]:
    return list(paginate(_ec2(aws), "describe_subnets", "Subnets",
                         Filters=_filters(tags, vpc_id=vpc_id, cidr_block=cidr)))


@aws_call
def describe_subnet(aws: AwsContext, subnet_id: str) -> dict[str, Any] | None:
    subnets = list(paginate(_ec2(aws), "describe_subnets", "Subnets", Filters=_filters(subnet_id=subnet_id)))
    return subnets[0] if subnets else None


@aws_call
def create_subnet(aws: AwsContext, vpc_id: str, cidr: str, zone: str, tags: Mapping[str, str]) -> dict[str, Any]:
    try:
        return _ec2(aws).create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone,
                                       TagSpecifications=tag_specs("subnet", tags))["Subnet"]
    except Exception as exc:
        if is_code(exc, "InvalidSubnet.Conflict"):
            existing = find_subnets(aws, vpc_id=vpc_id, cidr=cidr)
            if existing:
                return existing[0]
        raise


@aws_call
def set_subnet_public_ips(aws: AwsContext, subnet_id: str, enabled: bool) -> None:
    _ec2(aws).modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": enabled})


# --- route table ---------------------------------------------------------------------------

@aws_call
def find_route_tables(aws: AwsContext, tags: Mapping[str, str] | None = None, *, vpc_id: str | None = None,
                      subnet_id: str | None = None) -> list[dict[str, Any]]:
    return list(paginate(_ec2(aws), "describe_route_tables", "RouteTables",
                         Filters=_filters(tags, vpc_id=vpc_id, **{"association.subnet-id": subnet_id})))


@aws_call
def create_route_table(aws: AwsContext, vpc_id: str, tags: Mapping[str, str]) -> dict[str, Any]:
    return _ec2(aws).create_route_table(VpcId=vpc_id, ClientToken=_token(),
                                        TagSpecifications=tag_specs("route-table", tags))["RouteTable"]


@aws_call
def associate_route_table(aws: AwsContext, route_table_id: str, subnet_id: str) -> str:
    """Make ``route_table_id`` the subnet's route table; returns the association id.

    A subnet has at most one explicit association: if another table holds it, move it.
    """
    ec2 = _ec2(aws)
    try:
        return ec2.associate_route_table(RouteTableId=route_table_id, SubnetId=subnet_id)["AssociationId"]
    except Exception as exc:
        if not is_code(exc, "Resource.AlreadyAssociated"):
            raise
    for table in find_route_tables(aws, subnet_id=subnet_id):
        for assoc in table.get("Associations", []):
            if assoc.get("SubnetId") == subnet_id:
                if table["RouteTableId"] == route_table_id:
                    return assoc["RouteTableAssociationId"]
                return ec2.replace_route_table_association(
                    AssociationId=assoc["RouteTableAssociationId"], RouteTableId=route_table_id)["NewAssociationId"]
    raise AwsError(f"Subnet {subnet_id} is associated with a route table that EC2 does not list; run again.")


# --- S3 gateway endpoint -------------------------------------------------------------------

@aws_call
def find_vpc_endpoints(aws: AwsContext, vpc_id: str, service_name: str | None = None) -> list[dict[str, Any]]:
    """Endpoints of the VPC that still exist (moto and AWS list deleted ones for a while)."""
    endpoints = paginate(_ec2(aws), "describe_vpc_endpoints", "VpcEndpoints",
                         Filters=_filters(vpc_id=vpc_id, service_name=service_name))
    return [e for e in endpoints if str(e.get("State", "")).lower() not in GONE_ENDPOINT_STATES]


@aws_call
def describe_vpc_endpoint(aws: AwsContext, endpoint_id: str) -> dict[str, Any] | None:
    found = list(paginate(_ec2(aws), "describe_vpc_endpoints", "VpcEndpoints",
                          Filters=_filters(vpc_endpoint_id=endpoint_id)))
    return found[0] if found else None


@aws_call
def create_gateway_endpoint(aws: AwsContext, vpc_id: str, service_name: str, route_table_ids: list[str],
                            tags: Mapping[str, str]) -> dict[str, Any]:
    return _ec2(aws).create_vpc_endpoint(
        VpcEndpointType="Gateway", VpcId=vpc_id, ServiceName=service_name, RouteTableIds=route_table_ids,
        ClientToken=_token(), TagSpecifications=tag_specs("vpc-endpoint", tags))["VpcEndpoint"]


@aws_call
def add_endpoint_route_tables(aws: AwsContext, endpoint_id: str, route_table_ids: list[str]) -> None:
    _ec2(aws).modify_vpc_endpoint(VpcEndpointId=endpoint_id, AddRouteTableIds=route_table_ids)


# --- security groups -----------------------------------------------------------------------

@aws_call
def find_security_groups(aws: AwsContext, tags: Mapping[str, str] | None = None, *, vpc_id: str | None = None,
                         name: str | None = None) -> list[dict[str, Any]]:
    return list(paginate(_ec2(aws), "describe_security_groups", "SecurityGroups",
                         Filters=_filters(tags, vpc_id=vpc_id, group_name=name)))


@aws_call
def create_security_group(aws: AwsContext, vpc_id: str, name: str, description: str,
                          tags: Mapping[str, str]) -> str:
    """The group id. The name is unique per VPC, so a repeated create finds the first one."""
    try:
        return _ec2(aws).create_security_group(
            VpcId=vpc_id, GroupName=name, Description=description,
            TagSpecifications=tag_specs("security-group", tags))["GroupId"]
    except Exception as exc:
        if is_code(exc, "InvalidGroup.Duplicate"):
            existing = find_security_groups(aws, vpc_id=vpc_id, name=name)
            if existing:
                return existing[0]["GroupId"]
        raise


@aws_call
def security_group_rules(aws: AwsContext, group_ids: list[str]) -> list[dict[str, Any]]:
    if not group_ids:
        return []
    return list(paginate(_ec2(aws), "describe_security_group_rules", "SecurityGroupRules",
                         Filters=_filters(group_id=group_ids)))


@aws_call
def authorize_ingress_from_group(aws: AwsContext, group_id: str, *, protocol: str, port: int, source_group_id: str,
                                 description: str, tags: Mapping[str, str]) -> None:
    try:
        _ec2(aws).authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=[{"IpProtocol": protocol, "FromPort": port, "ToPort": port,
                            "UserIdGroupPairs": [{"GroupId": source_group_id, "Description": description}]}],
            TagSpecifications=tag_specs("security-group-rule", tags))
    except Exception as exc:
        if not is_code(exc, "InvalidPermission.Duplicate"):
            raise


@aws_call
def revoke_ingress_rules(aws: AwsContext, group_id: str, rule_ids: list[str]) -> None:
    if rule_ids:
        _ec2(aws).revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=rule_ids)


# --- tags and ENIs -------------------------------------------------------------------------

@aws_call
def tag_resources(aws: AwsContext, resource_ids: list[str], tags: Mapping[str, str]) -> None:
    if resource_ids and tags:
        _ec2(aws).create_tags(Resources=resource_ids, Tags=tag_list(tags))


@aws_call
def lambda_enis(aws: AwsContext, vpc_id: str) -> list[dict[str, Any]]:
    """Lambda's hyperplane ENIs in the VPC (released asynchronously after a function leaves it)."""
    return list(paginate(_ec2(aws), "describe_network_interfaces", "NetworkInterfaces",
                         Filters=_filters(vpc_id=vpc_id, description=LAMBDA_ENI_DESCRIPTION)))


# --- teardown (`efsctl down`) ----------------------------------------------------------------
# Every delete treats "already gone" as done, so a re-run after a crash never trips over
# what the previous run removed.

GONE_CODES = ("InvalidVpcID.NotFound", "InvalidSubnetID.NotFound", "InvalidRouteTableID.NotFound",
              "InvalidAssociationID.NotFound", "InvalidGroup.NotFound", "InvalidSecurityGroupRuleId.NotFound",
              "InvalidPermission.NotFound", "InvalidVpcEndpointId.NotFound", "InvalidNetworkInterfaceID.NotFound")


def _gone(exc: BaseException) -> bool:
    return is_code(exc, *GONE_CODES)


@aws_call
def stack_lambda_enis(aws: AwsContext, *, vpc_ids: list[str] = (), group_ids: list[str] = (),
                      subnet_ids: list[str] = ()) -> list[dict[str, Any]]:
    """Lambda's VPC ENIs (``AWS Lambda VPC ENI*``) in any of these VPCs, security groups or subnets.

    Looked up three ways because a half-deleted stack may have lost its VPC record, its
    functions or its subnets while Lambda still holds interfaces in what is left.
    """
    found: dict[str, dict[str, Any]] = {}
    for name, values in (("vpc-id", vpc_ids), ("group-id", group_ids), ("subnet-id", subnet_ids)):
        if not values:
            continue
        filters = [{"Name": "description", "Values": [LAMBDA_ENI_DESCRIPTION]},
                   {"Name": name, "Values": sorted(set(values))}]
        for eni in paginate(_ec2(aws), "describe_network_interfaces", "NetworkInterfaces", Filters=filters):
            found.setdefault(eni["NetworkInterfaceId"], eni)
    return [found[k] for k in sorted(found)]


@aws_call
def network_interfaces_in(aws: AwsContext, *, group_id: str | None = None, subnet_id: str | None = None,
                          vpc_id: str | None = None) -> list[dict[str, Any]]:
    """Every ENI still using the security group, subnet or VPC (what blocks its deletion)."""
    return list(paginate(_ec2(aws), "describe_network_interfaces", "NetworkInterfaces",
                         Filters=_filters(group_id=group_id, subnet_id=subnet_id, vpc_id=vpc_id)))


@aws_call
def delete_network_interface(aws: AwsContext, eni_id: str) -> bool:
    return attempt(lambda: _ec2(aws).delete_network_interface(NetworkInterfaceId=eni_id), *GONE_CODES)


@aws_call
def revoke_ingress_rules_if_present(aws: AwsContext, group_id: str, rule_ids: list[str]) -> bool:
    if not rule_ids:
        return False
    return attempt(lambda: _ec2(aws).revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=rule_ids),
                   *GONE_CODES)


@aws_call
def delete_security_group(aws: AwsContext, group_id: str) -> bool:
    return attempt(lambda: _ec2(aws).delete_security_group(GroupId=group_id), *GONE_CODES)


@aws_call
def delete_vpc_endpoints(aws: AwsContext, endpoint_ids: list[str]) -> bool:
    if not endpoint_ids:
        return False
    try:
        response = _ec2(aws).delete_vpc_endpoints(VpcEndpointIds=endpoint_ids)
    except Exception as exc:
        if _gone(exc):
            return False
        raise
    failed = [u for u in response.get("Unsuccessful", [])
              if (u.get("Error") or {}).get("Code") not in GONE_CODES]
    if failed:
        error = failed[0].get("Error") or {}
        raise AwsError(f"AWS DeleteVpcEndpoints failed for {failed[0].get('ResourceId')}: "
                       f"{error.get('Code')}: {error.get('Message')}.", code=error.get("Code", ""),
                       operation="DeleteVpcEndpoints")
    return True


@aws_call
def disassociate_route_table(aws: AwsContext, association_id: str) -> bool:
    return attempt(lambda: _ec2(aws).disassociate_route_table(AssociationId=association_id), *GONE_CODES)


@aws_call
def delete_route_table(aws: AwsContext, route_table_id: str) -> bool:
    return attempt(lambda: _ec2(aws).delete_route_table(RouteTableId=route_table_id), *GONE_CODES)


@aws_call
def delete_subnet(aws: AwsContext, subnet_id: str) -> bool:
    return attempt(lambda: _ec2(aws).delete_subnet(SubnetId=subnet_id), *GONE_CODES)


@aws_call
def delete_vpc(aws: AwsContext, vpc_id: str) -> bool:
    return attempt(lambda: _ec2(aws).delete_vpc(VpcId=vpc_id), *GONE_CODES)
