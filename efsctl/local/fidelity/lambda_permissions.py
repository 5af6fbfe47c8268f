"""Lambda resource policies: statement ids are unique, and each statement's age is known.

AddPermission with a statement id the policy already has is ResourceConflictException "The
statement id (X) provided already exists. Please provide a new statement id, or remove the
existing statement." (moto appends a duplicate). When each statement was added is recorded,
so other patches can model how long a new permission takes to be honoured (S3 cannot validate
a notification to the function for a moment after its permission is added).
"""

from __future__ import annotations

import json
from typing import Any

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target
from efsctl.local.fidelity.timeline import timeline

ADDED = "_efsctl_added"


def statement_added(policy: Any, sid: str) -> float | None:
    """When the statement ``sid`` was added (a timeline instant), None if unknown."""
    return (getattr(policy, ADDED, None) or {}).get(sid)


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.awslambda.exceptions import LambdaClientError
    from moto.awslambda.policy import Policy

    line = timeline(ctx)

    def wrap_add(original):
        def add_statement(self: Any, raw: str, qualifier: str | None = None) -> tuple[Any, str]:
            try:
                sid = json.loads(raw).get("StatementId")
            except (ValueError, AttributeError):
                sid = None
            if sid is not None and any(s.get("Sid") == sid for s in self.statements):
                error = LambdaClientError("ResourceConflictException",
                                          f"The statement id ({sid}) provided already exists. Please provide a new "
                                          "statement id, or remove the existing statement.")
                error.code = 409
                raise error
            statement, revision = original(self, raw, qualifier)
            added = getattr(self, ADDED, None)
            if added is None:
                added = {}
                setattr(self, ADDED, added)
            added[statement.get("Sid")] = line.now()
            return statement, revision
        return add_statement

    def wrap_delete(original):
        def del_statement(self: Any, sid: str, revision: str = "") -> None:
            original(self, sid, revision)
            (getattr(self, ADDED, None) or {}).pop(sid, None)
        return del_statement

    patcher.wrap(Policy, "add_statement", wrap_add)
    patcher.wrap(Policy, "del_statement", wrap_delete)


PATCH = Patch(
    name="lambda_permissions",
    summary="duplicate statement ids refused (ResourceConflictException); statement ages recorded",
    targets=(
        Target("moto.awslambda.policy:Policy.add_statement", ("self", "raw", "qualifier")),
        Target("moto.awslambda.policy:Policy.del_statement", ("self", "sid", "revision")),
    ),
    install=install,
)
