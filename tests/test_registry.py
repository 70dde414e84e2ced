"""Registry: registration, lookup errors, building with parameter checks, entry-point plugins."""

from __future__ import annotations

import sys
import textwrap

import pytest

from rlreason.errors import RegistryError
from rlreason.registry import Registry


def make_registry() -> Registry:
    reg = Registry("widgets")

    @reg.register("scaled")
    class Scaled:
        """Multiplies by a factor."""

        def __init__(self, factor: float = 2.0, offset: int = 0) -> None:
            self.factor, self.offset = factor, offset

    @reg.register("needs_arg")
    def needs_arg(size: int) -> dict:
        """A factory with a required parameter."""
        return {"size": size}

    return reg


def test_build_passes_parameters_and_defaults():
    reg = make_registry()
    obj = reg.build({"name": "scaled", "factor": 3.5})
    assert (obj.factor, obj.offset) == (3.5, 0)
    assert reg.build("needs_arg", size=4) == {"size": 4}  # framework-provided extra


def test_duplicate_name_is_an_error():
    reg = make_registry()
    with pytest.raises(RegistryError, match="'scaled' is already registered"):
        reg.register("scaled")(type("Other", (), {}))


def test_unknown_name_lists_valid_names_and_closest_match():
    reg = make_registry()
    with pytest.raises(RegistryError) as err:
        reg.build({"name": "scalled"}, where="reward")
    msg = str(err.value)
    assert "reward.name" in msg and "did you mean 'scaled'" in msg and "needs_arg, scaled" in msg
    assert "\n" not in msg


def test_unknown_parameter_is_rejected_by_name():
    reg = make_registry()
    with pytest.raises(RegistryError, match=r"algo\.factr: unknown parameter .*did you mean 'factor'"):
        reg.build({"name": "scaled", "factr": 1.0}, where="algo")


def test_missing_required_parameter():
    reg = make_registry()
    with pytest.raises(RegistryError, match="size: required"):
        reg.build({"name": "needs_arg"})


def test_describe_gives_doc_and_defaults():
    rows = {name: (doc, params) for name, doc, params in make_registry().describe()}
    doc, params = rows["scaled"]
    assert doc == "Multiplies by a factor."
    assert [(p.name, p.default) for p in params] == [("factor", 2.0), ("offset", 0)]
    assert rows["needs_arg"][1][0].required


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch):
    """A real distribution on sys.path declaring `rlreason.rewards` entry points."""
    pkg = tmp_path / "myplugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent('''
        class Constant:
            """Always the same reward."""
            def __init__(self, value: float = 0.5):
                self.value = value
    ''')
    )
    dist = tmp_path / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rlreason.widgets]\nconstant = myplugin:Constant\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = make_registry()
    assert "constant" in reg.names()
    assert reg.build({"name": "constant", "value": 0.25}).value == 0.25
    sys.modules.pop("myplugin", None)


def test_package_exports_the_registries_components_register_into():
    import rlreason
    import rlreason.components
    from rlreason import registry

    assert rlreason.REWARDS is registry.REWARDS and rlreason.ALGOS is registry.ALGOS
    assert {"binary", "sum"} <= set(rlreason.REWARDS) and {"grpo", "sft"} <= set(rlreason.ALGOS)
    assert "lab-arith" in rlreason.TASKS and "math" in rlreason.VERIFIERS


def test_check_judges_a_spec_without_building_it():
    built = []
    reg = Registry("widgets")

    @reg.register("counted")
    class Counted:
        def __init__(self, size: int, label: str = "x") -> None:
            built.append(size)

    assert reg.check({"label": "y", "name": "counted", "size": 3}) == {"name": "counted", "label": "y", "size": 3}
    assert reg.check("counted", provided=["size"]) == {"name": "counted"}  # a framework-provided argument
    assert built == []
    with pytest.raises(RegistryError, match=r"^task\.size: required by widget 'counted'$"):
        reg.check({"name": "counted"}, where="task")
    with pytest.raises(RegistryError, match=r"^task\.name: missing \(one of: counted\)$"):
        reg.check({"size": 1}, where="task")
    with pytest.raises(RegistryError, match=r"^task: expected a mapping with 'name' \(one of: counted\), got list$"):
        reg.check([1], where="task")  # type: ignore[arg-type]


def test_build_checks_parameter_types_by_annotation():
    reg = make_registry()
    with pytest.raises(RegistryError, match=r"^algo\.offset: expected an integer, got 1\.5$"):
        reg.build({"name": "scaled", "offset": 1.5}, where="algo")
    with pytest.raises(RegistryError, match=r"^factor: expected a number, got 'big'$"):
        reg.build({"name": "scaled", "factor": "big"})


def test_constructor_errors_are_named_by_their_full_key():
    reg = Registry("widgets")

    @reg.register("leaf")
    class Leaf:
        def __init__(self, pool: str = "all") -> None:
            if pool != "all":
                raise ValueError(f"pool: expected 'all', got {pool!r}")

    @reg.register("pair")
    class Pair:
        def __init__(self, parts: list) -> None:
            self.parts = [reg.build(p, where=f"parts[{i}]") for i, p in enumerate(parts)]

    with pytest.raises(RegistryError, match=r"^task\.parts\[1\]\.pool: expected 'all', got 'x'$"):
        reg.build({"name": "pair", "parts": ["leaf", {"name": "leaf", "pool": "x"}]}, where="task")
    with pytest.raises(RegistryError, match=r"^task\.parts\[0\]\.name: unknown widget 'lef'; did you mean 'leaf'"):
        reg.build({"name": "pair", "parts": ["lef"]}, where="task")
