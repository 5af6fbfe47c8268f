"""Amazon EFS: file system, mount targets, access point.

botocore has no EFS waiters; the stack engine polls these describes. DescribeMountTargets
takes exactly one of FileSystemId / MountTargetId / AccessPointId.
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping

from efsctl.aws.errors import attempt, aws_call, is_code
from efsctl.aws.paginate import paginate
from efsctl.aws.session import AwsContext
from efsctl.aws.tags import tag_list


def _efs(aws: AwsContext) -> Any:
    return aws.client("efs")


@aws_call
def find_file_system(aws: AwsContext, creation_token: str) -> dict[str, Any] | None:
    found = list(paginate(_efs(aws), "describe_file_systems", "FileSystems", CreationToken=creation_token))
    return found[0] if found else None


@aws_call
def describe_file_system(aws: AwsContext, file_system_id: str) -> dict[str, Any] | None:
    try:
        found = _efs(aws).describe_file_systems(FileSystemId=file_system_id)["FileSystems"]
    except Exception as exc:
        if is_code(exc, "FileSystemNotFound"):
            return None
        raise
    return found[0] if found else None


@aws_call
def create_file_system(aws: AwsContext, creation_token: str, *, encrypted: bool, throughput_mode: str,
                       performance_mode: str, tags: Mapping[str, str]) -> dict[str, Any]:
    """Create (or, for a token already used, find) the file system; it starts ``creating``."""
    try:
        return _efs(aws).create_file_system(
            CreationToken=creation_token, Encrypted=encrypted, ThroughputMode=throughput_mode,
            PerformanceMode=performance_mode, Tags=tag_list(tags))
    except Exception as exc:
        if is_code(exc, "FileSystemAlreadyExists"):
            existing = find_file_system(aws, creation_token)
            if existing:
                return existing
        raise


@aws_call
def set_throughput_mode(aws: AwsContext, file_system_id: str, throughput_mode: str) -> None:
    _efs(aws).update_file_system(FileSystemId=file_system_id, ThroughputMode=throughput_mode)


@aws_call
def mount_targets(aws: AwsContext, file_system_id: str) -> list[dict[str, Any]]:
    try:
        return list(paginate(_efs(aws), "describe_mount_targets", "MountTargets", FileSystemId=file_system_id))
    except Exception as exc:
        if is_code(exc, "FileSystemNotFound"):
            return []
        raise


@aws_call
def describe_mount_target(aws: AwsContext, mount_target_id: str) -> dict[str, Any] | None:
    try:
        found = _efs(aws).describe_mount_targets(MountTargetId=mount_target_id)["MountTargets"]
    except Exception as exc:
        if is_code(exc, "MountTargetNotFound"):
            return None
        raise
    return found[0] if found else None


@aws_call
def mount_target_security_groups(aws: AwsContext, mount_target_id: str) -> list[str]:
    try:
        return list(_efs(aws).describe_mount_target_security_groups(MountTargetId=mount_target_id)
                    .get("SecurityGroups") or [])
    except Exception as exc:
        if is_code(exc, "MountTargetNotFound"):
            return []
        raise


@aws_call
def create_mount_target(aws: AwsContext, file_system_id: str, subnet_id: str,
                        security_group_ids: list[str]) -> dict[str, Any]:
    """Create the subnet's mount target (or find it if one is already there)."""
    try:
        return _efs(aws).create_mount_target(FileSystemId=file_system_id, SubnetId=subnet_id,
                                             SecurityGroups=security_group_ids)
    except Exception as exc:
        if is_code(exc, "MountTargetConflict"):
            for target in mount_targets(aws, file_system_id):
                if target.get("SubnetId") == subnet_id:
                    return target
        raise


@aws_call
def set_mount_target_security_groups(aws: AwsContext, mount_target_id: str, security_group_ids: list[str]) -> None:
    _efs(aws).modify_mount_target_security_groups(MountTargetId=mount_target_id, SecurityGroups=security_group_ids)


@aws_call
def access_points(aws: AwsContext, file_system_id: str) -> list[dict[str, Any]]:
    try:
        return list(paginate(_efs(aws), "describe_access_points", "AccessPoints", FileSystemId=file_system_id))
    except Exception as exc:
        if is_code(exc, "FileSystemNotFound"):
            return []
        raise


@aws_call
def describe_access_point(aws: AwsContext, access_point_id: str) -> dict[str, Any] | None:
    try:
        found = _efs(aws).describe_access_points(AccessPointId=access_point_id)["AccessPoints"]
    except Exception as exc:
        if is_code(exc, "AccessPointNotFound"):
            return None
        raise
    return found[0] if found else None


@aws_call
def create_access_point(aws: AwsContext, file_system_id: str, *, posix_user: Mapping[str, Any],
                        root_directory: Mapping[str, Any], tags: Mapping[str, str]) -> dict[str, Any]:
    # The token makes botocore's retries of this one request idempotent; re-runs find the access
    # point by tag first (moto ignores ClientToken altogether).
    return _efs(aws).create_access_point(
        ClientToken=f"efsctl-{uuid.uuid4().hex}", FileSystemId=file_system_id, PosixUser=dict(posix_user),
        RootDirectory=dict(root_directory), Tags=tag_list(tags))


@aws_call
def tag_resource(aws: AwsContext, resource_id: str, tags: Mapping[str, str]) -> None:
    if tags:
        _efs(aws).tag_resource(ResourceId=resource_id, Tags=tag_list(tags))


# --- teardown (`efsctl down`) ----------------------------------------------------------------
# Deletion is asynchronous on AWS (mount targets go through ``deleting``); "already gone" is done.

@aws_call
def delete_access_point(aws: AwsContext, access_point_id: str) -> bool:
    return attempt(lambda: _efs(aws).delete_access_point(AccessPointId=access_point_id), "AccessPointNotFound")


@aws_call
def delete_mount_target(aws: AwsContext, mount_target_id: str) -> bool:
    return attempt(lambda: _efs(aws).delete_mount_target(MountTargetId=mount_target_id), "MountTargetNotFound")


@aws_call
def delete_file_system(aws: AwsContext, file_system_id: str) -> bool:
    """Delete the file system; ``FileSystemInUse`` (mount targets not gone yet) propagates."""
    return attempt(lambda: _efs(aws).delete_file_system(FileSystemId=file_system_id), "FileSystemNotFound")
