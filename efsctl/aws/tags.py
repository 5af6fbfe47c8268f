"""Tag shapes: EC2/EFS/IAM want ``[{"Key": k, "Value": v}]``; the rest take plain dicts."""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def tag_dict(items: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    return {item["Key"]: item["Value"] for item in items or []}


def tag_filters(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """EC2 ``Filters`` matching every tag in ``tags``."""
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(tags.items())]


def tag_specs(resource_type: str, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """EC2 ``TagSpecifications``: tags applied atomically with the create."""
    return [{"ResourceType": resource_type, "Tags": tag_list(tags)}]
