"""Small formatting helpers shared by the drive commands' human output."""

from __future__ import annotations

import datetime as dt
from typing import Any


def short_sha(sha: Any, n: int = 12) -> str:
    return f"{sha[:n]}…" if isinstance(sha, str) and len(sha) > n else str(sha or "")


def when(value: Any) -> str:
    """A timestamp from the API (epoch seconds or ms, or an ISO string) as local ISO time."""
    if isinstance(value, (int, float)):
        seconds = value / 1000.0 if value > 1e11 else float(value)
        return dt.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")
    return "" if value is None else str(value)


def ms(value: Any) -> str:
    if value is None:
        return "?"
    return f"{value:.1f} ms" if isinstance(value, float) and value < 100 else f"{value:.0f} ms"
