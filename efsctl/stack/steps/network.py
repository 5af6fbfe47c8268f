"""Steps for the network: VPC, subnets, route table, S3 gateway endpoint, security groups."""

from __future__ import annotations

from efsctl.aws import ec2
from efsctl.aws.tags import tag_dict
from efsctl.stack.drift import Drift, ingress_delta, missing_tags
from efsctl.stack.model import GatewayEndpoint, RouteTable, SecurityGroup, Subnet, Vpc
from efsctl.stack.observe import Observed, sg_rule
from efsctl.stack.steps import Step, StepContext


class VpcStep(Step):
    timeout = 300.0

    def create(self, d: Vpc, ctx: StepContext) -> Observed:
        vpc = ec2.create_vpc(ctx.aws, d.cidr, d.tags)
        # A new VPC has DNS support on and DNS hostnames off; update turns hostnames on.
        return Observed(d.key, d.kind, vpc["VpcId"], state=vpc.get("State", "pending"), tags=dict(d.tags),
                        attrs={"cidr": d.cidr, "dns_support": True, "dns_hostnames": False})

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


class SubnetStep(Step):
    timeout = 300.0

    def create(self, d: Subnet, ctx: StepContext) -> Observed:
        assert d.zone, "the planner blocks subnets without a zone"
        subnet = ctx.visible(lambda: ec2.create_subnet(ctx.aws, d.vpc, d.cidr, d.zone, d.tags), "create")
        return Observed(d.key, d.kind, subnet["SubnetId"], arn=subnet.get("SubnetArn"),
                        state=subnet.get("State", "pending"), tags=tag_dict(subnet.get("Tags")) or dict(d.tags),
                        attrs={"vpc": subnet["VpcId"], "cidr": subnet["CidrBlock"],
                               "zone": subnet["AvailabilityZone"],
                               "map_public_ip": bool(subnet.get("MapPublicIpOnLaunch"))})

    def update(self, d: Subnet, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        if "map_public_ip" in drift.fields():
            ec2.set_subnet_public_ips(ctx.aws, o.id, d.map_public_ip)
        _retag(d, o, ctx)
        return o

    def poll_state(self, d: Subnet, o: Observed, ctx: StepContext) -> str | None:
        subnet = ec2.describe_subnet(ctx.aws, o.id)
        return subnet.get("State") if subnet else None


class RouteTableStep(Step):
    def create(self, d: RouteTable, ctx: StepContext) -> Observed:
        table = ctx.visible(lambda: ec2.create_route_table(ctx.aws, d.vpc, d.tags), "create")
        return Observed(d.key, d.kind, table["RouteTableId"], tags=dict(d.tags),
                        attrs={"vpc": d.vpc, "associations": {}})

    def update(self, d: RouteTable, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        associations = dict(o.attrs["associations"])
        for subnet_id in d.subnets:
            if subnet_id not in associations:
                associations[subnet_id] = ctx.visible(
                    lambda: ec2.associate_route_table(ctx.aws, o.id, subnet_id), f"associate {subnet_id}")
        o.attrs["associations"] = associations
        _retag(d, o, ctx)
        return o


class GatewayEndpointStep(Step):
    timeout = 300.0
    failed_states = frozenset({"failed", "deleted", "deleting", "rejected", "expired"})

    def create(self, d: GatewayEndpoint, ctx: StepContext) -> Observed:
        endpoint = ctx.visible(lambda: ec2.create_gateway_endpoint(ctx.aws, d.vpc, d.service_name,
                                                                  list(d.route_tables), d.tags), "create")
        return Observed(d.key, d.kind, endpoint["VpcEndpointId"], state=str(endpoint.get("State", "pending")),
                        tags=dict(d.tags), attrs={"vpc": d.vpc, "service_name": d.service_name,
                                                  "route_tables": sorted(endpoint.get("RouteTableIds", []))})

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


class SecurityGroupStep(Step):
    def create(self, d: SecurityGroup, ctx: StepContext) -> Observed:
        group_id = ctx.visible(lambda: ec2.create_security_group(ctx.aws, d.vpc, d.group_name, d.description,
                                                                d.tags), "create")
        # Ingress comes from the update that follows; a found-by-name group is read back in full.
        rules = ec2.security_group_rules(ctx.aws, [group_id])
        arn = f"arn:{ctx.names.partition}:ec2:{ctx.names.region}:{ctx.names.account}:security-group/{group_id}"
        return Observed(d.key, d.kind, group_id, arn=arn, name=d.group_name, tags=dict(d.tags),
                        attrs={"vpc": d.vpc, "group_name": d.group_name,
                               "ingress": [sg_rule(r) for r in rules if not r.get("IsEgress")],
                               "egress": [sg_rule(r) for r in rules if r.get("IsEgress")]})

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


def _retag(d, o: Observed, ctx: StepContext) -> None:
    missing = missing_tags(d, o)
    if missing:
        ctx.visible(lambda: ec2.tag_resources(ctx.aws, [o.id], missing), "tag")
        o.tags.update(missing)


STEPS = {"vpc": VpcStep(), "subnet": SubnetStep(), "route-table": RouteTableStep(),
         "vpc-endpoint": GatewayEndpointStep(), "security-group": SecurityGroupStep()}
