"""Per-stack local state: a cache of resource ids plus the stack's target.

Tags on the AWS resources are the truth; this file only saves lookups and remembers
whether the stack lives on AWS or in the local cloud. It holds no secrets, is written
atomically (temp file, fsync, rename) with mode 0600, and a per-stack ``flock`` keeps two
mutating runs on one stack from interleaving. The lock dies with its process, so a killed
run never leaves the stack locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from efsctl.errors import ConfigError, StackLocked

SCHEMA = 1
TARGET_AWS = "aws"
TARGET_LOCAL = "local"


@dataclass
class StackState:
    stack: str
    target: str = TARGET_AWS
    region: str | None = None
    account: str | None = None
    endpoint_url: str | None = None
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    local: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # operator choices given to `up` (memory...)
    updated_at: float = 0.0
    schema: int = SCHEMA

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StackState":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_local(self) -> bool:
        return self.target == TARGET_LOCAL


class StateStore:
    """Files under ``<home>/stacks/``: ``<stack>.json`` and ``<stack>.lock``."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    @property
    def stacks_dir(self) -> Path:
        return self.home / "stacks"

    def path(self, stack: str) -> Path:
        return self.stacks_dir / f"{stack}.json"

    def local_dir(self, stack: str) -> Path:
        """Where the stack's local cloud keeps its process files and data."""
        return self.home / "local" / stack

    def _ensure_dir(self) -> None:
        self.stacks_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def load(self, stack: str) -> StackState | None:
        path = self.path(stack)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            return StackState.from_dict(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"The state file {path} is not valid efsctl state ({exc}).",
                "Delete it: tags on the resources are the truth, and the next command rebuilds it.",
            ) from None

    def save(self, state: StackState) -> Path:
        self._ensure_dir()
        state.updated_at = time.time()
        data = json.dumps(state.to_dict(), indent=2, sort_keys=True).encode() + b"\n"
        path = self.path(state.stack)
        fd, tmp = tempfile.mkstemp(prefix=f".{state.stack}.", suffix=".tmp", dir=self.stacks_dir)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path

    def delete(self, stack: str) -> bool:
        try:
            self.path(stack).unlink()
            return True
        except FileNotFoundError:
            return False

    def list_stacks(self) -> list[str]:
        if not self.stacks_dir.is_dir():
            return []
        return sorted(p.stem for p in self.stacks_dir.glob("*.json"))

    def lock_path(self, stack: str) -> Path:
        return self.stacks_dir / f"{stack}.lock"

    @contextlib.contextmanager
    def lock(self, stack: str, command: str = "efsctl") -> Iterator[None]:
        """Hold the stack's lock for a mutating command; fail fast if another run holds it."""
        self._ensure_dir()
        lock_path = self.lock_path(stack)
        while True:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise StackLocked(
                    f"Stack {stack!r} is busy: {holder} is changing it.",
                    "Wait for it to finish (or stop it), then run this command again.",
                ) from None
            # The holder we waited behind may have removed the file (`down` forgets the stack):
            # a lock on an unlinked file guards nothing, so lock the one at the path instead.
            try:
                if os.fstat(fd).st_ino == os.stat(lock_path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"`{command}` (pid {os.getpid()})".encode(), 0)
            yield
        finally:
            os.close(fd)

    def uploads_dir(self, stack: str) -> Path:
        """Where the records of the stack's unfinished multipart uploads are kept (to resume them)."""
        return self.home / "uploads" / stack

    def forget(self, stack: str, *, keep_uploads: bool = False) -> None:
        """Remove what is left of a deleted stack here: its lock file and (unless its bucket is
        kept) the records of its unfinished uploads. Call it holding the lock."""
        import shutil

        if not keep_uploads:
            shutil.rmtree(self.uploads_dir(stack), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.lock_path(stack).unlink()
