"""CloudWatch Logs groups, created before the functions so retention and tags are ours."""

from __future__ import annotations

from typing import Any, Mapping

from efsctl.aws.errors import attempt, aws_call, is_code
from efsctl.aws.paginate import paginate
from efsctl.aws.session import AwsContext


def _logs(aws: AwsContext) -> Any:
    return aws.client("logs")


@aws_call
def get_log_group(aws: AwsContext, name: str, *, tags: bool = True) -> dict[str, Any] | None:
    """The group (with its ``tags`` added, unless ``tags=False``), or ``None``."""
    for group in paginate(_logs(aws), "describe_log_groups", "logGroups", logGroupNamePrefix=name):
        if group["logGroupName"] == name:
            group = dict(group)
            if tags:
                group["tags"] = _logs(aws).list_tags_log_group(logGroupName=name).get("tags", {})
            return group
    return None


@aws_call
def create_log_group(aws: AwsContext, name: str, tags: Mapping[str, str]) -> bool:
    """Create the group; ``False`` if it already existed (an invocation re-creates it)."""
    try:
        _logs(aws).create_log_group(logGroupName=name, tags=dict(tags))
        return True
    except Exception as exc:
        if not is_code(exc, "ResourceAlreadyExistsException"):
            raise
        return False


@aws_call
def set_retention(aws: AwsContext, name: str, days: int) -> None:
    _logs(aws).put_retention_policy(logGroupName=name, retentionInDays=days)


@aws_call
def tag_log_group(aws: AwsContext, name: str, tags: Mapping[str, str]) -> None:
    if tags:
        _logs(aws).tag_log_group(logGroupName=name, tags=dict(tags))


# --- teardown (`efsctl down`) ----------------------------------------------------------------

@aws_call
def delete_log_group(aws: AwsContext, name: str) -> bool:
    return attempt(lambda: _logs(aws).delete_log_group(logGroupName=name), "ResourceNotFoundException")
