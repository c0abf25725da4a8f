"""The package's import graph has no cycles (issue 27.3): every import of an inpca module by another, at
module level and inside functions (a deferred import is still an arrow), read from the source with ast.
Imports under ``if TYPE_CHECKING:`` are left out (they never run). A package importing its own submodules
and a submodule its package are one unit and not an arrow: Python imports a package before its
submodules anyway."""

from __future__ import annotations

import ast
from pathlib import Path

import inpca

PACKAGE = Path(inpca.__file__).resolve().parent

# Cycles known and not yet removed, as sets of modules. Keep this list empty; an entry needs a reason.
KNOWN_CYCLES: list[frozenset[str]] = []


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def imports_of(name: str, path: Path, known: dict[str, Path]) -> dict[str, int]:
    """The inpca modules `name` imports anywhere in its source -> the first line that does."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}

    def add(target: str | None, line: int) -> None:
        while target and target not in known:  # `from x import name`: the module x
            target = target.rpartition(".")[0]
        related = target and (target.startswith(name + ".") or name.startswith(target + "."))
        if target and target != name and not related:
            found.setdefault(target, line)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name, child.lineno)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - child.level + 1] + ([child.module] if child.module else []))
                else:
                    base = child.module
                for alias in child.names:  # `from . import x`: the submodule x when there is one
                    full = f"{base}.{alias.name}"
                    add(full if full in known else base, child.lineno)
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, dict[str, int]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    arrows = [f"{a} -> {b} (line {line})" for a in component for b, line in sorted(graph[a].items()) if b in component]
    return f"{', '.join(component)}: " + "; ".join(arrows)


def test_the_graph_sees_imports_at_module_level_and_inside_functions():
    graph = import_graph()
    assert "inpca.config" in graph["inpca.study"]  # module level
    assert "inpca.store" in graph["inpca.imports"]  # inside import_run
    assert "inpca.block_eigen" in graph["inpca.embedding"]  # inside InPCA._fit_block
    assert graph["inpca"] == {}  # the public API is imported lazily, by name


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    found = [c for c in cycles(graph) if frozenset(c) not in KNOWN_CYCLES]
    assert not found, "import cycles:\n" + "\n".join(describe(c, graph) for c in found)


def test_the_known_cycles_are_still_there():
    """A known cycle that is gone leaves KNOWN_CYCLES, so that it cannot come back unnoticed."""
    current = {frozenset(c) for c in cycles(import_graph())}
    assert [sorted(c) for c in KNOWN_CYCLES if c not in current] == []
