"""PutBucketNotificationConfiguration validated as S3 validates it (moto accepts anything).

S3 checks that it may invoke every Lambda destination: the function's resource policy must
allow ``lambda:InvokeFunction`` to ``s3.amazonaws.com`` for this bucket (``AWS:SourceArn``,
when given, matching ``arn:aws:s3:::<bucket>``; ``AWS:SourceAccount``, when given, the bucket
owner's account). Otherwise, and also for a moment after the permission is added (the
profile's ``permission_propagation``), the call is ``InvalidArgument`` "Unable to validate the
following destination configurations", naming the function. Two rules for overlapping event
types whose prefixes and suffixes overlap are ``InvalidArgument`` too ("Configuration is
ambiguously defined. ...").
"""

from __future__ import annotations

import fnmatch
import itertools
from typing import Any

from efsctl.local import moto_models
from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target
from efsctl.local.fidelity.lambda_permissions import statement_added
from efsctl.local.fidelity.timeline import Timeline, timeline

UNABLE = "Unable to validate the following destination configurations"
AMBIGUOUS = ("Configuration is ambiguously defined. Cannot have overlapping suffixes in two rules if the prefixes "
             "are overlapping for the same event type.")
DESTINATIONS = (("TopicConfiguration", "Topic"), ("QueueConfiguration", "Queue"),
                ("CloudFunctionConfiguration", "CloudFunction"))


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def rules(config: dict[str, Any]) -> list[tuple[list[str], str, str]]:
    """Every destination rule as ``(events, prefix, suffix)``."""
    found = []
    for key, _ in DESTINATIONS:
        for rule in _listed(config.get(key)):
            filters = {f.get("Name", "").lower(): f.get("Value") or "" for f in
                       _listed(((rule.get("Filter") or {}).get("S3Key") or {}).get("FilterRule"))}
            found.append((_listed(rule.get("Event")), filters.get("prefix", ""), filters.get("suffix", "")))
    return found


def events_overlap(a: str, b: str) -> bool:
    return a == b or fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a)


def ambiguous(config: dict[str, Any]) -> str | None:
    """The first event type two rules both claim with overlapping prefixes and suffixes."""
    for (events_a, prefix_a, suffix_a), (events_b, prefix_b, suffix_b) in itertools.combinations(rules(config), 2):
        if not (prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a)):
            continue
        if not (suffix_a.endswith(suffix_b) or suffix_b.endswith(suffix_a)):
            continue
        for a, b in itertools.product(events_a, events_b):
            if events_overlap(a, b):
                return a
    return None


def may_invoke(line: Timeline, fn: Any, bucket: Any) -> bool:
    """True if the function's policy lets S3 invoke it for ``bucket``, and that is known by now."""
    for statement in moto_models.function_policy_statements(fn):
        principal = statement.get("Principal")
        services = _listed(principal.get("Service")) if isinstance(principal, dict) else _listed(principal)
        if statement.get("Effect") != "Allow" or not {"s3.amazonaws.com", "*"} & set(services):
            continue
        if not any(fnmatch.fnmatchcase("lambda:InvokeFunction".lower(), a.lower())
                   for a in _listed(statement.get("Action"))):
            continue
        condition = statement.get("Condition") or {}
        source_arns = [v for op, c in condition.items() if op.startswith("Arn") for k, v in c.items()
                       if k.lower() == "aws:sourcearn"]
        if source_arns and not any(fnmatch.fnmatchcase(bucket.arn, p) for v in source_arns for p in _listed(v)):
            continue
        accounts = [v for op, c in condition.items() if op.startswith("String") for k, v in c.items()
                    if k.lower() == "aws:sourceaccount"]
        if accounts and not any(bucket.account_id in _listed(v) for v in accounts):
            continue
        if not line.done(statement_added(fn.policy, statement.get("Sid", "")), "permission_propagation"):
            continue
        return True
    return False


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.s3.exceptions import InvalidArgumentError
    from moto.s3.models import S3Backend

    line = timeline(ctx)

    def wrap_put(original):
        def put_bucket_notification_configuration(self: Any, bucket_name: str,
                                                  notification_config: dict[str, Any]) -> None:
            bucket = self.get_bucket(bucket_name)
            for rule in _listed((notification_config or {}).get("CloudFunctionConfiguration")):
                arn = str(rule.get("CloudFunction", ""))
                fn = moto_models.find_function(bucket.account_id, bucket.region_name, arn)
                if fn is None or not may_invoke(line, fn, bucket):
                    raise InvalidArgumentError(UNABLE, arn, f"Not authorized to invoke function [{arn}]")
            event = ambiguous(notification_config or {})
            if event is not None:
                raise InvalidArgumentError(AMBIGUOUS, "Event", event)
            return original(self, bucket_name, notification_config)
        return put_bucket_notification_configuration

    patcher.wrap(S3Backend, "put_bucket_notification_configuration", wrap_put)


PATCH = Patch(
    name="s3_notifications",
    summary="notification destinations S3 may not invoke (yet), and ambiguous rules, refused as InvalidArgument",
    targets=(
        Target("moto.s3.models:S3Backend.put_bucket_notification_configuration",
               ("self", "bucket_name", "notification_config")),
        Target("moto.s3.exceptions:InvalidArgumentError", ("message", "name", "value")),
    ),
    install=install,
)
