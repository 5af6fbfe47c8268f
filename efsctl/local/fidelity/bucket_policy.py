"""Bucket policies evaluated with their conditions, over a connection that counts as TLS.

moto treats any statement whose conditions it cannot satisfy as a *denial*, so a standard
TLS-only policy (``Deny`` ``s3:*`` when ``aws:SecureTransport`` is ``false``) blocks every object
call. AWS skips a statement whose conditions do not hold. The local endpoint is loopback-only,
so we treat it as secure transport, as a TLS endpoint would be; a policy that denies plain HTTP
thus leaves local access alone, and an explicit, matching Deny still denies.

This is the check for the operator, who acts as the account (a Deny naming a role does not
touch it). A request signed by a role session is decided with the role's identity policies and
the bucket policy together, in ``iam_enforcement``.
"""

from __future__ import annotations

import json
from typing import Any

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target
from efsctl.local.fidelity.iam_policy import Principal, Request, conditions_hold, evaluate as evaluate_policies

__all__ = ["conditions_hold", "evaluate", "request_context", "PATCH"]


def operator(account_id: str) -> Principal:
    """The operator's long-term key acts as the account itself."""
    return Principal(arn=f"arn:aws:iam::{account_id}:root", account=account_id)


def evaluate(policy: dict[str, Any], action: str, resource: str, context: dict[str, str], account_id: str,
             principal: Principal | None = None) -> str:
    """``DENIED``, ``PERMITTED`` or ``NEUTRAL`` for one request, as IAM evaluates a resource policy."""
    request = Request(principal or operator(account_id), action, resource, context)
    denies, allows = evaluate_policies([("bucket policy", policy)], request, resource_policy=True)
    return "DENIED" if denies else "PERMITTED" if allows else "NEUTRAL"


def request_context(account_id: str) -> dict[str, str]:
    return {"aws:SecureTransport": "true", "aws:PrincipalAccount": account_id}


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    from efsctl.local.fidelity.iam_sessions import current_session

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None or current_session() is not None:
            # A role session's request is decided with its identity policies (iam_enforcement).
            return PermissionResult.NEUTRAL
        policy = json.loads(self.policy.decode() if isinstance(self.policy, bytes) else self.policy)
        verdict = evaluate(policy, action, resource, request_context(ctx.account_id), ctx.account_id)
        return getattr(PermissionResult, verdict)

    patcher.replace(FakeBucket, "get_permission", get_permission)


PATCH = Patch(
    name="bucket_policy",
    summary="bucket-policy conditions evaluated; the loopback endpoint counts as secure transport",
    targets=(
        Target("moto.s3.models:FakeBucket.get_permission", ("self", "action", "resource")),
        Target("moto.iam.access_control:PermissionResult"),
    ),
    install=install,
)
