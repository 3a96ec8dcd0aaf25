"""Principal error, optimal members, stability polynomials and the catalogue."""

from __future__ import annotations

import json

import pytest
import sympy as sp
from published_tableaux import CLASSIC_RK4, RALSTON_4_DECIMALS, THREE_EIGHTHS_RULE

from tableau_gen import catalogue
from tableau_gen.analysis import (
    Z,
    member_error_norm,
    optimal_member,
    principal_error_coefficients,
    stability_polynomial,
)
from tableau_gen.conditions import Tableau
from tableau_gen.families import SPEC, U, V, family_by_name

FAMILY_NAMES = [spec.name for spec in SPEC]


def _norm(tableau: Tableau, order: int) -> float:
    coefficients = principal_error_coefficients(tableau, order)
    return float(sp.sqrt(sum(tau**2 for tau in coefficients)))


@pytest.mark.parametrize(
    ("fixture", "published"),
    [
        (CLASSIC_RK4, 0.01450),
        (THREE_EIGHTHS_RULE, 0.01267),
        (RALSTON_4_DECIMALS, 0.01370),
    ],
)
def test_principal_error_norm_matches_nodepy(fixture, published):
    # nodepy's values are quoted to 4 significant digits: tolerance 5e-6.
    A, b, p = fixture
    assert abs(_norm(Tableau.from_lists(A, b), p) - published) < 5e-6


def test_rk2_optimum_is_ralston():
    optimum = optimal_member(family_by_name("rk2"))
    # Exact root 2/3 evaluated at 30 digits; 1e-25 leaves room for rounding.
    assert abs(optimum.point["u"] - sp.Rational(2, 3)) < 1e-25
    assert not optimum.constant


@pytest.mark.parametrize("name", ["rk3", "rk4"])
def test_two_parameter_optimum_is_stationary_minimum(name):
    family = family_by_name(name)
    optimum = optimal_member(family)
    u0, v0 = optimum.point["u"], optimum.point["v"]
    square = sum(
        tau**2 for tau in principal_error_coefficients(family.tableau, family.order)
    )
    at = {U: u0, V: v0}
    for symbol in (U, V):
        # Newton converged at 30 digits, so the gradient is at round-off level.
        assert abs(sp.N(sp.diff(square, symbol).subs(at), 30)) < 1e-20
    centre = sp.N(square.subs(at), 30)
    for du, dv in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3), (1e-3, 1e-3)]:
        assert sp.N(square.subs({U: u0 + du, V: v0 + dv}), 30) > centre


def test_rk4_optimum_beats_published_members():
    family = family_by_name("rk4")
    optimum = optimal_member(family)
    ralston = {
        k: sp.sympify(x) for k, x in family.spec.named_members["ralston"].items()
    }
    three_eighths = {"u": sp.Rational(1, 3), "v": sp.Rational(2, 3)}
    assert optimum.error_norm < float(member_error_norm(family, three_eighths))
    assert optimum.error_norm < float(member_error_norm(family, ralston))
    # Ralston minimised an error bound, not this norm: his node c2 = 0.4 is
    # more than 0.04 from the 2-norm optimum.
    assert abs(optimum.point["u"] - sp.Rational(2, 5)) > 0.04


def test_ralston_3_is_near_but_not_at_optimum():
    family = family_by_name("rk3")
    optimum = optimal_member(family)
    distance = abs(optimum.point["u"] - sp.Rational(1, 2)) + abs(
        optimum.point["v"] - sp.Rational(3, 4)
    )
    assert 1e-4 < distance < 1e-2


@pytest.mark.parametrize(
    "name", ["rk4_c2_half_c3_zero", "rk4_c2_half_c3_half", "rk4_c2_one_c3_half"]
)
def test_one_parameter_optimum_is_minimum(name):
    family = family_by_name(name)
    optimum = optimal_member(family)
    u0 = optimum.point["u"]
    for step in (1e-4, -1e-4):
        nearby = member_error_norm(family, {"u": u0 + step})
        assert float(nearby) > float(optimum.error_norm)


def test_degenerate_rk3_branches_have_constant_norm():
    for name in ["rk3_c2_two_thirds_c3_two_thirds", "rk3_c2_two_thirds_c3_zero"]:
        assert optimal_member(family_by_name(name)).constant


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_stability_polynomial_is_truncated_exponential(name):
    family = family_by_name(name)
    expected = sum(Z**k / sp.factorial(k) for k in range(family.order + 1))
    assert sp.expand(stability_polynomial(family.tableau) - expected) == 0


def test_catalogue_file_matches_fresh_derivation():
    assert catalogue.CATALOGUE_PATH.read_text(encoding="utf-8") == catalogue.render(
        catalogue.build()
    )


def test_catalogue_schema():
    data = catalogue.load()
    assert data["schema_version"] == 1
    assert data["generated_by"] == "tableau-gen catalogue"
    assert [entry["name"] for entry in data["families"]] == FAMILY_NAMES
    symbols = {"u": U, "v": V}
    for entry in data["families"]:
        s = entry["stages"]
        assert entry["order"] == s
        assert entry["parameters"] in (["u"], ["u", "v"])
        assert set(entry["parameter_roles"]) == set(entry["parameters"])
        A = [[sp.sympify(x, locals=symbols) for x in row] for row in entry["A"]]
        c = [sp.sympify(x, locals=symbols) for x in entry["c"]]
        assert len(entry["b"]) == s
        for i in range(s):
            assert all(A[i][j] == 0 for j in range(i, s))
            assert sp.simplify(sum(A[i]) - c[i]) == 0
        assert set(entry["domain"]) == set(entry["parameters"])
        for name, value in entry["optimal"].items():
            if name != "error_norm":
                digits = value.lstrip("-0.").replace(".", "")
                assert len(digits) >= 15, value
        assert entry["stability_polynomial"].startswith(f"z**{s}/")
        assert sp.sympify(
            entry["principal_error_norm"], locals=symbols
        ).free_symbols <= {U, V}


def test_catalogue_text_is_deterministic():
    text = catalogue.render(catalogue.build())
    assert text == catalogue.render(json.loads(text))
    assert text.endswith("}\n")
    assert "/work" not in text
