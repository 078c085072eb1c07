"""The registry: every method is a public function, declares what it takes, and the CLI and the
window see the same list."""

from __future__ import annotations

import pytest

from medvis_desktop import cli, explain
from medvis_desktop.explain.base import ExplainError, Param


def test_the_cli_offers_exactly_the_registered_methods() -> None:
    assert tuple(explain.METHODS) == cli.METHODS


@pytest.mark.parametrize("name", list(explain.METHODS))
def test_each_method_is_public_and_declared(name: str) -> None:
    method = explain.METHODS[name]
    assert method.name == name and method.label
    assert callable(getattr(explain, name)) and name in explain.__all__
    assert method.kind in ("cam", "attribution", "features")
    defaults = method.parameters()
    assert defaults == {param.name: param.default for param in method.params}
    for param in method.params:
        assert param.check(param.default) == param.default
        assert param.label


def test_parameters_are_checked_by_their_declaration() -> None:
    steps = Param("steps", "Steps", 50, minimum=1)
    rule = Param("rule", "Rule", "a", choices=("a", "b"))
    noise = Param("noise", "Noise", 0.15, minimum=0.0)
    flag = Param("flag", "Flag", False)
    assert steps.parse("64") == 64 and noise.parse("1") == 1.0 and flag.parse("yes") is True
    assert noise.check(2) == 2.0  # an int where a float is declared is that float
    for param, bad, message in [
        (steps, "0", "must be at least 1, not 0"),
        (steps, "2.5", "takes int values"),
        (rule, "c", "must be one of a, b"),
        (noise, "nan", "must be at least 0, not nan"),
        (Param("share", "Share", 0.5, minimum=0.0, maximum=1.0), "2", "must lie in 0 to 1, not 2.0"),
        (Param("cap", "Cap", 3, maximum=8), "9", "must be at most 8, not 9"),
        (flag, "maybe", "takes bool values"),
    ]:
        with pytest.raises(ExplainError, match=message):
            param.parse(bad)
    with pytest.raises(ExplainError, match="takes int values"):
        steps.check(True)


def test_unknown_parameters_name_the_ones_there_are() -> None:
    with pytest.raises(ExplainError, match="Deconvnet has no parameter steps; its parameters: mode"):
        explain.METHODS["deconvnet"].parameters({"steps": 3})
