"""The layering DESIGN section 0 fixes, read from the source: no import cycle anywhere under
efsctl/, and command modules reach the AWS layer and the local cloud only through the use cases.

Every import statement counts, at module level or inside a function (a lazy import still ties
two modules together), except those under ``if TYPE_CHECKING:``, which never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import efsctl

ROOT = Path(efsctl.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported(path: Path) -> set[str]:
    """The efsctl modules ``path`` imports (a ``from X import y`` names X.y when that is a module)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                for alias in child.names:
                    candidate = f"{child.module}.{alias.name}"
                    found.add(candidate if candidate in MODULES else child.module)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {name for name in found if name in MODULES}


GRAPH = {name: imported(path) - {name} for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph[node]):
            if dep not in index:
                strongconnect(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return found


def test_the_walk_sees_the_whole_package():
    assert {"efsctl.cli.commands.up", "efsctl.operations", "efsctl.stack.execute", "efsctl.local.daemon"} <= set(MODULES)
    assert "efsctl.stack.steps.base" in GRAPH["efsctl.stack.steps.network"]


def test_no_import_cycle_anywhere_under_efsctl():
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_command_modules_import_neither_the_aws_layer_nor_the_local_cloud():
    offenders = {name: sorted(dep for dep in deps if dep.startswith(("efsctl.aws", "efsctl.local")))
                 for name, deps in GRAPH.items() if name.startswith("efsctl.cli.commands")}
    assert {name: deps for name, deps in offenders.items() if deps} == {}


def test_only_the_aws_layer_and_the_local_cloud_import_boto3_or_botocore():
    def third_party(path: Path) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        return names

    offenders = sorted(name for name, path in MODULES.items()
                       if {"boto3", "botocore"} & third_party(path)
                       and not name.startswith(("efsctl.aws", "efsctl.local")))
    assert offenders == []
