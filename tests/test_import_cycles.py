"""No import cycles between rlreason's modules, lazy (function-level) imports included; layers that
only point down; a function-level import of an rlreason module only with a reason.

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

Layers: the components (`policy`, `rewards`, `algos`, `verify`, `tasks`) import nothing from what is
built on them (`train`, evaluation, the commands, `config`, which builds the components to validate
them). A function-level import of an rlreason module is allowed only to defer a heavy dependency, and
then says so in a comment on its line (`# noqa: ...` alone is no reason).
"""

from __future__ import annotations

import ast
import io
import itertools
import re
import tokenize
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


COMPONENTS = ("rlreason.policy", "rlreason.rewards", "rlreason.algos", "rlreason.verify", "rlreason.tasks")
ABOVE_COMPONENTS = (
    "rlreason.train",
    "rlreason.evaluate",
    "rlreason.evaluator",
    "rlreason.eval_command",
    "rlreason.cli",
    "rlreason.ablate",
    "rlreason.config",
    "rlreason.components",
)


def _in(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def upward_imports(root: Path = ROOT) -> list[str]:
    """`file:line imports module` for every import (any depth) from a component into a layer above it."""
    graph, files = import_graph(root), module_files(root)
    return [
        f"{files[a].relative_to(root.parent)}:{line} imports {b}"
        for a, out in graph.items()
        if _in(a, COMPONENTS)
        for b, line in out.items()
        if _in(b, ABOVE_COMPONENTS)
    ]


def _comments(source: str) -> dict[int, str]:
    """line -> the text of the comment on it."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.start[0]: t.string for t in tokens if t.type == tokenize.COMMENT}


def _is_reason(comment: str) -> bool:
    """A comment that says something besides `noqa` (`# noqa: F401  (registers ...)` does)."""
    text = re.sub(r"noqa(:\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*)?", "", comment.lstrip("#"))
    return bool(text.strip(" ()"))


def unexplained_local_imports(root: Path = ROOT) -> list[str]:
    """`file:line` of each import of an rlreason module inside a function with no reason comment on its
    lines."""
    files = module_files(root)
    names = set(files)
    out = []
    for module, path in files.items():
        source = path.read_text(encoding="utf-8")
        comments = _comments(source)
        for fn in ast.walk(ast.parse(source, str(path))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)) or not _imported(module, path, node, names):
                    continue
                lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
                if not any(_is_reason(comments[n]) for n in lines if n in comments):
                    out.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return sorted(set(out))  # a nested function's import is walked from each enclosing function


def test_components_import_nothing_above_them():
    """policy/, rewards/, algos/, verify/, tasks/ never import train/, evaluation, the commands or config,
    at module level or inside a function: a model utility they need lives in policy/ or below."""
    found = upward_imports()
    assert not found, "move what they need down (e.g. into rlreason/policy/):\n" + "\n".join(found)


def test_function_local_imports_say_why():
    found = unexplained_local_imports()
    assert not found, (
        "import these at the top of the module; only an import deferring a heavy dependency stays in its "
        "function, with a one-line reason comment (an import cycle is fixed by moving the shared piece down):\n"
        + "\n".join(found)
    )


def test_the_layer_checks_see_local_relative_and_commented_imports(tmp_path):
    """On a package made up here: an upward import inside a function and a relative one are both found;
    a local import with no comment, or only `# noqa`, is flagged; one with a reason is not."""
    pkg = tmp_path / "rlreason"
    for sub in ("policy", "train", "rewards"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "train" / "forward.py").write_text("def decoder_of(m):\n    return m\n")
    (pkg / "policy" / "rollout.py").write_text(
        "def f(m):\n    from rlreason.train.forward import decoder_of\n\n    return decoder_of(m)\n"
    )
    (pkg / "rewards" / "score.py").write_text(
        "from ..train import forward\n\n\n"
        "def g():\n    import rlreason.policy.rollout  # noqa: F401\n\n"
        "def h():\n    import rlreason.policy.rollout  # noqa: F401  (torch: slow to import)\n\n"
        "def k():\n    import json  # not an rlreason module\n"
    )
    assert upward_imports(pkg) == [
        "rlreason/policy/rollout.py:2 imports rlreason.train.forward",
        "rlreason/rewards/score.py:1 imports rlreason.train.forward",
    ]
    assert unexplained_local_imports(pkg) == ["rlreason/policy/rollout.py:2", "rlreason/rewards/score.py:5"]
