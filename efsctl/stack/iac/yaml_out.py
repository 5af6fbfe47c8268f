"""A CloudFormation template (JSON-form data) written as YAML with short-form intrinsics and comments.

Written by hand because PyYAML, the YAML library already installed, cannot emit comments, and
the template says why each DependsOn is there. The subset is small: block mappings and
sequences, scalars (quoted as JSON, which YAML reads the same, unless plainly safe), and the
intrinsic functions as tags (``{"Ref": "Vpc"}`` -> ``!Ref Vpc``).
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any, Mapping

TAGS = {"Ref": "!Ref", "Fn::GetAtt": "!GetAtt", "Fn::Sub": "!Sub", "Fn::Select": "!Select", "Fn::GetAZs": "!GetAZs",
        "Fn::Cidr": "!Cidr", "Fn::Join": "!Join", "Fn::Split": "!Split"}
_PLAIN = re.compile(r"^[A-Za-z$/][A-Za-z0-9_.:/$*+-]*$")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
_PLAIN_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
WIDTH = 110

Path = tuple[Any, ...]


class Comments:
    """Comment lines before a node (``before``) and after a scalar (``after``), by path."""

    def __init__(self) -> None:
        self.before: dict[Path, list[str]] = {}
        self.after: dict[Path, str] = {}


def scalar(value: Any, flow: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    # In a flow sequence PyYAML (YAML 1.1) reads a colon as a mapping indicator: quote it there.
    if _PLAIN.match(text) and text.lower() not in _RESERVED and not text.endswith(":") and not (flow and ":" in text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) else json.dumps(key)


def _intrinsic(value: Any) -> tuple[str, Any] | None:
    if isinstance(value, Mapping) and len(value) == 1:
        name = next(iter(value))
        if name in TAGS:
            arg = value[name]
            if name == "Fn::GetAtt" and isinstance(arg, list) and all(isinstance(a, str) for a in arg):
                arg = ".".join(arg)
            return TAGS[name], arg
    return None


def inline(value: Any, flow: bool = False) -> str | None:
    """The value on one line, or ``None`` if it needs a block."""
    tagged = _intrinsic(value)
    if tagged is not None:
        body = inline(tagged[1], flow)
        return None if body is None else f"{tagged[0]} {body}"
    if isinstance(value, Mapping):
        return "{}" if not value else None
    if isinstance(value, (list, tuple)):
        items = [inline(v, flow=True) for v in value]
        if any(i is None for i in items):
            return None
        text = f"[{', '.join(items)}]"  # type: ignore[arg-type]
        return text if len(text) <= 60 else None
    return scalar(value, flow)


def dump(document: Mapping[str, Any], comments: Comments | None = None) -> str:
    lines: list[str] = []
    _mapping(document, 0, (), lines, comments or Comments())
    return "\n".join(lines) + "\n"


def _mapping(value: Mapping[str, Any], indent: int, path: Path, lines: list[str], comments: Comments) -> None:
    for key, item in value.items():
        _node(f"{_key(key)}:", item, indent, (*path, key), lines, comments)


def _sequence(value: list[Any], indent: int, path: Path, lines: list[str], comments: Comments) -> None:
    for number, item in enumerate(value):
        _node("-", item, indent, (*path, number), lines, comments)


def _node(lead: str, value: Any, indent: int, path: Path, lines: list[str], comments: Comments) -> None:
    pad = " " * indent
    for comment in comments.before.get(path, []):
        lines.extend(textwrap.wrap(comment, WIDTH, initial_indent=f"{pad}# ", subsequent_indent=f"{pad}# ")
                     if comment else [""])
    # A sequence whose items carry comments goes one item a line, so each comment sits beside its item.
    commented = isinstance(value, (list, tuple)) and any((*path, i) in comments.after for i in range(len(value)))
    one_line = None if commented else inline(value)
    if one_line is not None and len(pad) + len(lead) + len(one_line) < WIDTH:
        after = comments.after.get(path)
        lines.append(f"{pad}{lead} {one_line}" + (f"  # {after}" if after else ""))
        return
    tagged = _intrinsic(value)
    if tagged is not None:
        lead, value = f"{lead} {tagged[0]}", tagged[1]
    if isinstance(value, Mapping) and lead == "-":
        # ``- Key: value`` with the rest of the mapping under the first key.
        start = len(lines)
        _mapping(value, indent + 2, path, lines, comments)
        lines[start] = f"{pad}- {lines[start].lstrip()}"
        return
    lines.append(f"{pad}{lead}")
    if isinstance(value, Mapping):
        _mapping(value, indent + 2, path, lines, comments)
    elif isinstance(value, (list, tuple)):
        _sequence(list(value), indent + 2, path, lines, comments)
    else:
        lines[-1] += f" {scalar(value)}"
