"""IAM policy evaluation, as AWS does it for a request inside one account. Pure: no moto here.

moto has an evaluator (``moto.iam.access_control``) but it cannot serve: it ignores conditions
in identity policies and resource policies altogether, treats a statement whose conditions fail
as a *denial* (so a TLS-only bucket policy blocks everything), does not know ``NotResource``,
``NotPrincipal`` or policy variables, and does not say *which* statement decided, which the
least-privilege report needs. What it does get right is kept: the order (any explicit Deny, then
any Allow, else the implicit deny) and wildcards in actions and resources.

AWS's rules followed here (IAM User Guide, "Policy evaluation logic", same-account requests):

- an explicit ``Deny`` in any applicable policy wins;
- otherwise an ``Allow`` in an identity-based policy *or* in the resource-based policy suffices
  (within one account either is enough, except that a resource policy naming only the account
  delegates to the account's identity policies and grants nothing itself);
- otherwise the request is implicitly denied.

Actions match case-insensitively, resources case-sensitively, both with ``*`` and ``?``. A
statement whose condition uses an operator not evaluated here never applies (so an unknown
operator can neither grant nor deny).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

ALLOWED, IMPLICIT = "allowed", "implicit"
EXPLICIT_IDENTITY, EXPLICIT_RESOURCE = "explicit-identity", "explicit-resource"

NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike",
           "NumericNotEquals", "DateNotEquals"}


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@functools.lru_cache(maxsize=4096)
def _pattern(pattern: str, case: bool) -> re.Pattern[str]:
    # fnmatch would also treat [...] as a class, which IAM does not.
    body = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(f"^{body}$", 0 if case else re.IGNORECASE | re.DOTALL)


def glob(pattern: str, value: str, case: bool = True) -> bool:
    return _pattern(pattern, case).match(value) is not None


# --- conditions ------------------------------------------------------------------------------

def _operator_holds(op: str, expected: list[str], actual: list[str]) -> bool:
    base = op.removesuffix("IfExists")
    positive = base.replace("Not", "", 1) if base in NEGATED else base
    tests = {
        "StringEquals": lambda e, a: a == e,
        "StringEqualsIgnoreCase": lambda e, a: a.lower() == e.lower(),
        "StringLike": lambda e, a: glob(e, a),
        "ArnEquals": lambda e, a: a == e,
        "ArnLike": lambda e, a: glob(e, a),
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
        found = any(test(e, a) for e in expected for a in actual)
    except ValueError:
        found = False
    return not found if base in NEGATED else found


def conditions_hold(conditions: Mapping[str, Any] | None, context: Mapping[str, str]) -> bool:
    """True if every condition block holds for ``context`` (keys compare case-insensitively)."""
    lowered = {k.lower(): v for k, v in context.items()}
    for raw_op, clauses in (conditions or {}).items():
        op = raw_op.split(":", 1)[-1]   # ForAnyValue:/ForAllValues: on single-valued keys
        for key, expected in (clauses or {}).items():
            actual = lowered.get(key.lower())
            if op == "Null":
                if (actual is None) != (str(as_list(expected)[0]).lower() == "true"):
                    return False
                continue
            if actual is None:
                if op.endswith("IfExists") or op.removesuffix("IfExists") in NEGATED:
                    continue
                return False
            if not _operator_holds(op, [substitute(str(e), context) for e in as_list(expected)], [actual]):
                return False
    return True


_VARIABLE = re.compile(r"\$\{([^}]+)\}")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


def substitute(text: str, context: Mapping[str, str]) -> str:
    """Policy variables (``${aws:PrincipalAccount}``) replaced from the request's context; an
    unknown one is left as written, so it matches nothing by accident."""
    if "${" not in text:
        return text
    lowered = {k.lower(): v for k, v in context.items()}

    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(",", 1)[0].strip()
        return _SPECIAL.get(name) or lowered.get(name.lower(), match.group(0))

    return _VARIABLE.sub(value, text)


# --- requests and statements ---------------------------------------------------------------

@dataclass(frozen=True)
class Principal:
    """Who asks: an assumed-role session (``role_arn`` set) or the account itself (the operator)."""

    arn: str
    account: str
    role_arn: str | None = None


@dataclass(frozen=True)
class Request:
    principal: Principal
    action: str
    resource: str | None          # None: not derived here; any Resource element matches
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Grant:
    """One (action, resource) pair an Allow statement names: the unit the report counts."""

    policy: str
    sid: str
    action: str
    resource: str

    def key(self) -> str:
        return f"{self.policy}|{self.sid}|{self.action}|{self.resource}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str                         # ALLOWED, IMPLICIT, EXPLICIT_IDENTITY, EXPLICIT_RESOURCE
    grants: tuple[Grant, ...] = ()      # the identity-policy grants that allowed it
    resource_policy_allowed: bool = False


def _principal_matches(statement: Mapping[str, Any], principal: Principal, effect: str) -> bool:
    if "NotPrincipal" in statement:
        return not _names_principal(statement["NotPrincipal"], principal, "Deny")
    if "Principal" not in statement:
        return False
    return _names_principal(statement["Principal"], principal, effect)


def _names_principal(value: Any, principal: Principal, effect: str) -> bool:
    if value == "*":
        return True
    if not isinstance(value, Mapping):
        return False
    for name in as_list(value.get("AWS")):
        name = str(name)
        if name == "*" or name == principal.arn or (principal.role_arn and name == principal.role_arn):
            return True
        if name in (principal.account, f"arn:aws:iam::{principal.account}:root"):
            # The account as principal: denies everyone in it, but an Allow only delegates to
            # the account's own identity policies (same-account rule).
            return effect == "Deny" or principal.role_arn is None
    return False


def _first_match(patterns: list[Any], value: str, case: bool, context: Mapping[str, str]) -> str | None:
    for pattern in patterns:
        if glob(substitute(str(pattern), context), value, case):
            return str(pattern)
    return None


def _element(statement: Mapping[str, Any], name: str, value: str | None, case: bool,
             context: Mapping[str, str]) -> str | None:
    """The pattern of ``Action``/``Resource`` that matches ``value`` (``"*"`` for a ``Not...``
    element that does not exclude it), or None."""
    if name in statement:
        patterns = as_list(statement[name])
        if value is None:
            return str(patterns[0]) if patterns else None
        return _first_match(patterns, value, case, context)
    negated = "Not" + name
    if negated in statement:
        if value is not None and _first_match(as_list(statement[negated]), value, case, context):
            return None
        return not_label(statement, name)
    return None


def not_label(statement: Mapping[str, Any], name: str) -> str:
    """How a ``NotAction``/``NotResource`` element is named in grants and reports."""
    return f"Not{name} " + ",".join(str(v) for v in as_list(statement.get("Not" + name)))


def statements(document: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(sid, statement)`` for each statement; a statement without Sid is named by its index."""
    found = []
    for index, statement in enumerate(as_list(document.get("Statement"))):
        if isinstance(statement, Mapping):
            found.append((str(statement.get("Sid") or f"#{index}"), statement))
    return found


def evaluate(policies: Iterable[tuple[str, Mapping[str, Any]]], request: Request, *,
             resource_policy: bool = False) -> tuple[list[Grant], list[Grant]]:
    """``(denies, allows)``: every statement of ``policies`` that applies to ``request``."""
    denies: list[Grant] = []
    allows: list[Grant] = []
    for name, document in policies:
        for sid, statement in statements(document):
            effect = statement.get("Effect")
            if resource_policy and not _principal_matches(statement, request.principal, str(effect)):
                continue
            action = _element(statement, "Action", request.action, False, request.context)
            if action is None:
                continue
            resource = _element(statement, "Resource", request.resource, True, request.context)
            if resource is None or not conditions_hold(statement.get("Condition"), request.context):
                continue
            grant = Grant(name, sid, action, resource)
            (denies if effect == "Deny" else allows if effect == "Allow" else []).append(grant)
    return denies, allows


def decide(identity: Iterable[tuple[str, Mapping[str, Any]]], resource: Iterable[tuple[str, Mapping[str, Any]]],
           request: Request) -> Decision:
    """The decision for ``request`` under its identity policies and the target's resource policy."""
    identity_denies, identity_allows = evaluate(identity, request)
    resource_denies, resource_allows = evaluate(resource, request, resource_policy=True)
    if identity_denies:
        return Decision(False, EXPLICIT_IDENTITY)
    if resource_denies:
        return Decision(False, EXPLICIT_RESOURCE)
    if identity_allows or resource_allows:
        return Decision(True, ALLOWED, tuple(identity_allows), bool(resource_allows))
    return Decision(False, IMPLICIT)


def denial_message(decision: Decision, request: Request, *, quote_resource: bool = False) -> str:
    """AWS's text for a denied request, e.g. ``User: arn:aws:sts::123456789012:assumed-role/r/f is
    not authorized to perform: s3:GetObject on resource: "arn:aws:s3:::b/k" because no
    identity-based policy allows the s3:GetObject action`` (S3 quotes the resource)."""
    resource = request.resource or "*"
    where = f'"{resource}"' if quote_resource else resource
    head = f"User: {request.principal.arn} is not authorized to perform: {request.action} on resource: {where}"
    if decision.reason == EXPLICIT_IDENTITY:
        return f"{head} with an explicit deny in an identity-based policy"
    if decision.reason == EXPLICIT_RESOURCE:
        return f"{head} with an explicit deny in a resource-based policy"
    return f"{head} because no identity-based policy allows the {request.action} action"


def allow_grants(policies: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Grant]:
    """Every (action, resource) pair the Allow statements of ``policies`` name."""
    found = []
    for name, document in policies:
        for sid, statement in statements(document):
            if statement.get("Effect") != "Allow":
                continue
            actions = [str(a) for a in as_list(statement.get("Action"))] or [not_label(statement, "Action")]
            resources = [str(r) for r in as_list(statement.get("Resource"))] or [not_label(statement, "Resource")]
            found += [Grant(name, sid, a, r) for a in actions for r in resources]
    return found
