"""Bucket policies evaluated with their conditions, over a connection that counts as TLS.

moto treats any statement whose conditions it cannot satisfy as a *denial*, so a standard
TLS-only policy (``Deny`` ``s3:*`` when ``aws:SecureTransport`` is ``false``) blocks every object
call. AWS skips a statement whose conditions do not hold. The local endpoint is loopback-only,
so we treat it as secure transport, as a TLS endpoint would be; a policy that denies plain HTTP
thus leaves local access alone, and an explicit, matching Deny still denies.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target

NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike",
           "NumericNotEquals", "DateNotEquals"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _operator_holds(op: str, expected: list[Any], actual: list[str]) -> bool:
    base = op.removesuffix("IfExists")
    positive = base.replace("Not", "", 1) if base in NEGATED else base
    tests = {
        "StringEquals": lambda e, a: a == e,
        "StringEqualsIgnoreCase": lambda e, a: a.lower() == e.lower(),
        "StringLike": lambda e, a: _glob(e, a),
        "ArnEquals": lambda e, a: a == e,
        "ArnLike": lambda e, a: _glob(e, a),
        "Bool": lambda e, a: a.lower() == e.lower(),
        "NumericEquals": lambda e, a: float(a) == float(e),
        "NumericLessThan": lambda e, a: float(a) < float(e),
        "NumericLessThanEquals": lambda e, a: float(a) <= float(e),
        "NumericGreaterThan": lambda e, a: float(a) > float(e),
        "NumericGreaterThanEquals": lambda e, a: float(a) >= float(e),
    }
    test = tests.get(positive)
    if test is None:
        return False   # an operator we do not evaluate never matches
    try:
        found = any(test(str(e), a) for e in expected for a in actual)
    except ValueError:
        found = False
    return not found if base in NEGATED else found


def conditions_hold(conditions: dict[str, Any] | None, context: dict[str, str]) -> bool:
    lowered = {k.lower(): v for k, v in context.items()}
    for raw_op, clauses in (conditions or {}).items():
        op = raw_op.split(":", 1)[-1]   # ForAnyValue:/ForAllValues: on single-valued keys
        for key, expected in clauses.items():
            actual = lowered.get(key.lower())
            if op == "Null":
                if (actual is None) != (str(_as_list(expected)[0]).lower() == "true"):
                    return False
                continue
            if actual is None:
                if op.endswith("IfExists") or op.removesuffix("IfExists") in NEGATED:
                    continue
                return False
            if not _operator_holds(op, [str(e) for e in _as_list(expected)], [actual]):
                return False
    return True


def _principal_matches(statement: dict[str, Any], account_id: str) -> bool:
    if "NotPrincipal" in statement:
        return False
    principal = statement.get("Principal")
    if principal is None or principal == "*":
        return True
    if isinstance(principal, dict):
        for value in _as_list(principal.get("AWS", [])):
            if value == "*" or value == account_id or str(value).startswith(f"arn:aws:iam::{account_id}:"):
                return True
    return False


def _element_matches(statement: dict[str, Any], name: str, value: str, case: bool) -> bool:
    if name in statement:
        return any(_glob(p, value, case) for p in _as_list(statement[name]))
    negated = "Not" + name
    if negated in statement:
        return not any(_glob(p, value, case) for p in _as_list(statement[negated]))
    return False


def evaluate(policy: dict[str, Any], action: str, resource: str, context: dict[str, str], account_id: str) -> str:
    """``DENIED``, ``PERMITTED`` or ``NEUTRAL`` for one request, as IAM evaluates a resource policy."""
    allowed = False
    for statement in _as_list(policy.get("Statement", [])):
        if not (_principal_matches(statement, account_id)
                and _element_matches(statement, "Action", action, case=False)
                and _element_matches(statement, "Resource", resource, case=True)
                and conditions_hold(statement.get("Condition"), context)):
            continue
        if statement.get("Effect") == "Deny":
            return "DENIED"
        allowed = True
    return "PERMITTED" if allowed else "NEUTRAL"


def request_context(account_id: str) -> dict[str, str]:
    return {"aws:SecureTransport": "true", "aws:PrincipalAccount": account_id}


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
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
