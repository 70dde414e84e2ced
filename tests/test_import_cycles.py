"""No import cycles between rlreason's modules, lazy (function-level) imports included.

A cycle hidden behind an import inside a function still couples the two modules both ways (each
needs the other to work) and only runs at an awkward moment; `rlreason eval` used to go cli ->
evaluate -> train.run -> evaluate through one. The graph is built from the source with `ast`, not by
importing anything, so every `import` statement counts: module level, inside functions, under
`if`/`try`.

How an import names a module:

- `import rlreason.a.b` -> `rlreason.a.b`;
- `from rlreason.a import b` -> `rlreason.a.b` when that is a module, else `rlreason.a` (b is a name
  defined in `rlreason/a.py` or `rlreason/a/__init__.py`); relative imports are resolved first;
- parent packages: importing `rlreason.a.b` adds no edge to the package `rlreason.a`, although Python
  runs `rlreason/a/__init__.py` first. A package's `__init__` re-exports its submodules, so counting
  it would put it in a cycle with every submodule that imports a sibling; what a module *uses* is the
  submodule. An import of a name from the package itself (`from rlreason.a import x`) does reach the
  `__init__` and counts.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "rlreason"

# Known cycles, each as one import edge (importer, imported) whose removal breaks it, with who fixes
# it. The lead empties this; an entry whose edge is gone or no longer closes a cycle fails the test.
KNOWN_CYCLES: dict[tuple[str, str], str] = {
}


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module under `root` (a package is its `__init__`)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: set[str]) -> list[str]:
    """The rlreason modules one import statement names (rules in the module docstring)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    if node.level:  # relative: from the importing module's package, `level - 1` packages up
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in modules:
            out.append(sub)
        elif base in modules:
            out.append(base)
    return out


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """importer -> {imported module: line of its first import} over every import statement."""
    files = module_files(root)
    names = set(files)
    graph: dict[str, dict[str, int]] = {}
    for module, path in files.items():
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _imported(module, path, node, names):
                    if target != module:
                        edges.setdefault(target, node.lineno)
        graph[module] = dict(sorted(edges.items(), key=lambda kv: kv[1]))
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (each holds a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; depth is bounded by the number of modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def a_cycle(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """One shortest cycle through the component's first module: [m0, m1, ..., m0]."""
    start, members = component[0], set(component)
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in graph[v]:
            if w == start:
                path = [v]  # v, its BFS parent, ..., start
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if w in members and w not in parent:
                parent[w] = v
                queue.append(w)
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - a component always has one


def describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    files = module_files()
    hops = [f"  {a} ({files[a].relative_to(ROOT.parent)}:{graph[a][b]}) -> {b}" for a, b in itertools.pairwise(cycle)]
    return "\n".join(hops)


def without(graph: dict[str, dict[str, int]], edges: set[tuple[str, str]]) -> dict[str, dict[str, int]]:
    return {a: {b: line for b, line in out.items() if (a, b) not in edges} for a, out in graph.items()}


def test_no_import_cycles():
    graph = without(import_graph(), set(KNOWN_CYCLES))
    components = strongly_connected(graph)
    assert not components, "import cycles (one per group of entangled modules; file:line of each import):\n" + (
        "\n\n".join(f"{' '.join(c)}:\n{describe(graph, a_cycle(graph, c))}" for c in components)
    )


def test_every_known_cycle_is_still_a_cycle():
    """An allow-list entry whose import is gone, or no longer closes a cycle, must be deleted."""
    graph = import_graph()
    together = {m: i for i, c in enumerate(strongly_connected(graph)) for m in c}
    stale = [
        (a, b)
        for a, b in KNOWN_CYCLES
        if b not in graph.get(a, {}) or a not in together or together.get(a) != together.get(b)
    ]
    assert not stale, f"remove from KNOWN_CYCLES (no longer a cycle): {stale}"


def test_the_graph_sees_lazy_relative_and_package_imports(tmp_path):
    """The rules of the module docstring on a package made up here: a lazy import inside a function
    closes a cycle, a relative `from . import` names the sibling module, and importing a submodule adds
    no edge to its parent package while importing a name from the package does."""
    pkg = tmp_path / "rlreason"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from rlreason.b import helper\n")
    (pkg / "b.py").write_text("def helper():\n    from rlreason import a\n    return a\n")
    (pkg / "sub" / "__init__.py").write_text("from rlreason.sub.leaf import x\nX = x\n")
    (pkg / "sub" / "leaf.py").write_text("x = 1\n")
    (pkg / "sub" / "other.py").write_text("from . import leaf\nfrom rlreason.sub import X\n")
    graph = import_graph(pkg)
    assert graph["rlreason.a"] == {"rlreason.b": 1}
    assert graph["rlreason.b"] == {"rlreason.a": 2}  # inside a function
    assert graph["rlreason.sub.leaf"] == {}  # no edge to its package
    assert graph["rlreason.sub.other"] == {"rlreason.sub.leaf": 1, "rlreason.sub": 2}
    assert strongly_connected(graph) == [["rlreason.a", "rlreason.b"]]
    assert a_cycle(graph, ["rlreason.a", "rlreason.b"]) == ["rlreason.a", "rlreason.b", "rlreason.a"]
