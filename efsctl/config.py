"""Global settings: stack name, AWS target options and where state lives.

Pure data and validation; no AWS or network access here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from efsctl.errors import ConfigError

STACK_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,20}$")
DEFAULT_STACK = "default"


def validate_stack_name(name: str) -> str:
    if not STACK_NAME_RE.fullmatch(name or ""):
        raise ConfigError(
            f"Invalid stack name {name!r}: use 1-21 characters, lower-case letters, digits and '-', "
            "starting with a letter (for example 'prod' or 'team-a')."
        )
    return name


def efsctl_home() -> Path:
    """``$EFSCTL_HOME``, else ``$XDG_STATE_HOME/efsctl``, else ``~/.local/state/efsctl``."""
    explicit = os.environ.get("EFSCTL_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "efsctl"


@dataclass(frozen=True)
class Settings:
    """What the global options resolved to. ``None`` means "as boto3 would resolve it"."""

    stack: str = DEFAULT_STACK
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    debug: bool = False
    home: Path | None = None

    @property
    def state_home(self) -> Path:
        return self.home if self.home is not None else efsctl_home()


# The local cloud accepts any credentials; these fixed ones are what efsctl signs with there
# (and what the local execute-api gateway verifies). They open nothing on AWS.
LOCAL_CREDENTIALS = {"aws_access_key_id": "efsctllocal", "aws_secret_access_key": "efsctllocal"}
LOCAL_REGION = "us-east-1"
