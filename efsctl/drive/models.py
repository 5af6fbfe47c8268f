"""``efsctl models``: the models on EFS, as the consumer sees them (``GET /models``)."""

from __future__ import annotations

from typing import Any

from efsctl.drive.api import ApiClient
from efsctl.drive.fmt import human_bytes, short_sha, when


def list_models(api: ApiClient) -> list[dict[str, Any]]:
    return fetch_models(api)[0]


def fetch_models(api: ApiClient) -> tuple[list[dict[str, Any]], bool]:
    """``(models, truncated)``: the consumer lists at most a few thousand and says when it stopped."""
    body = api.list_models().body
    body = body if isinstance(body, dict) else {}
    models = [m for m in (body.get("models") or []) if isinstance(m, dict)]
    return models, bool(body.get("truncated"))


def table_rows(models: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(str(m.get("name", "")), human_bytes(m.get("size")), short_sha(m.get("sha256")), when(m.get("modified")))
            for m in sorted(models, key=lambda m: str(m.get("name", "")))]
