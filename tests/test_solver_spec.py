"""Solver specs such as rk4:u=0.3,v=0.6,step_size=0.125: parsing and round trips."""

from __future__ import annotations

import pytest

from metanode.solvers import SolverSpec, SolverSpecError, parse_solver_specs


def test_parse_two_parameter_spec():
    spec = SolverSpec.parse("rk4:u=0.3,v=0.6,step_size=0.125")
    assert spec.family == "rk4"
    assert spec.params == {"u": 0.3, "v": 0.6}
    assert spec.step_size == 0.125
    assert spec.steps is None


def test_fraction_values_are_exact():
    spec = SolverSpec.parse("rk2:u=2/3,steps=8")
    assert spec.params["u"] == 2 / 3


def test_string_round_trip():
    for text in ("rk2:u=0.5,steps=8", "rk3:u=1/3,v=0.9,step_size=0.1", "rk4:steps=2"):
        spec = SolverSpec.parse(text)
        assert SolverSpec.parse(str(spec)) == spec


def test_dict_round_trip():
    spec = SolverSpec.parse("rk4_c2_half_c3_half:u=1/3,steps=4")
    assert SolverSpec.from_dict(spec.to_dict()) == spec


def test_build_matches_spec():
    solver = SolverSpec.parse("rk3:u=0.4,v=0.8,steps=5").build()
    assert solver.family == "rk3"
    assert solver.parameter_values() == {"u": 0.4, "v": 0.8}
    assert solver.spec == SolverSpec.parse("rk3:u=0.4,v=0.8,steps=5")


def test_several_specs():
    specs = parse_solver_specs("rk2:u=0.5,steps=8; rk2:u=1,steps=8;")
    assert [spec.params["u"] for spec in specs] == [0.5, 1.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rk9:u=1,steps=2", "unknown family 'rk9'"),
        ("rk2:u=,steps=2", "is not key=value"),
        ("rk2:u=0.5", "exactly one of steps or step_size"),
        ("rk2:u=0.5,steps=2,step_size=0.5", "exactly one of steps or step_size"),
        ("rk2:u=0,steps=4", "u must not be 0"),
        ("rk3:u=0.5,v=0.5,steps=4", "u - v = 0"),
        ("rk4:u=abc,v=0.5,steps=4", "u='abc' is not a number"),
        ("rk2:u=1e400,steps=4", "too large for a float64"),
        ("rk2:u=0.5,step_size=1e400", "too large for a float64"),
        ("rk2:u=0.5,steps=0", "steps must be at least 1"),
        ("rk2:u=0.5,steps=2.5", "steps='2.5' is not an integer"),
        ("rk2:u=0.5,step_size=-1", "step_size must be a positive finite number"),
        ("rk2:v=0.5,steps=2", "rk2 has no parameter v"),
        ("rk2:w=0.5,steps=2", "unknown key 'w'"),
        ("rk2:u=0.5,u=0.6,steps=2", "u is given twice"),
        ("", "expected text like"),
    ],
)
def test_invalid_spec_rejected(text, message):
    with pytest.raises(SolverSpecError, match=message):
        SolverSpec.parse(text)


def test_empty_spec_list_rejected():
    with pytest.raises(SolverSpecError, match="no spec found"):
        parse_solver_specs(";;")
