"""Does a function's resource policy let API Gateway invoke it for this request?

Without such a statement, API Gateway answers the caller 500 (AWS-RULES 20).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from efsctl.local.fidelity.bucket_policy import conditions_hold

SERVICE = "apigateway.amazonaws.com"


def source_arn(region: str, account_id: str, api_id: str, stage: str, method: str, path: str, route_key: str) -> str:
    if route_key == "$default":
        return f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}/$default"
    return f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}/{method}{path}"


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allows_invoke(statements: list[dict[str, Any]], source: str, account_id: str) -> bool:
    context = {"AWS:SourceArn": source, "AWS:SourceAccount": account_id}
    for statement in statements:
        if statement.get("Effect", "Allow") != "Allow":
            continue
        principal = statement.get("Principal")
        if not (principal == "*" or (isinstance(principal, dict) and (
                SERVICE in _listed(principal.get("Service", [])) or "*" in _listed(principal.get("AWS", []))))):
            continue
        actions = _listed(statement.get("Action", []))
        if not any(fnmatch.fnmatchcase("lambda:invokefunction", str(a).lower()) for a in actions):
            continue
        if conditions_hold(statement.get("Condition"), context):
            return True
    return False
