"""What the runtime needs to know about one function: plain data, built from moto's model."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class EfsMount:
    """A function's file system config, resolved: the access point and the local directory."""

    access_point_arn: str
    local_mount_path: str   # what AWS mounts, e.g. /mnt/efs
    directory: str          # what we hand to the handler instead
    file_system_id: str = ""


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    arn: str
    region: str
    account_id: str
    handler: str
    runtime: str
    code_digest: str          # hex SHA-256 of the deployed zip
    code: bytes = field(repr=False, compare=False)
    timeout: float = 3.0
    memory_mb: int = 128
    environment: tuple[tuple[str, str], ...] = ()
    reserved_concurrency: int | None = None
    version: str = "$LATEST"
    efs: tuple[EfsMount, ...] = ()
    role: str = ""            # the execution role's ARN

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"

    @property
    def fingerprint(self) -> str:
        """Changes whenever a warm environment could no longer serve this configuration."""
        data = [self.arn, self.role, self.handler, self.runtime, self.code_digest, self.timeout, self.memory_mb,
                list(self.environment), [(m.access_point_arn, m.local_mount_path, m.directory) for m in self.efs]]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]
