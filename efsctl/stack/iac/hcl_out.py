"""Terraform's native syntax (HCL) for the small subset a configuration needs, with comments.

Written by hand: python-hcl2 (the parser the tests use) can write HCL but drops comments, and
the configuration says why each ``depends_on`` is there. Output follows ``terraform fmt``:
two-space indents, ``=`` aligned across a run of one-line attributes.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

WIDTH = 110
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Raw:
    """An expression written as is: ``aws_vpc.vpc.id``, ``var.memory``."""

    text: str


@dataclass(frozen=True)
class Template:
    """A quoted string with interpolations: parts are literal text or :class:`Raw`."""

    parts: tuple[Any, ...]


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Commented:
    """A list written one item a line, each with a comment saying why it is there."""

    items: tuple[tuple[Any, str], ...]


@dataclass
class Attr:
    name: str
    value: Any
    comment: str = ""  # at the end of the line (one-line values) or above


@dataclass
class Block:
    type: str
    labels: tuple[str, ...] = ()
    body: list[Any] = field(default_factory=list)  # Attr, Block, Comment, Blank
    comment: Sequence[str] = ()


@dataclass(frozen=True)
class Comment:
    text: str


BLANK = Comment("\0")


def quote(text: str) -> str:
    body = json.dumps(text, ensure_ascii=False)[1:-1]
    return '"' + body.replace("${", "$${").replace("%{", "%%{") + '"'


def value(item: Any, indent: int = 0) -> str:
    """``item`` as an HCL expression; nested objects and long lists span lines at ``indent``."""
    if isinstance(item, Raw):
        return item.text
    if isinstance(item, Template):
        return '"' + "".join(f"${{{p.text}}}" if isinstance(p, Raw) else quote(p)[1:-1] for p in item.parts) + '"'
    if isinstance(item, Commented):
        pad = " " * (indent + 2)
        return "[\n" + "".join(f"{pad}{value(v, indent + 2)}, # {why}\n" for v, why in item.items) + " " * indent + "]"
    if isinstance(item, Call):
        return f"{item.name}(" + ", ".join(value(a, indent) for a in item.args) + ")"
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, (int, float)):
        return str(item)
    if isinstance(item, str):
        return quote(item)
    if isinstance(item, Mapping):
        if not item:
            return "{}"
        pad = " " * (indent + 2)
        return "{\n" + "\n".join(_aligned([(_key(k), value(v, indent + 2)) for k, v in item.items()], pad)) + \
            "\n" + " " * indent + "}"
    if isinstance(item, (list, tuple)):
        items = [value(v, indent + 2) for v in item]
        one_line = "[" + ", ".join(items) + "]"
        if "\n" not in one_line and len(one_line) + indent < 100:
            return one_line
        pad = " " * (indent + 2)
        return "[\n" + "".join(f"{pad}{i},\n" for i in items) + " " * indent + "]"
    raise TypeError(f"no HCL for {item!r}")


def _key(key: str) -> str:
    return key if _IDENT.match(key) and key not in ("true", "false", "null") else quote(key)


def _aligned(pairs: list[tuple[str, str]], pad: str, comments: Sequence[str] = ()) -> list[str]:
    """``name = value`` lines, ``=`` aligned over each run of one-line values (as ``terraform fmt``)."""
    lines: list[str] = []
    comments = list(comments) or [""] * len(pairs)
    run: list[int] = []

    def flush() -> None:
        width = max((len(pairs[i][0]) for i in run), default=0)
        for i in run:
            name, text = pairs[i]
            lines.append(f"{pad}{name.ljust(width)} = {text}" + (f" # {comments[i]}" if comments[i] else ""))
        run.clear()

    for i, (name, text) in enumerate(pairs):
        if "\n" in text:
            flush()
            if comments[i]:
                lines.append(f"{pad}# {comments[i]}")
            lines.append(f"{pad}{name} = {text}")
        else:
            run.append(i)
    flush()
    return lines


def _comment(text: str, pad: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=f"{pad}# ", subsequent_indent=f"{pad}# ") if text else [""]


def block(item: Block, indent: int = 0) -> list[str]:
    pad = " " * indent
    lines = [line for c in item.comment for line in _comment(c, pad)]
    labels = "".join(f" {quote(label)}" for label in item.labels)
    if not item.body:
        return lines + [f"{pad}{item.type}{labels} {{}}"]
    lines.append(f"{pad}{item.type}{labels} {{")
    attrs: list[Attr] = []

    def flush() -> None:
        if attrs and lines[-1] == f"{pad}  }}":  # attributes after a nested block: a blank line between
            lines.append("")
        lines.extend(_aligned([(a.name, value(a.value, indent + 2)) for a in attrs], pad + "  ",
                              [a.comment for a in attrs]))
        attrs.clear()

    for entry in item.body:
        if isinstance(entry, Attr):
            attrs.append(entry)
            continue
        flush()
        if entry is BLANK:
            lines.append("")
        elif isinstance(entry, Comment):
            lines.extend(_comment(entry.text, pad + "  "))
        else:
            if lines[-1].strip() and not lines[-1].endswith("{"):
                lines.append("")
            lines.extend(block(entry, indent + 2))
    flush()
    lines.append(f"{pad}}}")
    return lines


def dump(items: Sequence[Any]) -> str:
    """Top-level blocks and comments, a blank line between blocks."""
    out: list[str] = []
    for entry in items:
        if isinstance(entry, Block):
            if out and out[-1] != "":
                out.append("")
            out.extend(block(entry))
        elif isinstance(entry, Comment):
            out.extend([""] if entry is BLANK else _comment(entry.text, ""))
    return "\n".join(out) + "\n"
