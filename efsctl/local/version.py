"""The local cloud's version: a running process is reused only by the same efsctl and moto."""

from __future__ import annotations

from efsctl import __version__

PROTOCOL = 2   # bump when the daemon's arguments, ready file or control paths change (2: persisted state)

# How the daemon says why it did not start (its exit status; the CLI reads it).
EXIT_INCOMPATIBLE = 3      # the saved state was written by another moto/Python/format
EXIT_LOCKED = 4            # another process serves this data directory
EXIT_DAMAGED = 5           # the saved state could not be read back (left as it is)


def moto_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("moto")
    except PackageNotFoundError:
        return "unknown"


def cloud_version() -> str:
    return f"efsctl-{__version__}/moto-{moto_version()}/p{PROTOCOL}"
