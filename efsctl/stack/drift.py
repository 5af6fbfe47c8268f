"""Compare one desired resource (refs resolved) with what AWS reports. Pure: no remote calls.

Each kind has one function in :data:`DIFFS` returning a :class:`Drift`: the changes ``up``
will make, warnings about differences it cannot make in place (a VPC's CIDR), and blockers
that stop ``up`` altogether (a bucket name owned by another account). The planner uses these
to preview; the executor calls them again with the real ids just before it changes anything,
so the two can never disagree about what "in sync" means.

A field AWS omits when it is empty (a function's FileSystemConfigs, VpcConfig's lists,
Environment) reads as empty, so its removal is drift; only a field the endpoint cannot report at
all is None ("not reported") and never drift: moto's FileSystemConfigs, see
:func:`efsctl.stack.observe.function_observed`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from efsctl.stack.model import (TAG_REGION, AccessPoint, ApiIntegration, ApiRoutes, ApiStage, Bucket,
                                BucketNotification, FileSystem, Function, GatewayEndpoint, HttpApi, Ingress,
                                LogGroup, MountTarget, Permission, Resource, Role, RouteTable, SecurityGroup, Subnet,
                                Unknown, Vpc, has_unknown)
from efsctl.stack.observed import Observed


@dataclass(frozen=True)
class Change:
    field: str
    reason: str


@dataclass
class Drift:
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)

    def change(self, field_name: str, reason: str) -> None:
        self.changes.append(Change(field_name, reason))

    def fields(self) -> set[str]:
        return {c.field for c in self.changes}

    def __bool__(self) -> bool:
        return bool(self.changes)


def show(value: Any) -> str:
    if isinstance(value, Unknown):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(show(v) for v in value) or "none"
    return str(value)


def differs(desired: Any, observed: Any) -> bool:
    return has_unknown(desired) or desired != observed


def canonical(value: Any) -> Any:
    """A policy document in a form where equal meaning compares equal (order, 1-item lists)."""
    if isinstance(value, Mapping):
        return {k: canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        items = [canonical(v) for v in value]
        if len(items) == 1:
            return items[0]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=str))
    return value


def _statements(document: Mapping[str, Any] | None) -> list[Any]:
    statements = (document or {}).get("Statement", [])
    return [canonical(s) for s in (statements if isinstance(statements, list) else [statements])]


def missing_tags(desired: Resource, observed: Observed) -> dict[str, str]:
    return {k: v for k, v in desired.tags.items() if observed.tags.get(k) != v}


def _tags(desired: Resource, observed: Observed, drift: Drift) -> None:
    if desired.taggable:
        missing = missing_tags(desired, observed)
        if missing:
            drift.change("tags", f"tags to add: {', '.join(sorted(missing))}")


def _compare(drift: Drift, name: str, desired: Any, observed: Any, label: str | None = None) -> None:
    if differs(desired, observed):
        drift.change(name, f"{label or name}: {show(observed)} -> {show(desired)}")


# --- network -------------------------------------------------------------------------------

def diff_vpc(d: Vpc, o: Observed, drift: Drift) -> None:
    if d.cidr != o.attrs["cidr"]:
        drift.warnings.append(f"the VPC uses {o.attrs['cidr']}, not {d.cidr}; a VPC's CIDR cannot change "
                              "(`efsctl down` then `up` to move it)")
    _compare(drift, "dns_support", d.dns_support, o.attrs["dns_support"], "DNS support")
    _compare(drift, "dns_hostnames", d.dns_hostnames, o.attrs["dns_hostnames"], "DNS hostnames")


def diff_subnet(d: Subnet, o: Observed, drift: Drift) -> None:
    if differs(d.vpc, o.attrs["vpc"]):
        drift.warnings.append(f"subnet {o.id} is not in the stack's VPC")
    if d.cidr != o.attrs["cidr"]:
        drift.warnings.append(f"subnet {o.id} uses {o.attrs['cidr']}, not {d.cidr} (subnets cannot be resized)")
    _compare(drift, "map_public_ip", d.map_public_ip, o.attrs["map_public_ip"], "public IPs on launch")


def diff_route_table(d: RouteTable, o: Observed, drift: Drift) -> None:
    missing = [s for s in d.subnets if isinstance(s, Unknown) or s not in o.attrs["associations"]]
    if missing:
        drift.change("associations", f"associate {show(missing)}")


def diff_endpoint(d: GatewayEndpoint, o: Observed, drift: Drift) -> None:
    missing = [t for t in d.route_tables if isinstance(t, Unknown) or t not in o.attrs["route_tables"]]
    if missing:
        drift.change("route_tables", f"route through {show(missing)}")


def _rule_matches(rule: Ingress, observed: Mapping[str, Any]) -> bool:
    return (observed["protocol"] == rule.protocol and observed["from_port"] == rule.port
            and observed["to_port"] == rule.port and observed["source_group"] == rule.source_group
            and not isinstance(rule.source_group, Unknown))


def ingress_delta(d: SecurityGroup, o: Observed) -> tuple[list[Ingress], list[dict[str, Any]]]:
    """(desired rules missing, observed inbound rules that should not be there)."""
    observed = o.attrs["ingress"]
    missing = [rule for rule in d.ingress if not any(_rule_matches(rule, r) for r in observed)]
    extra = [r for r in observed if not any(_rule_matches(rule, r) for rule in d.ingress)]
    return missing, extra


def _describe_rule(rule: Mapping[str, Any]) -> str:
    source = rule["source_group"] or rule["cidr_v4"] or rule["cidr_v6"] or rule["prefix_list"] or "?"
    ports = "all" if rule["from_port"] in (None, -1) else (
        str(rule["from_port"]) if rule["from_port"] == rule["to_port"] else f"{rule['from_port']}-{rule['to_port']}")
    return f"{rule['protocol']}/{ports} from {source}"


def diff_security_group(d: SecurityGroup, o: Observed, drift: Drift) -> None:
    missing, extra = ingress_delta(d, o)
    for rule in missing:
        drift.change("ingress", f"allow inbound {rule.protocol}/{rule.port} from {show(rule.source_group)}")
    for rule in extra:
        drift.change("ingress", f"revoke inbound {_describe_rule(rule)}")


# --- EFS -----------------------------------------------------------------------------------

def diff_file_system(d: FileSystem, o: Observed, drift: Drift) -> None:
    if d.encrypted and not o.attrs["encrypted"]:
        drift.warnings.append("the file system is not encrypted at rest and cannot be changed in place "
                              "(`efsctl down` then `up` to replace it)")
    if o.attrs.get("performance_mode") and d.performance_mode != o.attrs["performance_mode"]:
        drift.warnings.append(f"the file system's performance mode is {o.attrs['performance_mode']}")
    _compare(drift, "throughput_mode", d.throughput_mode, o.attrs.get("throughput_mode"), "throughput mode")


def diff_mount_target(d: MountTarget, o: Observed, drift: Drift) -> None:
    _compare(drift, "security_groups", sorted(d.security_groups, key=str), o.attrs["security_groups"],
             "security groups")


def diff_access_point(d: AccessPoint, o: Observed, drift: Drift) -> None:
    user = o.attrs["posix_user"]
    root = o.attrs["root_directory"]
    if (user.get("Uid"), user.get("Gid")) != (d.uid, d.gid) or root.get("Path") != d.path:
        drift.warnings.append(f"access point {o.id} has user {user.get('Uid')}:{user.get('Gid')} and root "
                              f"{root.get('Path')}, not {d.uid}:{d.gid} {d.path} (access points cannot change)")


# --- S3 ------------------------------------------------------------------------------------

def diff_bucket(d: Bucket, o: Observed, drift: Drift) -> None:
    if o.state == "foreign":
        drift.blockers.append(f"The bucket name {d.name} belongs to another AWS account.")
        return
    block = o.attrs["public_access_block"] or {}
    if any(block.get(k) is not True for k in d.public_access_block):
        drift.change("public_access_block", "block all public access")
    if not o.attrs["encryption"]:
        # Any default encryption is fine (a stricter KMS key stays); none is not.
        drift.change("encryption", f"default encryption: none -> {d.encryption}")
    if not all(s in _statements(o.attrs["policy"]) for s in _statements(d.policy)):
        drift.change("policy", "bucket policy: deny requests without TLS")


# --- IAM, logs, Lambda ------------------------------------------------------------------------

def diff_role(d: Role, o: Observed, drift: Drift) -> None:
    owner = o.tags.get(TAG_REGION)
    if owner and owner != d.tags.get(TAG_REGION):
        drift.blockers.append(f"The IAM role {d.name} belongs to the same stack name in {owner}; "
                              "IAM is global, so each region's stack needs its own name (--stack).")
    if canonical(d.trust) != canonical(o.attrs["trust"]):
        drift.change("trust", "trust policy: lambda.amazonaws.com only")
    if has_unknown(d.policy) or canonical(d.policy) != canonical(o.attrs["policy"]):
        drift.change("policy", f"inline policy {d.policy_name}: least privilege")
    extra = [p for p in o.attrs.get("inline_policies", []) if p != d.policy_name] + o.attrs.get("attached_policies", [])
    if extra:
        drift.warnings.append(f"role {d.name} has other policies too: {', '.join(extra)}")


def diff_log_group(d: LogGroup, o: Observed, drift: Drift) -> None:
    _compare(drift, "retention_days", d.retention_days, o.attrs["retention_days"], "retention days")


FUNCTION_CONFIG_FIELDS = ("role", "handler", "runtime", "memory", "timeout", "environment", "subnets",
                          "security_groups", "file_systems")


def function_file_systems(d: Function) -> list[dict[str, Any]]:
    return [{"arn": d.access_point, "mount_path": d.mount_path}]


def diff_function(d: Function, o: Observed, drift: Drift) -> None:
    a = o.attrs
    if d.code_sha256 != a["code_sha256"]:
        drift.change("code", f"code {str(a['code_sha256'])[:12]}… -> {d.code_sha256[:12]}…")
    _compare(drift, "architecture", d.architecture, a["architecture"])
    for name in ("role", "handler", "runtime", "memory", "timeout"):
        _compare(drift, name, getattr(d, name), a[name])
    if differs(dict(d.environment), a["environment"]):
        drift.change("environment", "environment variables")
    _compare(drift, "subnets", sorted(d.subnets, key=str), a["subnets"])
    _compare(drift, "security_groups", sorted(d.security_groups, key=str), a["security_groups"], "security groups")
    if a["file_systems"] is not None and differs(function_file_systems(d), a["file_systems"]):
        # None: the endpoint does not report file systems (moto); [] is a removed mount.
        drift.change("file_systems", f"mount {show(d.access_point)} at {d.mount_path}")
    if o.state == "Failed" or a.get("last_update_status") == "Failed":
        # Re-applying the configuration makes Lambda try again (say, once a role is fixed).
        drift.change("state", f"Failed ({a.get('state_reason') or 'no reason given'}): apply the configuration again")


def diff_permission(d: Permission, o: Observed, drift: Drift) -> None:
    for name in ("principal", "source_arn", "source_account"):
        _compare(drift, name, getattr(d, name), o.attrs[name], name.replace("_", " "))


def diff_notification(d: BucketNotification, o: Observed, drift: Drift) -> None:
    _compare(drift, "function", d.function, o.attrs["function"], "target")
    _compare(drift, "events", sorted(d.events), o.attrs["events"])
    _compare(drift, "prefix", d.prefix, o.attrs["prefix"])


# --- the API -------------------------------------------------------------------------------

def diff_api(d: HttpApi, o: Observed, drift: Drift) -> None:
    if o.attrs.get("protocol") not in (None, "HTTP"):
        drift.blockers.append(f"API {o.id} tagged for this stack is not an HTTP API.")


def diff_integration(d: ApiIntegration, o: Observed, drift: Drift) -> None:
    _compare(drift, "type", "AWS_PROXY", o.attrs["type"], "integration type")
    _compare(drift, "function", d.function, o.attrs["function"], "target")
    _compare(drift, "payload_version", d.payload_version, o.attrs["payload_version"], "payload version")
    _compare(drift, "timeout_ms", d.timeout_ms, o.attrs["timeout_ms"], "timeout (ms)")


def route_delta(d: ApiRoutes, o: Observed | None) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]:
    """(route keys to create, (key, id) to update, (key, id) to delete)."""
    observed = o.attrs["routes"] if o else {}
    create = [k for k in d.route_keys if k not in observed]
    update = [(k, observed[k]["id"]) for k in d.route_keys if k in observed and (
        differs(d.target, observed[k]["target"]) or observed[k]["authorization"] != d.authorization)]
    delete = [(k, r["id"]) for k, r in observed.items() if k not in d.route_keys]
    return create, update, delete


def diff_routes(d: ApiRoutes, o: Observed, drift: Drift) -> None:
    create, update, delete = route_delta(d, o)
    for key in create:
        drift.change("routes", f"add route {key}")
    for key, _ in update:
        drift.change("routes", f"route {key}: {d.authorization} auth to the consumer")
    for key, _ in delete:
        drift.change("routes", f"remove unexpected route {key}")


def diff_stage(d: ApiStage, o: Observed, drift: Drift) -> None:
    _compare(drift, "auto_deploy", d.auto_deploy, o.attrs["auto_deploy"], "auto-deploy")


DIFFS: dict[str, Callable[[Any, Observed, Drift], None]] = {
    "vpc": diff_vpc, "subnet": diff_subnet, "route-table": diff_route_table, "vpc-endpoint": diff_endpoint,
    "security-group": diff_security_group, "efs": diff_file_system, "mount-target": diff_mount_target,
    "access-point": diff_access_point, "bucket": diff_bucket, "role": diff_role, "log-group": diff_log_group,
    "function": diff_function, "permission": diff_permission, "bucket-notification": diff_notification,
    "http-api": diff_api, "api-integration": diff_integration, "api-routes": diff_routes, "api-stage": diff_stage,
}


def diff(desired: Resource, observed: Observed) -> Drift:
    """What differs between ``desired`` (refs resolved) and ``observed``."""
    drift = Drift()
    DIFFS[desired.kind](desired, observed, drift)
    _tags(desired, observed, drift)
    return drift
