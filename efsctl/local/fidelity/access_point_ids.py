"""EFS access point ids of AWS's shape: ``fsap-`` and 17 hex digits (moto makes 8).

Lambda validates ``FileSystemConfigs[].Arn`` against ``access-point/fsap-[a-f0-9]{17}``, so an
access point made by moto could not be mounted by a faithfully validated function.
"""

from __future__ import annotations

import os
from typing import Any

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.efs.models import AccessPoint

    def wrap_init(original):
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            new_id = "fsap-" + os.urandom(9).hex()[:17]
            self.access_point_arn = self.access_point_arn.replace(self.access_point_id, new_id)
            self.access_point_id = new_id
        return __init__

    patcher.wrap(AccessPoint, "__init__", wrap_init)


PATCH = Patch(
    name="access_point_ids",
    summary="access point ids fsap- + 17 hex digits, as AWS makes them",
    targets=(
        Target("moto.efs.models:AccessPoint.__init__",
               ("self", "account_id", "region_name", "client_token", "file_system_id", "name", "posix_user",
                "root_directory", "context")),
        Target("moto.efs.models:EFSBackend.create_access_point",
               ("self", "client_token", "tags", "file_system_id", "posix_user", "root_directory")),
    ),
    install=install,
)
