"""docs/algorithms.md stays in step with the code: every built-in algorithm and reward has a section
named as registered, every docstring pointer `docs/algorithms.md#anchor` (in any rlreason module) and
every in-page link names a heading that exists, and each component's docstring points to its section."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pytest

import rlreason.components  # noqa: F401  (registers the built-in components, as the CLI does)
from rlreason.registry import ALGOS, REWARDS

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "algorithms.md"
POINTER = re.compile(r"docs/algorithms\.md#([A-Za-z0-9_-]+)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a markdown text (outside code blocks), repeated headings numbered as GitHub does."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"#{1,6} (.+)", line)
        if match:
            base = slug(match.group(1))
            out.add(base if base not in seen else f"{base}-{seen[base]}")
            seen[base] = seen.get(base, 0) + 1
    return out


def builtin(registry) -> list[str]:
    """Names of the components rlreason itself registers (entry-point plugins document themselves)."""
    return [n for n in registry.names() if registry.get(n).__module__.startswith("rlreason.")]


def docstrings(name: str, registry) -> str:
    obj = registry.get(name)
    return (inspect.getdoc(obj) or "") + "\n" + (inspect.getdoc(sys.modules[obj.__module__]) or "")


DOC_ANCHORS = anchors(DOC.read_text())


def test_anchor_rules_match_github():
    assert slug("`l2t_ppo`") == "l2t_ppo"
    assert slug("The length family") == "the-length-family"
    assert anchors("## a\n```\n## not a heading\n```\n## a\n") == {"a", "a-1"}


@pytest.mark.parametrize("kind,registry", [("algorithm", ALGOS), ("reward", REWARDS)])
def test_every_registered_component_has_a_section(kind, registry):
    names = builtin(registry)
    assert names, f"no built-in {kind} registered"
    missing = [n for n in names if n not in DOC_ANCHORS]
    assert not missing, f"docs/algorithms.md has no section for {kind}(s) {missing}"


@pytest.mark.parametrize("kind,registry", [("algorithm", ALGOS), ("reward", REWARDS)])
def test_every_component_docstring_points_to_its_section(kind, registry):
    lacking = [n for n in builtin(registry) if n not in POINTER.findall(docstrings(n, registry))]
    assert not lacking, f"{kind} docstrings without a pointer docs/algorithms.md#<name>: {lacking}"


def test_every_pointer_in_the_code_names_an_existing_anchor():
    pointers = [
        (str(path.relative_to(ROOT)), anchor)
        for path in sorted((ROOT / "rlreason").rglob("*.py"))
        for anchor in POINTER.findall(path.read_text())
    ]
    assert len(pointers) >= len(builtin(ALGOS)) + len(builtin(REWARDS))
    dangling = [(f, a) for f, a in pointers if a not in DOC_ANCHORS]
    assert not dangling, f"pointers to anchors docs/algorithms.md does not have: {dangling}"


def test_every_in_page_link_names_an_existing_anchor():
    links = re.findall(r"\]\(#([^)]+)\)", DOC.read_text())
    assert links
    assert not [a for a in links if a not in DOC_ANCHORS]
