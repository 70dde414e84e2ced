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


def test_builtin_registries_are_importable_from_package():
    import rlreason

    for reg in (rlreason.REWARDS, rlreason.ALGOS, rlreason.TASKS, rlreason.VERIFIERS):
        assert isinstance(reg, Registry)
