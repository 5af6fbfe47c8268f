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
