"""The one place, besides the fidelity patches, that reads moto's in-process models.

The daemon serves moto and also looks inside it: a function's deployed zip and configuration,
an access point's root directory, an HTTP API's routes. Every such read goes through here, so
the contract test can check these internals in one place when moto moves.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from efsctl.local.runtime.spec import EfsMount, FunctionSpec

ACCOUNT_ID = "123456789012"   # moto's default account (moto.core.DEFAULT_ACCOUNT_ID)


class NotFound(Exception):
    pass


def region_of(arn: str, default: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[0] == "arn" and parts[3] else default


def function_name_of(name_or_arn: str) -> str:
    """A Lambda function's name, from its name or its (possibly qualified) ARN."""
    parts = name_or_arn.split(":")
    return parts[6] if len(parts) > 6 and parts[0] == "arn" and parts[5] == "function" else name_or_arn


def lambda_backend(account_id: str, region: str) -> Any:
    from moto.awslambda.models import lambda_backends

    return lambda_backends[account_id][region]


def find_function(account_id: str, region: str, name_or_arn: str, qualifier: str | None = None) -> Any:
    from moto.awslambda.exceptions import UnknownFunctionException

    try:
        return lambda_backend(account_id, region_of(name_or_arn, region)).get_function(name_or_arn, qualifier)
    except UnknownFunctionException:
        return None


def function_policy_statements(fn: Any) -> list[dict[str, Any]]:
    return list(fn.policy.statements)


def file_system_configs(fn: Any) -> list[dict[str, str]]:
    """Kept by the ``function_filesystems`` patch (moto itself drops them)."""
    return list(getattr(fn, "file_system_configs", None) or [])


def vpc_config(fn: Any) -> dict[str, Any] | None:
    return fn._vpc_config


def access_point(account_id: str, region: str, access_point_id: str) -> dict[str, Any] | None:
    from moto.efs.models import efs_backends

    ap = efs_backends[account_id][region].access_points.get(access_point_id)
    if ap is None:
        return None
    root = dict(ap.root_directory or {})
    return {"file_system_id": ap.file_system_id, "path": root.get("Path") or "/",
            "creation_info": root.get("CreationInfo") or {}, "posix_user": ap.posix_user}


def efs_directory(data_dir: Path, file_system_id: str, root_path: str) -> Path:
    """``<data>/efs/<fs-id><access-point-root>``: where an access point's root lives locally."""
    rel = "/".join(p for p in root_path.split("/") if p not in ("", ".", ".."))
    return data_dir / "efs" / file_system_id / rel if rel else data_dir / "efs" / file_system_id


def resolve_mounts(fn: Any, account_id: str, region: str, data_dir: Path) -> tuple[EfsMount, ...]:
    mounts = []
    for config in file_system_configs(fn):
        arn = config.get("Arn", "")
        ap_id = arn.rsplit("/", 1)[-1]
        ap = access_point(account_id, region_of(arn, region), ap_id)
        if ap is None:
            raise NotFound(f"EFS access point {arn} does not exist")
        directory = efs_directory(data_dir, ap["file_system_id"], ap["path"])
        if not directory.is_dir():
            mode = int(str(ap["creation_info"].get("Permissions") or "755"), 8)
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(mode | 0o700)   # we run as ourselves, not the access point's POSIX user
        mounts.append(EfsMount(arn, config.get("LocalMountPath", "/mnt/efs"), str(directory), ap["file_system_id"]))
    return tuple(mounts)


def function_spec(fn: Any, data_dir: Path) -> FunctionSpec:
    """Everything the runtime needs from moto's ``LambdaFunction``."""
    code = fn.code_bytes or b""
    digest = getattr(fn, "code_digest", None) or hashlib.sha256(code).hexdigest()
    reserved = fn.reserved_concurrency
    return FunctionSpec(
        name=fn.function_name, arn=fn.function_arn.split(":$LATEST")[0], region=fn.region,
        account_id=fn.account_id, handler=fn.handler or "", runtime=fn.run_time or "python3.12",
        code_digest=digest, code=code, timeout=float(fn.timeout or 3), memory_mb=int(fn.memory_size or 128),
        environment=tuple(sorted((str(k), str(v)) for k, v in (fn.environment_vars or {}).items())),
        reserved_concurrency=None if reserved in (None, "") else int(reserved),
        version=str(fn.version), efs=resolve_mounts(fn, fn.account_id, fn.region, data_dir), role=str(fn.role or ""))


def file_system_policy(account_id: str, region: str, file_system_id: str) -> dict[str, Any] | None:
    """The file system's resource policy, or None (EFS then allows every client that reaches it)."""
    from moto.efs.models import efs_backends

    fs = efs_backends[account_id][region].file_systems_by_id.get(file_system_id)
    raw = getattr(fs, "file_system_policy", None) if fs is not None else None
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def log_group_exists(account_id: str, region: str, group: str) -> bool:
    return group in logs_backend(account_id, region).groups


def code_sha256(code: bytes) -> str:
    """Lambda's CodeSha256: base64 of the zip's SHA-256."""
    return base64.b64encode(hashlib.sha256(code).digest()).decode()


# --- logs -------------------------------------------------------------------------------------

def logs_backend(account_id: str, region: str) -> Any:
    from moto.logs.models import logs_backends

    return logs_backends[account_id][region]


def put_log_lines(account_id: str, region: str, group: str, stream: str, events: list[dict[str, Any]]) -> None:
    """Append events to a stream, creating the group and stream if they are gone (as Lambda does)."""
    backend = logs_backend(account_id, region)
    backend.ensure_log_group(group)
    backend.ensure_log_stream(group, stream)
    backend.put_log_events(group, stream, events)


# --- API Gateway v2 -----------------------------------------------------------------------------

def http_apis(account_id: str) -> list[tuple[str, Any]]:
    """Every HTTP API in the account, as ``(region, api)``."""
    from moto.apigatewayv2.models import apigatewayv2_backends

    found = []
    for region, backend in list(apigatewayv2_backends[account_id].items()):
        for api in list(backend.apis.values()):
            if api.protocol_type == "HTTP":
                found.append((region, api))
    return found


def api_tags(region: str, account_id: str, api: Any) -> dict[str, str]:
    from moto.apigatewayv2.models import apigatewayv2_backends

    return dict(apigatewayv2_backends[account_id][region].get_tags(api.arn) or {})


def api_view(api: Any) -> dict[str, Any]:
    """Routes, integrations and stages of an HTTP API, as plain data."""
    routes = [{"id": r.route_id, "key": r.route_key, "target": r.target or "",
               "auth": r.authorization_type or "NONE"} for r in list(api.routes.values())]
    integrations = {i.id: {"type": i.integration_type, "uri": i.integration_uri or "",
                           "payload": i.payload_format_version or "2.0",
                           "timeout_ms": i.timeout_in_millis or 30000} for i in list(api.integrations.values())}
    stages = sorted(s.name for s in list(api.stages.values()))
    return {"id": api.api_id, "routes": routes, "integrations": integrations, "stages": stages}


def to_json(obj: Any) -> str:
    return json.dumps(obj, default=str)


# --- inventory ----------------------------------------------------------------------------------
# What a local cloud still holds, by kind: an independent check that `down` left nothing, read
# from the models rather than through the APIs `down` uses. What moto makes on its own (the
# default VPC with its subnets, groups and route table; AWS managed policies) is not counted,
# nor are deleted endpoints.

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


def issued_key(access_key: str) -> tuple[str, str, str | None] | None:
    """``(secret, identity ARN, session token or None)`` for an access key this cloud's IAM
    (CreateAccessKey) or STS (AssumeRole and friends) issued and still honours, else None."""
    import time

    from moto.iam.models import iam_backends

    for account_id, account in list(iam_backends.items()):
        for partition in list(account.keys()):   # existing backends only: a new one holds no keys
            key = account[partition].access_keys.get(access_key)
            if key is not None and key.status == "Active" and key.user_name:
                return key.secret_access_key, f"arn:{partition}:iam::{account_id}:user/{key.user_name}", None
    assumed = assumed_role(access_key)
    if assumed is None or expiry(assumed) <= time.time():
        return None
    return assumed.secret_access_key, assumed.arn, assumed.session_token


def assumed_role(access_key: str) -> Any | None:
    """moto's record of the role session STS issued ``access_key`` for, or None."""
    from moto.sts.models import sts_backends

    for account in list(sts_backends.values()):
        for backend in list(account.values()):
            assumed = backend.get_assumed_role_from_access_key(access_key)
            if assumed is not None:
                return assumed
    return None


def expiry(assumed: Any) -> float:
    """When a role session (``assumed_role``'s) expires, epoch seconds (moto keeps naive UTC)."""
    import datetime

    expiration = assumed.expiration
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=datetime.timezone.utc)
    return expiration.timestamp()
