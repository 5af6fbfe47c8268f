"""AWS managed policies keep one id, as on AWS (moto draws a random one each time it loads them).

A policy's id on AWS is fixed (``ANPA`` and 17 more characters); moto loads its 1,500 AWS
managed policies into every account it creates, each with a fresh random id, so the same
policy's id changed whenever the cloud restarted. Here the id is derived from the policy's ARN.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Callable

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target


def policy_id(arn: str) -> str:
    digest = base64.b32encode(hashlib.sha256(arn.encode()).digest()).decode()
    return "ANPA" + digest[:17]


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.iam.models import IAMBackend

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def _init_aws_policies(self: Any) -> list[Any]:
            policies = original(self)
            for policy in policies:
                policy.id = policy_id(policy.arn)
            return policies
        return _init_aws_policies

    patcher.wrap(IAMBackend, "_init_aws_policies", wrap)


PATCH = Patch(
    name="aws_policy_ids",
    summary="AWS managed policies keep one id (derived from the ARN), across restarts too",
    targets=(
        Target("moto.iam.models:IAMBackend._init_aws_policies", ("self",)),
        Target("moto.iam.models:ManagedPolicy.__init__"),
        Target("moto.iam.models:random_policy_id", ()),
    ),
    install=install,
)
