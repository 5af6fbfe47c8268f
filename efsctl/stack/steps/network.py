"""Steps for the network: VPC, subnets, route table, S3 gateway endpoint, security groups, and
the NFS rule a teardown revokes first."""

from __future__ import annotations

from typing import Any, Callable

from efsctl.aws import ec2
from efsctl.aws.tags import tag_list
from efsctl.stack.drift import Drift, ingress_delta, missing_tags
from efsctl.stack.model import GatewayEndpoint, RouteTable, SecurityGroup, Subnet, Vpc
from efsctl.stack.observed import (Observed, endpoint_observed, filled, route_table_observed, security_group_observed,
                                   subnet_observed, vpc_observed)
from efsctl.stack.steps.base import Step, StepContext, error_code, said

# Lambda's ENIs hold the subnets, the Lambda security group and the VPC until AWS releases them.
ENI_HINT = "AWS releases Lambda's network interfaces asynchronously (up to 20 minutes, sometimes more)."


class VpcStep(Step):
    timeout = 300.0

    def create(self, d: Vpc, ctx: StepContext) -> Observed:
        vpc = ec2.create_vpc(ctx.aws, d.cidr, d.tags)
        # A new VPC has DNS support on and DNS hostnames off; update turns hostnames on.
        return vpc_observed(filled(vpc, State="pending", Tags=tag_list(d.tags), CidrBlock=d.cidr),
                            {"support": True, "hostnames": False})

    def update(self, d: Vpc, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        fields = drift.fields()
        if "dns_support" in fields:
            ec2.set_vpc_dns(ctx.aws, o.id, support=d.dns_support)
        if "dns_hostnames" in fields:
            ec2.set_vpc_dns(ctx.aws, o.id, hostnames=d.dns_hostnames)
        _retag(d, o, ctx)
        return o

    def poll_state(self, d: Vpc, o: Observed, ctx: StepContext) -> str | None:
        vpc = ec2.describe_vpc(ctx.aws, o.id)
        return vpc.get("State") if vpc else None

    def delete(self, ctx: StepContext) -> str:
        return _delete_while_enis_drain(ctx, ec2.delete_vpc, "vpc_id")


class SubnetStep(Step):
    timeout = 300.0

    def create(self, d: Subnet, ctx: StepContext) -> Observed:
        assert d.zone, "the planner blocks subnets without a zone"
        subnet = ctx.visible(lambda: ec2.create_subnet(ctx.aws, d.vpc, d.cidr, d.zone, d.tags), "create")
        return subnet_observed(d.key, filled(subnet, State="pending", Tags=tag_list(d.tags)))

    def update(self, d: Subnet, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        if "map_public_ip" in drift.fields():
            ec2.set_subnet_public_ips(ctx.aws, o.id, d.map_public_ip)
        _retag(d, o, ctx)
        return o

    def poll_state(self, d: Subnet, o: Observed, ctx: StepContext) -> str | None:
        subnet = ec2.describe_subnet(ctx.aws, o.id)
        return subnet.get("State") if subnet else None

    def delete(self, ctx: StepContext) -> str:
        return _delete_while_enis_drain(ctx, ec2.delete_subnet, "subnet_id")


class RouteTableStep(Step):
    def create(self, d: RouteTable, ctx: StepContext) -> Observed:
        table = ctx.visible(lambda: ec2.create_route_table(ctx.aws, d.vpc, d.tags), "create")
        return route_table_observed(filled(table, Tags=tag_list(d.tags), VpcId=d.vpc))

    def update(self, d: RouteTable, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        associations = dict(o.attrs["associations"])
        for subnet_id in d.subnets:
            if subnet_id not in associations:
                associations[subnet_id] = ctx.visible(
                    lambda: ec2.associate_route_table(ctx.aws, o.id, subnet_id), f"associate {subnet_id}")
        o.attrs["associations"] = associations
        _retag(d, o, ctx)
        return o

    def delete(self, ctx: StepContext) -> str:
        """Disassociate the subnets first: EC2 refuses to delete a table still in use."""
        done = []
        for table in ctx.targets:
            for association in sorted(table.attrs.get("associations", {}).values()):
                ec2.disassociate_route_table(ctx.aws, association)
            done.append(ctx.retry(lambda t=table.id: ec2.delete_route_table(ctx.aws, t), what=f"{table.id} deletion",
                                  retryable=dependency_violation(lambda: "routes or associations still in place")))
        return said(done)


class GatewayEndpointStep(Step):
    timeout = 300.0
    failed_states = frozenset({"failed", "deleted", "deleting", "rejected", "expired"})

    def create(self, d: GatewayEndpoint, ctx: StepContext) -> Observed:
        endpoint = ctx.visible(lambda: ec2.create_gateway_endpoint(ctx.aws, d.vpc, d.service_name,
                                                                  list(d.route_tables), d.tags), "create")
        return endpoint_observed(filled(endpoint, State="pending", Tags=tag_list(d.tags), VpcId=d.vpc,
                                        ServiceName=d.service_name))

    def update(self, d: GatewayEndpoint, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        missing = [t for t in d.route_tables if t not in o.attrs["route_tables"]]
        if missing:
            ec2.add_endpoint_route_tables(ctx.aws, o.id, missing)
            o.attrs["route_tables"] = sorted(o.attrs["route_tables"] + missing)
        _retag(d, o, ctx)
        return o

    def poll_state(self, d: GatewayEndpoint, o: Observed, ctx: StepContext) -> str | None:
        endpoint = ec2.describe_vpc_endpoint(ctx.aws, o.id)
        return str(endpoint.get("State", "")) if endpoint else None

    def delete(self, ctx: StepContext) -> str:
        return said([ec2.delete_vpc_endpoints(ctx.aws, [e.id for e in ctx.targets])])


class SecurityGroupStep(Step):
    def create(self, d: SecurityGroup, ctx: StepContext) -> Observed:
        group_id = ctx.visible(lambda: ec2.create_security_group(ctx.aws, d.vpc, d.group_name, d.description,
                                                                d.tags), "create")
        # Ingress comes from the update that follows; a found-by-name group is read back in full.
        arn = f"arn:{ctx.names.partition}:ec2:{ctx.names.region}:{ctx.names.account}:security-group/{group_id}"
        return security_group_observed(d.key, {"GroupId": group_id, "GroupName": d.group_name, "VpcId": d.vpc,
                                               "SecurityGroupArn": arn, "Tags": tag_list(d.tags)},
                                       ec2.security_group_rules(ctx.aws, [group_id]))

    def update(self, d: SecurityGroup, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        missing, extra = ingress_delta(d, o)
        for rule in missing:
            ctx.visible(lambda: ec2.authorize_ingress_from_group(
                ctx.aws, o.id, protocol=rule.protocol, port=rule.port, source_group_id=rule.source_group,
                description=rule.description, tags=d.tags), "allow inbound")
        # Nothing else may reach the group: no 0.0.0.0/0, no rule a person added by hand.
        ec2.revoke_ingress_rules(ctx.aws, o.id, [r["rule_id"] for r in extra])
        _retag(d, o, ctx)
        return o

    def delete(self, ctx: StepContext) -> str:
        return _delete_while_enis_drain(ctx, ec2.delete_security_group, "group_id")


class IngressRuleStep(Step):
    """The EFS group's NFS rule, revoked first in a teardown so the Lambda group it names can go
    without waiting for the EFS group (kind ``sg-rule``; `up` converges it with the group)."""

    def delete(self, ctx: StepContext) -> str:
        group = ctx.targets[0]
        rules = [rule["rule_id"] for rule in group.attrs.get("ingress", [])]
        return said([ec2.revoke_ingress_rules_if_present(ctx.aws, group.id, rules)], "revoked")


def dependency_violation(what_blocks: Callable[[], str]) -> Callable[[BaseException], str | None]:
    """Retry ``DependencyViolation`` (expected while Lambda's ENIs drain), saying what still blocks."""

    def check(exc: BaseException) -> str | None:
        if error_code(exc) != "DependencyViolation":
            return None
        try:
            return f"still in use: {what_blocks()}"
        except Exception:  # noqa: BLE001 - the detail is best effort; the retry is what matters
            return "still in use (DependencyViolation)"

    return check


def count_enis(items: list[dict[str, Any]], noun: str, of: int | None = None) -> str:
    """``2 of 4 Lambda network interfaces left (eni-1, eni-2)``."""
    ids = ", ".join(i.get("NetworkInterfaceId", "?") for i in items[:5]) + (", ..." if len(items) > 5 else "")
    total = max(of or 0, len(items))
    count = f"{len(items)} of {total}" if of is not None else f"{len(items)}"
    plural = "s" if (total if of is not None else len(items)) != 1 else ""
    return f"{count} {noun}{plural} left" + (f" ({ids})" if items else "")


def _delete_while_enis_drain(ctx: StepContext, delete: Callable[[Any, str], bool], where: str) -> str:
    """Delete each target, retrying ``DependencyViolation`` (and saying how many network
    interfaces still block) while Lambda releases its ENIs: security groups, subnets, the VPC."""
    done = []
    for target in ctx.targets:
        blocking = lambda i=target.id: count_enis(ec2.network_interfaces_in(ctx.aws, **{where: i}),  # noqa: E731
                                                  "network interface")
        try:
            done.append(ctx.retry(lambda i=target.id: delete(ctx.aws, i), what=f"{target.id} deletion",
                                  retryable=dependency_violation(blocking)))
        except Exception as exc:
            if error_code(exc) == "DependencyViolation":
                exc.hint = ENI_HINT  # type: ignore[attr-defined]  # an AwsError: the cause is known
            raise
    return said(done)


def _retag(d: Any, o: Observed, ctx: StepContext) -> None:
    missing = missing_tags(d, o)
    if missing:
        ctx.visible(lambda: ec2.tag_resources(ctx.aws, [o.id], missing), "tag")
        o.tags.update(missing)


STEPS = {"vpc": VpcStep(), "subnet": SubnetStep(), "route-table": RouteTableStep(),
         "vpc-endpoint": GatewayEndpointStep(), "security-group": SecurityGroupStep(), "sg-rule": IngressRuleStep()}
