"""EFS lifecycles: file systems, mount targets and access points are ``creating`` for a while.

moto makes every EFS resource ``available`` at once and deletes mount targets at once. AWS keeps
a new file system ``creating`` (about 10 s) and refuses mount targets and access points on it
(``IncorrectFileSystemLifeCycleState``, whose message really is ``None``); a mount target is
``creating`` for a minute or two and ``deleting`` for about half a minute, during which the file
system cannot be deleted (``FileSystemInUse``) and its interface still holds the subnet and
security groups. Durations come from the realism profile (all zero under ``instant``).

A mount target's interface is requester-managed and ``in-use``, described as AWS describes it.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target
from efsctl.local.fidelity.timeline import Timeline, timeline

BORN = "_efsctl_born"
DELETING = "_efsctl_deleting"

# moto's own DeleteMountTarget, which the deferred deletion finally runs (set by install).
_delete_now: Callable[[Any, str], None] | None = None


def finish_mount_target_delete(account_id: str, region: str, mount_target_id: str) -> None:
    """The end of a mount target's ``deleting``: a module function, so the timeline can save it."""
    from moto.efs.models import efs_backends

    backend = efs_backends[account_id][region]
    if mount_target_id in backend.mount_targets_by_id and _delete_now is not None:
        _delete_now(backend, mount_target_id)


def file_system_state(line: Timeline, fs: Any) -> str:
    if not line.done(getattr(fs, BORN, None), "file_system_creating"):
        return "creating"
    return fs.life_cycle_state


def mount_target_state(line: Timeline, mt: Any) -> str:
    if getattr(mt, DELETING, None) is not None:
        return "deleting"
    if not line.done(getattr(mt, BORN, None), "mount_target_creating"):
        return "creating"
    return mt.life_cycle_state


def access_point_state(line: Timeline, ap: Any) -> str:
    return "available" if line.done(getattr(ap, BORN, None), "access_point_creating") else "creating"


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.efs.exceptions import EFSError
    from moto.efs.models import AccessPoint, EFSBackend, FileSystem, MountTarget

    line = timeline(ctx)

    class IncorrectFileSystemLifeCycleState(EFSError):
        code = 409

        def __init__(self) -> None:
            super().__init__("IncorrectFileSystemLifeCycleState", "None")

    def stamp_birth(original):
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            setattr(self, BORN, line.now())
        return __init__

    def with_state(state_of):
        def wrap(original):
            def info_json(self: Any) -> dict[str, Any]:
                info = original(self)
                info["LifeCycleState"] = state_of(line, self)
                return info
            return info_json
        return wrap

    def require_available(backend: Any, file_system_id: str) -> None:
        fs = backend.file_systems_by_id.get(file_system_id)
        if fs is not None and file_system_state(line, fs) != "available":
            raise IncorrectFileSystemLifeCycleState()

    def wrap_create_mount_target(original):
        def create_mount_target(self: Any, file_system_id: str, subnet_id: str, ip_address: str | None = None,
                                security_groups: list[str] | None = None) -> Any:
            require_available(self, file_system_id)
            mt = original(self, file_system_id, subnet_id, ip_address, security_groups)
            eni = self.ec2_backend.enis.get(mt.network_interface_id)
            if eni is not None:
                eni.description = f"EFS mount target for {file_system_id} ({mt.mount_target_id})"
                eni.requester_managed = True
                eni.status = "in-use"
            return mt
        return create_mount_target

    def wrap_create_access_point(original):
        def create_access_point(self: Any, client_token: str, tags: list[dict[str, str]], file_system_id: str,
                                posix_user: dict[str, Any], root_directory: dict[str, Any]) -> Any:
            require_available(self, file_system_id)
            return original(self, client_token, tags, file_system_id, posix_user, root_directory)
        return create_access_point

    def wrap_delete_mount_target(original):
        global _delete_now
        _delete_now = original

        def delete_mount_target(self: Any, mount_target_id: str) -> None:
            mt = self.mount_targets_by_id.get(mount_target_id)
            if mt is None or line.delay("mount_target_deleting") <= 0:
                return original(self, mount_target_id)
            if getattr(mt, DELETING, None) is not None:
                return None   # already on its way out
            setattr(mt, DELETING, line.now())
            line.after("mount_target_deleting",
                       functools.partial(finish_mount_target_delete, self.account_id, self.region_name, mount_target_id))
            return None
        return delete_mount_target

    patcher.wrap(FileSystem, "__init__", stamp_birth)
    patcher.wrap(MountTarget, "__init__", stamp_birth)
    patcher.wrap(AccessPoint, "__init__", stamp_birth)
    patcher.wrap(FileSystem, "info_json", with_state(file_system_state))
    patcher.wrap(MountTarget, "info_json", with_state(mount_target_state))
    patcher.wrap(AccessPoint, "info_json", with_state(access_point_state))
    patcher.wrap(EFSBackend, "create_mount_target", wrap_create_mount_target)
    patcher.wrap(EFSBackend, "create_access_point", wrap_create_access_point)
    patcher.wrap(EFSBackend, "delete_mount_target", wrap_delete_mount_target)


PATCH = Patch(
    name="efs_lifecycle",
    summary="file systems, mount targets and access points creating/deleting for the profile's durations",
    targets=(
        Target("moto.efs.models:FileSystem.__init__"),
        Target("moto.efs.models:FileSystem.info_json", ("self",)),
        Target("moto.efs.models:MountTarget.__init__",
               ("self", "account_id", "file_system", "subnet", "ip_address", "security_groups")),
        Target("moto.efs.models:MountTarget.info_json", ("self",)),
        Target("moto.efs.models:AccessPoint.info_json", ("self",)),
        Target("moto.efs.models:EFSBackend.create_mount_target",
               ("self", "file_system_id", "subnet_id", "ip_address", "security_groups")),
        Target("moto.efs.models:EFSBackend.create_access_point",
               ("self", "client_token", "tags", "file_system_id", "posix_user", "root_directory")),
        Target("moto.efs.models:EFSBackend.delete_mount_target", ("self", "mount_target_id")),
        Target("moto.efs.models:EFSBackend.delete_file_system", ("self", "file_system_id")),
        Target("moto.efs.exceptions:EFSError"),
    ),
    install=install,
)
