"""The package's import graph (issue 27.3): no cycles, no arrow from a lower layer up to a higher one, and
no import inside a function unless it is listed below with its reason.

Every import of an inpca module by another, at module level and inside functions (a deferred import is
still an arrow), is read from the source with ast. Imports under ``if TYPE_CHECKING:`` are left out (they
never run). A package importing its own submodules and a submodule its package are one unit and not an
arrow: Python imports a package before its submodules anyway."""

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


def imports_of(name: str, path: Path, known: dict[str, Path], deferred_only: bool = False,
               related_too: bool = False) -> dict[str, int]:
    """The inpca modules `name` imports anywhere in its source -> the first line that does; with
    `deferred_only`, only the imports inside functions; with `related_too`, its package's modules too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}

    def add(target: str | None, line: int) -> None:
        while target and target not in known:  # `from x import name`: the module x
            target = target.rpartition(".")[0]
        related = target and (target.startswith(name + ".") or name.startswith(target + "."))
        if target and target != name and (related_too or not related):
            found.setdefault(target, line)

    def visit(node: ast.AST, in_function: bool = False) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other, inside)
                continue
            if deferred_only and not inside:
                visit(child, inside)
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
            visit(child, inside)

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
    assert "inpca.atlas.live" in graph["inpca.record"]  # inside Recorder._use_atlas
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


# Imports inside functions, each with why it cannot be at the top of its module: every one keeps a heavy
# or optional library out of a module that is imported without needing it. Anything else is imported at
# the top, where a reader sees what a module depends on.
DEFERRED = {
    ("inpca.atlas", "inpca.atlas.pruner"): "optuna is an optional extra: loaded when AtlasPruner is asked for",
    ("inpca.kernels", "inpca.kernels.cpu"): "numba: only the kernel a job uses is loaded",
    ("inpca.kernels", "inpca.kernels.torch_blocked"): "torch: only the kernel a job uses is loaded",
    ("inpca.kernels", "inpca.kernels.triton_gpu"): "triton exists only on GPU machines",
    ("inpca.trajectories", "inpca.kernels.geodesic_cpu"): "numba: the GPU path interpolates in torch",
    ("inpca.record", "inpca.atlas"): "the atlas (scikit-learn, scipy, pandas) loads only for a Recorder given one",
    ("inpca.record", "inpca.atlas.live"): "the atlas (scikit-learn, scipy, pandas) loads only for a Recorder given one",
    ("inpca.record", "inpca.models"): "models imports torch; `import inpca.record` does not",
    ("inpca.train", "inpca.models"): "models imports torch; `import inpca.train` (the workflow's jobs' helpers) does not",
    ("inpca.atlas.atlas", "inpca.embedding_file"): "scikit-learn loads with the first embedding: `import inpca.atlas` "
                                                   "and `python -m inpca.atlas --help` stay quick",
    ("inpca.analysis.claims", "inpca.embedding"): "scikit-learn (0.75 s a job) loads only for the map of whole "
                                                  "trajectories; the other analysis jobs do without it",
    ("inpca.analysis.claims", "inpca.landmarks"): "scikit-learn, as above",
    ("inpca.tiles", "inpca.landmarks"): "landmarks loads scikit-learn; reading tiles (inpca.results.load) does not need it",
}

# Layers, lowest first: a module may import its own layer and those below, never one above. The base is
# what the workflow's parse and every other module use; the products are what users call.
LAYERS = {
    "base": ("inpca.folders", "inpca.errors", "inpca.files", "inpca.schedule", "inpca.resources", "inpca.config",
             "inpca.devices", "inpca.logs", "inpca.recordings", "inpca.study", "inpca.configurations",
             "inpca.figures", "inpca.kernels", "inpca.kernels.layout", "inpca.kernels.simd"),
    "computation": (),  # every module not named in another layer
    "products": ("inpca.analysis", "inpca.plots", "inpca.atlas", "inpca.adapters", "inpca.record", "inpca.results",
                 "inpca.testing"),
}
# Products that stand beside each other: the paper's analysis and the atlas share only what is below them.
APART = [("inpca.atlas", "inpca.analysis"), ("inpca.analysis", "inpca.atlas"), ("inpca.plots", "inpca.analysis"),
         ("inpca.plots", "inpca.atlas")]


def layer_of(module: str) -> int:
    names = list(LAYERS)
    for i, name in enumerate(names):
        if any(module == m or (name == "products" and module.startswith(m + ".")) for m in LAYERS[name]):
            return i
    return names.index("computation")


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_no_arrow_goes_up_a_layer():
    graph = import_graph()
    up = [f"{a} ({list(LAYERS)[layer_of(a)]}) -> {b} ({list(LAYERS)[layer_of(b)]}), line {line}"
          for a in sorted(graph) for b, line in sorted(graph[a].items()) if layer_of(b) > layer_of(a)]
    assert not up, "arrows up a layer:\n" + "\n".join(up)


def test_the_atlas_and_the_papers_analysis_do_not_import_each_other():
    graph = import_graph()
    crossing = [f"{a} -> {b}, line {line}" for a in sorted(graph) for b, line in sorted(graph[a].items())
                for x, y in APART if within(a, x) and within(b, y)]
    assert not crossing, "\n".join(crossing)


def test_imports_inside_functions_are_only_the_listed_ones():
    known = modules()
    found = {(name, target): line for name, path in known.items()
             for target, line in imports_of(name, path, known, deferred_only=True, related_too=True).items()}
    unlisted = [f"{known[a].relative_to(PACKAGE.parent)}:{line}: {a} imports {b} inside a function"
                for (a, b), line in sorted(found.items()) if (a, b) not in DEFERRED]
    assert not unlisted, ("import these at the top of the module, or list them in DEFERRED with the reason:\n"
                          + "\n".join(unlisted))
    assert sorted(set(DEFERRED) - set(found)) == [], "DEFERRED lists imports that are no longer deferred"


def test_the_layers_name_only_modules_that_exist():
    known = modules()
    assert [m for layer in LAYERS.values() for m in layer if m not in known] == []


def test_no_module_imports_another_modules_private_names():
    """A name another module needs is public where it is defined; a leading underscore means this module
    only (a package may still hand its submodules' private names to its tests, not to other modules)."""
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("inpca")):
                found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {'.' * node.level}{node.module} "
                          f"import {alias.name}" for alias in node.names
                          if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not found, "\n".join(found)
