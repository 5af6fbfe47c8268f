"""HTTP API route selection: ``METHOD /path`` keys, ``{name}`` and greedy ``{name+}`` variables.

API Gateway picks the most specific match: a literal segment beats a variable, a variable beats
a greedy variable, a method beats ``ANY``, and ``$default`` catches what nothing else does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_VAR = re.compile(r"^\{([A-Za-z0-9._-]+)(\+?)\}$")


@dataclass(frozen=True)
class CompiledRoute:
    method: str                # GET, POST, ..., or ANY; "" for $default
    regex: re.Pattern[str] | None
    names: tuple[str, ...]
    rank: tuple[int, int, int, int]   # smaller is more specific


@dataclass(frozen=True)
class RouteMatch:
    route: dict[str, Any]
    path_parameters: dict[str, str]


@lru_cache(maxsize=512)
def compile_key(route_key: str) -> CompiledRoute:
    if route_key == "$default":
        return CompiledRoute("", None, (), (2, 0, 0, 1))
    method, _, path = route_key.partition(" ")
    parts, names, literals, greedy = [], [], 0, 0
    for segment in path.strip("/").split("/") if path.strip("/") else []:
        var = _VAR.match(segment)
        if var is None:
            parts.append(re.escape(segment))
            literals += 1
        elif var.group(2):
            parts.append(f"(?P<v{len(names)}>.+)")
            names.append(var.group(1))
            greedy += 1
        else:
            parts.append(f"(?P<v{len(names)}>[^/]+)")
            names.append(var.group(1))
    regex = re.compile("^/" + "/".join(parts) + "$")
    segments = len(parts)
    return CompiledRoute(method.upper(), regex, tuple(names),
                         (1 if greedy else 0, -literals, -segments, 1 if method.upper() == "ANY" else 0))


def match(routes: list[dict[str, Any]], method: str, path: str) -> RouteMatch | None:
    """The route for ``method`` and the decoded ``path``, or None (API Gateway's 404)."""
    best: tuple[tuple[int, int, int, int], dict[str, Any], dict[str, str]] | None = None
    for route in routes:
        compiled = compile_key(route["key"])
        if compiled.regex is None:
            params: dict[str, str] = {}
        else:
            if compiled.method not in ("ANY", method.upper()):
                continue
            found = compiled.regex.match(path)
            if found is None:
                continue
            params = {name: found.group(f"v{i}") for i, name in enumerate(compiled.names)}
        if best is None or compiled.rank < best[0]:
            best = (compiled.rank, route, params)
    return None if best is None else RouteMatch(best[1], best[2])
