"""Derived families: branches, named members, verification, singular sets."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from published_tableaux import (
    CLASSIC_RK4,
    HEUN_2,
    HEUN_3,
    KUTTA_3,
    MIDPOINT,
    RALSTON_2,
    RALSTON_3,
    RALSTON_4_DECIMALS,
    THREE_EIGHTHS_RULE,
)

from tableau_gen.analysis import optimal_member
from tableau_gen.conditions import residual
from tableau_gen.derivation import derive
from tableau_gen.families import (
    SPEC,
    FamilySpecError,
    U,
    V,
    _build,
    derive_families,
    family_by_name,
    member,
    parse_parameter_value,
)
from tableau_gen.trees import trees_up_to
from tableau_gen.verify import check_completeness, check_family

R = sp.Rational
FAMILY_NAMES = [spec.name for spec in SPEC]

# (family, parameter values, published fixture) for every named member.
PUBLISHED_MEMBERS = [
    ("rk2", {"u": R(1, 2)}, MIDPOINT),
    ("rk2", {"u": 1}, HEUN_2),
    ("rk2", {"u": R(2, 3)}, RALSTON_2),
    ("rk3", {"u": R(1, 2), "v": 1}, KUTTA_3),
    ("rk3", {"u": R(1, 3), "v": R(2, 3)}, HEUN_3),
    ("rk3", {"u": R(1, 2), "v": R(3, 4)}, RALSTON_3),
    ("rk4_c2_half_c3_half", {"u": R(1, 3)}, CLASSIC_RK4),
    ("rk4", {"u": R(1, 3), "v": R(2, 3)}, THREE_EIGHTHS_RULE),
]


def test_branch_list_for_s_equals_p():
    # The derivation itself finds the degenerate branches; the expected node
    # pairs are the classical results for s = p = 3 and 4.
    nodes = {s: set() for s in (2, 3, 4)}
    for s in (2, 3, 4):
        for branch in derive(s, s).branches:
            point = branch.point()[:2]
            nodes[s].add(tuple(x if x.is_number else None for x in point))
    assert nodes[2] == {(None,)}
    assert nodes[3] == {(None, None), (R(2, 3), R(2, 3)), (R(2, 3), 0)}
    assert nodes[4] == {(None, None), (R(1, 2), 0), (R(1, 2), R(1, 2)), (1, R(1, 2))}


def test_general_rk4_has_c4_one():
    assert family_by_name("rk4").tableau.c[3] == 1


def test_families_in_catalogue_order():
    assert [family.name for family in derive_families()] == FAMILY_NAMES


@pytest.mark.parametrize(("name", "values", "published"), PUBLISHED_MEMBERS)
def test_family_reproduces_published_member(name, values, published):
    A, b, _ = published
    tableau = member(family_by_name(name), values)
    s = tableau.stages
    for i, j in itertools.product(range(s), repeat=2):
        assert sp.simplify(tableau.A[i, j] - A[i][j]) == 0, (i, j)
    for i in range(s):
        assert sp.simplify(tableau.b[i] - b[i]) == 0, i


def test_rk4_reproduces_ralston_4():
    # Published to 8 decimals. The published a41 = 0.21810040 is 1.2e-8 off
    # the exact 0.2181003882..., so the tolerance is 2e-8, not 0.5e-8.
    A, b, _ = RALSTON_4_DECIMALS
    family = family_by_name("rk4")
    values = {
        name: sp.sympify(x) for name, x in family.spec.named_members["ralston"].items()
    }
    tableau = member(family, values)
    for i, j in itertools.product(range(4), repeat=2):
        assert abs(float(tableau.A[i, j]) - A[i][j]) < 2e-8, (i, j)
    for i in range(4):
        assert abs(float(tableau.b[i]) - b[i]) < 2e-8, i


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_named_members_and_default_are_members(name):
    family = family_by_name(name)
    points = [family.spec.default, *family.spec.named_members.values()]
    for point in points:
        values = {key: sp.sympify(x) for key, x in point.items()}
        tableau = member(family, values)
        cache: dict = {}
        for tree in trees_up_to(family.order):
            assert sp.simplify(residual(tree, tableau, cache)) == 0


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_verifies_symbolically(name):
    check = check_family(family_by_name(name))
    assert check.failed == ()
    assert check.next_order_residual is not None
    assert check.row_sum_ok
    assert check.ok


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_parameters_play_their_roles(name):
    family = family_by_name(name)
    tableau = family.tableau
    entries = {f"b{i + 1}": tableau.b[i] for i in range(tableau.stages)}
    entries |= {f"c{i + 1}": tableau.c[i] for i in range(tableau.stages)}
    for parameter, role in family.spec.roles.items():
        assert entries[role] == sp.Symbol(parameter)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rk2", {U}),
        ("rk3", {U, V, U - V, 3 * U - 2}),
        ("rk4", {U, V, U - 1, V - 1, U - V, 2 * U - 1, 6 * U * V - 4 * U - 4 * V + 3}),
        ("rk4_c2_half_c3_half", {U}),
    ],
)
def test_singular_set(name, expected):
    assert set(family_by_name(name).singular) == expected


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_domain_avoids_singular_set(name):
    # Each singular factor keeps one sign on a 41-point grid per axis over
    # the box, so the box does not touch the set where it vanishes (for these
    # factors, all of degree <= 2, a sign change would show on the grid).
    family = family_by_name(name)
    axes = [np.linspace(*family.spec.domain[p], 41) for p in family.parameters]
    grid = np.meshgrid(*axes, indexing="ij")
    for factor in family.singular:
        values = sp.lambdify(family.symbols, factor, "numpy")(*grid)
        values = np.broadcast_to(values, grid[0].shape)
        assert np.all(values > 0) or np.all(values < 0), str(factor)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_default_and_named_members_in_domain(name):
    family = family_by_name(name)
    for point in [family.spec.default, *family.spec.named_members.values()]:
        for parameter, text in point.items():
            low, high = family.spec.domain[parameter]
            assert low <= float(sp.sympify(text)) <= high, (parameter, text)


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_random_member_satisfies_conditions_numerically(data):
    name = data.draw(st.sampled_from(FAMILY_NAMES))
    family = family_by_name(name)
    values = {
        p: data.draw(st.floats(*family.spec.domain[p]), label=p)
        for p in family.parameters
    }
    tableau = member(family, values)
    scale = 1 + max(abs(float(x)) for x in (*tableau.A, *tableau.b))
    cache: dict = {}
    for tree in trees_up_to(family.order):
        # Float rounding grows with the coefficient size to the power of the
        # tree order; 1e-12 * scale**p is far above it and far below 1.
        assert abs(float(residual(tree, tableau, cache))) < 1e-12 * scale**family.order


def test_member_rejects_singular_value():
    with pytest.raises(ValueError, match=r"u = 0 is in the singular set of rk2"):
        member(family_by_name("rk2"), {"u": 0})
    with pytest.raises(ValueError, match=r"u - v = 0"):
        member(family_by_name("rk3"), {"u": R(1, 2), "v": R(1, 2)})
    with pytest.raises(ValueError, match=r"2\*u - 1"):
        member(family_by_name("rk4"), {"u": R(1, 2), "v": R(3, 5)})


def test_member_rejects_unknown_and_missing_parameters():
    with pytest.raises(ValueError, match="rk2 has no parameter v"):
        member(family_by_name("rk2"), {"u": 1, "v": 1})
    with pytest.raises(ValueError, match=r"rk3 needs a value for v \(u in"):
        member(family_by_name("rk3"), {"u": 1})


def test_unknown_family_lists_valid_names():
    with pytest.raises(ValueError, match="unknown family 'rk5'; valid families: rk2"):
        family_by_name("rk5")


@pytest.mark.parametrize(
    ("text", "value"),
    [("2/3", R(2, 3)), ("0.4", R(2, 5)), ("-1", -1), ("1e-3", R(1, 1000))],
)
def test_parse_parameter_value_is_exact(text, value):
    assert parse_parameter_value(text) == value


@pytest.mark.parametrize("text", ["abc", "", "1/0x", "sqrt(2)"])
def test_parse_parameter_value_rejects_non_rationals(text):
    with pytest.raises(ValueError, match="invalid parameter value"):
        parse_parameter_value(text)


def test_completeness_counts_every_leaf():
    for result in check_completeness((2, 3)):
        cases = result.cases
        assert cases.leaves == len(cases.branches) + cases.merged + cases.inconsistent
    s3 = check_completeness((3,))[0].cases
    assert len(s3.branches) == 3
    assert s3.inconsistent > 0


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_optimum_in_domain(name):
    family = family_by_name(name)
    optimum = optimal_member(family)
    for parameter, value in optimum.point.items():
        low, high = family.spec.domain[parameter]
        assert low <= float(value) <= high, (parameter, value)


def test_spec_with_wrong_parameter_count_is_rejected():
    branch = next(b for b in derive(3, 3).branches if len(b.free) == 2)
    wrong = dataclasses.replace(SPEC[1], roles={"u": "c2"})
    with pytest.raises(FamilySpecError, match="the spec names 1 parameters"):
        _build(wrong, branch)


def test_spec_with_ambiguous_role_is_rejected():
    # b3 is free in this branch but c2 is fixed, so u = c2 cannot pin it down.
    branch = next(b for b in derive(3, 3).branches if len(b.free) == 1)
    wrong = dataclasses.replace(SPEC[2], roles={"u": "c2"})
    with pytest.raises(FamilySpecError, match="do not determine the branch"):
        _build(wrong, branch)
