"""Fidelity patches: where moto differs from AWS in ways this system depends on.

Each patch lives in its own small module in this package and exports ``PATCH``, a :class:`Patch`
naming the moto internals it replaces (``targets``, checked by the contract test so that a moto
upgrade that moves one fails loudly) and an ``install(ctx, patcher)`` function. The registry
(:data:`MODULES`) fixes the order; a patch may be limited to some realism profiles.

To add one: write ``efsctl/local/fidelity/<name>.py`` with ``PATCH = Patch(...)``, append the
module name to :data:`MODULES`, and test it against the local cloud.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

MODULES = [
    "lambda_invoke",          # the local Lambda runtime replaces moto's Docker executor
    "s3_events",              # S3 event records as AWS builds them, delivered asynchronously
    "s3_bodies",              # S3 bodies on disk, streamed; one event per multipart upload
    "access_point_ids",       # access point ids of AWS's shape (fsap- + 17 hex)
    "aws_policy_ids",         # AWS managed policies keep one id (moto draws a new one per load)
    "function_filesystems",   # FileSystemConfigs kept, returned and validated
    "bucket_policy",          # bucket-policy conditions evaluated (TLS-only policies)
    "iam_enforcement",        # role sessions held to their policies; what each role used, recorded
    "function_config",        # Architectures (and every field efsctl sets) round-trip through updates
    # AWS's rules and delays (issue 8): states follow the profile's timeline (timeline.py)
    "api_calls",              # due transitions applied before each call; optional throttling
    "efs_lifecycle",          # file systems, mount targets, access points creating/deleting
    "vpc_dependencies",       # DependencyViolation for groups/subnets/VPCs in use; endpoints pending
    "lambda_permissions",     # duplicate statement ids refused; statement ages kept
    "lambda_lifecycle",       # role propagation and trust, Pending, one update at a time
    "lambda_enis",            # a VPC function's interfaces, lingering after release; real VpcId
    "s3_notifications",       # destinations S3 may not invoke (yet) and ambiguous rules refused
    "persistence",            # durability (issue 12): changes reported to the persister
]

ALL_PROFILES = frozenset({"instant", "aws"})
_INHERITED = object()


@dataclass(frozen=True)
class Target:
    """A moto internal a patch relies on: ``module:Qual.name`` and the parameters it must take."""

    path: str
    params: tuple[str, ...] | None = None

    def resolve(self) -> Any:
        module_name, _, qualname = self.path.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj

    def check(self) -> str | None:
        """None if the target is where and what we expect, else what moved."""
        try:
            obj = self.resolve()
        except (ImportError, AttributeError) as exc:
            return f"{self.path} is gone ({exc})"
        if self.params is not None:
            try:
                found = tuple(inspect.signature(obj).parameters)
            except (TypeError, ValueError) as exc:
                return f"{self.path} has no signature ({exc})"
            if found != self.params:
                return f"{self.path} takes {found}, expected {self.params}"
        return None


@dataclass
class PatchContext:
    """What patches may use: the runtime, the async invoker, the clock, where data lives and the
    persister (None when nothing is persisted, as in tests of single patches)."""

    account_id: str
    region: str
    profile: str = "instant"
    clock: Any = None
    runtime: Any = None
    invoker: Any = None
    deferral: Any = None
    data_dir: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    on_stop: list[Callable[[], None]] = field(default_factory=list)   # run when the cloud stops
    persist: Any = None

    def stop(self) -> None:
        for action in reversed(self.on_stop):
            action()


@dataclass(frozen=True)
class Patch:
    name: str
    summary: str
    targets: tuple[Target, ...]
    install: Callable[[PatchContext, "Patcher"], None]
    profiles: frozenset[str] = ALL_PROFILES


class Patcher:
    """Replaces attributes and remembers the originals, so patches can be undone (tests)."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def replace(self, owner: Any, name: str, new: Any) -> Any:
        own = name in vars(owner)
        original = vars(owner)[name] if own else getattr(owner, name, None)
        self._saved.append((owner, name, original if own else _INHERITED))
        setattr(owner, name, new)
        return original

    def wrap(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        """Replace ``owner.name`` by ``make(original)``."""
        original = getattr(owner, name)
        self.replace(owner, name, make(original))

    def undo(self) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            if original is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def registry() -> list[Patch]:
    return [importlib.import_module(f"{__name__}.{m}").PATCH for m in MODULES]


def install(ctx: PatchContext, names: list[str] | None = None) -> Patcher:
    """Install the registered patches that apply to ``ctx.profile`` (or only ``names``)."""
    patcher = Patcher()
    for patch in registry():
        if names is not None and patch.name not in names:
            continue
        if ctx.profile in patch.profiles:
            patch.install(ctx, patcher)
    return patcher
