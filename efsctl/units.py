"""One unit system for everything efsctl prints: IEC sizes (KiB, MiB, GiB), rates per second,
and durations. Pure functions, standard library only."""

from __future__ import annotations

import math

IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: int | float | None) -> str:
    """``1536`` -> ``1.5 KiB``; bytes as a whole number below 1 KiB; ``?`` when unknown."""
    if n is None:
        return "?"
    value = float(n)
    for unit in IEC:
        if abs(value) < 1024 or unit == IEC[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def human_rate(bytes_per_second: float | None) -> str:
    if bytes_per_second is None or not math.isfinite(bytes_per_second):
        return "?/s"
    return f"{human_bytes(bytes_per_second)}/s"


def human_duration(seconds: float | None) -> str:
    """``0.42`` -> ``0.4s``, ``75`` -> ``1m15s``, ``3725`` -> ``1h02m05s``."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def transfer_summary(size: int, seconds: float) -> str:
    """What a finished transfer line says: ``1.5 GiB in 13.6s, 113.0 MiB/s``."""
    rate = size / seconds if seconds > 0 else None
    return f"{human_bytes(size)} in {human_duration(seconds)}, {human_rate(rate)}"


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024 ** 2, "mb": 1024 ** 2,
               "mib": 1024 ** 2, "g": 1024 ** 3, "gb": 1024 ** 3, "gib": 1024 ** 3, "t": 1024 ** 4,
               "tb": 1024 ** 4, "tib": 1024 ** 4}


def parse_size(text: str) -> int:
    """``64MiB``, ``1.5 GiB``, ``512k``, ``4096`` -> bytes; every unit is a power of 1024 (efsctl
    prints IEC sizes, so it reads them the same way). Raises ``ValueError`` for anything else."""
    import re

    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text or "")
    unit = match.group(2).lower() if match else None
    if not match or unit not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size like 64MiB, 1.5GiB or 4096")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])
