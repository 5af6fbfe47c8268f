"""Function configuration round-trips through updates, as on AWS.

moto ignores ``Architectures`` on UpdateFunctionCode (so ``up --architecture x86_64`` updated the
code on every run and GetFunctionConfiguration kept answering ``arm64``), ignores
``EphemeralStorage``, ``TracingConfig`` and ``KMSKeyArn`` on UpdateFunctionConfiguration though it
keeps them at CreateFunction, and fails on an ``Environment`` without ``Variables`` (which AWS
reads as "no variables"). Everything else efsctl sets (role, handler, runtime, memory, timeout,
environment, VPC; file systems through ``function_filesystems``) moto already keeps.
"""

from __future__ import annotations

from typing import Any

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.awslambda.models import LambdaFunction

    def wrap_update_code(original):
        def update_function_code(self: Any, updated_spec: dict[str, Any]) -> dict[str, Any]:
            if updated_spec.get("Architectures") and not updated_spec.get("DryRun"):
                self.architectures = list(updated_spec["Architectures"])   # validated by moto's setter
            return original(self, updated_spec)
        return update_function_code

    def wrap_update_configuration(original):
        def update_configuration(self: Any, config_updates: dict[str, Any]) -> dict[str, Any]:
            updates = dict(config_updates)
            if "Environment" in updates:
                updates["Environment"] = {"Variables": dict((updates["Environment"] or {}).get("Variables") or {})}
            if (updates.get("EphemeralStorage") or {}).get("Size"):
                self.ephemeral_storage = updates["EphemeralStorage"]["Size"]
            if updates.get("TracingConfig"):
                self.tracing_config = dict(updates["TracingConfig"])
            if "KMSKeyArn" in updates:
                self.kms_key_arn = updates["KMSKeyArn"] or None
            return original(self, updates)
        return update_configuration

    patcher.wrap(LambdaFunction, "update_function_code", wrap_update_code)
    patcher.wrap(LambdaFunction, "update_configuration", wrap_update_configuration)


PATCH = Patch(
    name="function_config",
    summary="Architectures honoured on UpdateFunctionCode; storage, tracing and KMS key on configuration updates",
    targets=(
        Target("moto.awslambda.models:LambdaFunction.update_function_code", ("self", "updated_spec")),
        Target("moto.awslambda.models:LambdaFunction.update_configuration", ("self", "config_updates")),
        Target("moto.awslambda.models:LambdaFunction.architectures"),
        Target("moto.awslambda.models:LambdaFunction.ephemeral_storage"),
    ),
    install=install,
)
