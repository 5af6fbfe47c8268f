"""What a local cloud still holds, read from its moto backends (``GET /_efsctl/inventory``).

An independent check that ``down`` left nothing: every resource a stack can own, by kind, from
the authoritative models rather than through the APIs ``down`` itself uses. What moto makes on
its own (the default VPC with its subnets, groups and route table; the AWS managed policies)
is not counted, nor are deleted endpoints.
"""

from __future__ import annotations

from typing import Any


def inventory(account_id: str, region: str) -> dict[str, list[str]]:
    """``{kind: [ids]}`` of what exists, only the non-empty kinds."""
    from moto.apigatewayv2.models import apigatewayv2_backends
    from moto.awslambda.models import lambda_backends
    from moto.ec2.models import ec2_backends
    from moto.efs.models import efs_backends
    from moto.iam.models import iam_backends
    from moto.logs.models import logs_backends
    from moto.s3.models import s3_backends

    ec2 = ec2_backends[account_id][region]
    default_vpcs = {v.id for v in list(ec2.vpcs.values()) if v.is_default}
    efs = efs_backends[account_id][region]
    found: dict[str, list[str]] = {
        "vpc": [v for v in list(ec2.vpcs) if v not in default_vpcs],
        "subnet": [s.id for by_zone in list(ec2.subnets.values()) for s in list(by_zone.values())
                   if s.vpc_id not in default_vpcs],
        "security-group": [g.id for vpc, groups in list(ec2.groups.items()) if vpc not in default_vpcs
                           for g in list(groups.values()) if g.name != "default"],
        "route-table": [t.id for t in list(ec2.route_tables.values())
                        if t.vpc_id not in default_vpcs and t.main_association_id is None],
        "vpc-endpoint": [e.id for e in list(ec2.vpc_end_points.values()) if e.state not in ("deleted", "deleting")],
        "network-interface": list(ec2.enis),
        "file-system": list(efs.file_systems_by_id),
        "mount-target": list(efs.mount_targets_by_id),
        "access-point": list(efs.access_points),
        "function": [fn.function_name for fn in lambda_backends[account_id][region].list_functions()],
        "role": [r.name for r in _roles(iam_backends[account_id]["aws"])],
        "bucket": list(s3_backends[account_id]["aws"].buckets),
        "log-group": list(logs_backends[account_id][region].groups),
        "http-api": list(apigatewayv2_backends[account_id][region].apis),
    }
    return {kind: sorted(ids) for kind, ids in found.items() if ids}


def _roles(backend: Any) -> list[Any]:
    roles = backend.roles
    return list(roles.values()) if isinstance(roles, dict) else list(roles)
