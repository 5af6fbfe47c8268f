"""Where a stack's drive endpoints are: API URL, bucket, functions and log groups.

``up`` records them as state outputs; when one is missing (an older state file, a state
rebuilt from tags) it is derived from the deterministic names DESIGN section 2 fixes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from efsctl.errors import ConfigError
from efsctl.stack.model import FUNCTIONS, Names
from efsctl.state import StackState


@dataclass
class DriveTarget:
    stack: str
    region: str
    is_local: bool
    api_url: str | None
    bucket: str
    functions: dict[str, str] = field(default_factory=dict)
    log_groups: dict[str, str] = field(default_factory=dict)

    def require_api_url(self) -> str:
        if not self.api_url:
            up = "efsctl up --local" if self.is_local else "efsctl up"
            raise ConfigError(f"Stack {self.stack!r} has no API URL recorded.",
                              f"Run `{up}` to finish creating it; it records the URL.")
        return self.api_url


def resolve_target(state: StackState, aws: Any) -> DriveTarget:
    """The drive target for ``state``; ``aws`` (an AwsContext) is asked only for what is missing."""
    outputs = state.outputs or {}
    region = state.region or aws.region
    names = Names(state.stack, state.account or "", region)  # the account matters only for the bucket
    functions = {fn: (outputs.get("functions") or {}).get(fn) or names.function(fn) for fn in FUNCTIONS}
    log_groups = {fn: (outputs.get("log_groups") or {}).get(fn) or names.log_group(fn) for fn in FUNCTIONS}
    bucket = outputs.get("bucket")
    if not bucket:
        bucket = Names(state.stack, state.account or aws.account_id(), region).bucket
    api_url = outputs.get("api_url") or (state.local.get("gateway_url") if state.is_local else None)
    return DriveTarget(stack=state.stack, region=region, is_local=state.is_local,
                       api_url=api_url, bucket=bucket, functions=functions,
                       log_groups=log_groups)


def api_client(target: DriveTarget, aws: Any, *, max_connections: int = 4):
    """A signed :class:`efsctl.drive.api.ApiClient` for the stack's API."""
    from efsctl.aws.sigv4 import Signer, ca_bundle
    from efsctl.drive.api import ApiClient

    url = target.require_api_url()
    signer = Signer.from_context(aws, target.region)
    return ApiClient(url, signer.sign, max_connections=max_connections,
                     ca_certs=ca_bundle(aws) if url.startswith("https:") else None)
