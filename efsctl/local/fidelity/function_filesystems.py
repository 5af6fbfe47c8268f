"""``FileSystemConfigs`` on Lambda functions: kept, returned and validated as AWS does.

moto accepts anything here (a file system ARN, ``/efs``) and then drops it, so GetFunction
never returns it. AWS checks the shape of each item against its API model (ValidationException)
and that the function runs in a VPC (InvalidParameterValueException); the same rules apply to
UpdateFunctionConfiguration, including detaching a function that still mounts a file system
from its VPC.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target

ARN_PATTERN = (r"arn:aws[a-zA-Z-]*:elasticfilesystem:[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\d{1}:\d{12}:"
               r"access-point/fsap-[a-f0-9]{17}$")
MOUNT_PATH_PATTERN = r"^/mnt/[a-zA-Z0-9-_.]+$"


def problems(configs: list[dict[str, Any]] | None, vpc_config: dict[str, Any] | None) -> tuple[str, str] | None:
    """``(error code, message)`` AWS answers for these file system configs, or None if valid."""
    if not configs:
        return None
    if len(configs) > 1:
        return ("ValidationException", "1 validation error detected: Value '{}' at 'fileSystemConfigs' failed to "
                "satisfy constraint: Member must have length less than or equal to 1".format(configs))
    for index, config in enumerate(configs, 1):
        arn = str(config.get("Arn", ""))
        path = str(config.get("LocalMountPath", ""))
        if not re.fullmatch(ARN_PATTERN, arn) or len(arn) > 256:
            return ("ValidationException", f"1 validation error detected: Value '{arn}' at "
                    f"'fileSystemConfigs.{index}.member.arn' failed to satisfy constraint: Member must satisfy "
                    f"regular expression pattern: {ARN_PATTERN}")
        if not re.fullmatch(MOUNT_PATH_PATTERN, path) or len(path) > 160:
            return ("ValidationException", f"1 validation error detected: Value '{path}' at "
                    f"'fileSystemConfigs.{index}.member.localMountPath' failed to satisfy constraint: Member must "
                    f"satisfy regular expression pattern: {MOUNT_PATH_PATTERN}")
    if not (vpc_config and vpc_config.get("SubnetIds")):
        return ("InvalidParameterValueException",
                f"Function must be configured to execute in a VPC to reference access point {configs[0]['Arn']}.")
    return None


def _raise(found: tuple[str, str] | None) -> None:
    if found is not None:
        from moto.awslambda.exceptions import LambdaClientError

        raise LambdaClientError(*found)


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.awslambda.models import LambdaFunction

    def wrap_init(original):
        def __init__(self: Any, account_id: str, spec: dict[str, Any], region: str, version: Any = 1) -> None:
            _raise(problems(spec.get("FileSystemConfigs"), spec.get("VpcConfig")))
            original(self, account_id, spec, region, version)
            self.file_system_configs = copy.deepcopy(spec.get("FileSystemConfigs") or [])
        return __init__

    def wrap_update(original):
        def update_configuration(self: Any, config_updates: dict[str, Any]) -> dict[str, Any]:
            configs = config_updates.get("FileSystemConfigs", getattr(self, "file_system_configs", None))
            vpc = config_updates.get("VpcConfig", self._vpc_config)
            _raise(problems(configs, vpc))
            if "FileSystemConfigs" in config_updates:
                self.file_system_configs = copy.deepcopy(config_updates["FileSystemConfigs"] or [])
            return original(self, config_updates)
        return update_configuration

    def wrap_get(original):
        def get_configuration(self: Any, on_create: bool = False) -> dict[str, Any]:
            config = original(self, on_create)
            if getattr(self, "file_system_configs", None):
                config["FileSystemConfigs"] = copy.deepcopy(self.file_system_configs)
            return config
        return get_configuration

    patcher.wrap(LambdaFunction, "__init__", wrap_init)
    patcher.wrap(LambdaFunction, "update_configuration", wrap_update)
    patcher.wrap(LambdaFunction, "get_configuration", wrap_get)


PATCH = Patch(
    name="function_filesystems",
    summary="FileSystemConfigs kept, returned by GetFunction/GetFunctionConfiguration, and validated",
    targets=(
        Target("moto.awslambda.models:LambdaFunction.__init__", ("self", "account_id", "spec", "region", "version")),
        Target("moto.awslambda.models:LambdaFunction.update_configuration", ("self", "config_updates")),
        Target("moto.awslambda.models:LambdaFunction.get_configuration", ("self", "on_create")),
    ),
    install=install,
)
