"""Paginated listing: every list/describe call in efsctl goes through :func:`paginate`."""

from __future__ import annotations

from typing import Any, Iterator


def paginate(client: Any, operation: str, result_key: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Yield every item under ``result_key`` across all pages of ``operation``."""
    if client.can_paginate(operation):
        for page in client.get_paginator(operation).paginate(**params):
            yield from page.get(result_key, []) or []
    else:
        yield from getattr(client, operation)(**params).get(result_key, []) or []
