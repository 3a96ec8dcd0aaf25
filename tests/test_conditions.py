"""Order conditions, checked against published tableaux."""

from __future__ import annotations

import pytest
import sympy as sp
from published_tableaux import EXACT, RALSTON_4_DECIMALS

from tableau_gen.conditions import (
    Tableau,
    method_order,
    order_conditions,
    residual,
    symbolic_tableau,
    validate_stages_and_order,
)
from tableau_gen.trees import order, trees_up_to


def test_condition_count_up_to_order_8():
    assert [len(order_conditions(p, p)) for p in range(1, 9)] == [
        1, 2, 4, 8, 17, 37, 85, 200,
    ]  # fmt: skip


def test_two_stage_conditions_exact():
    b1, b2, c2 = sp.symbols("b1 b2 c2")
    equations = [eq for _, eq in order_conditions(2, 2)]
    assert equations[0].lhs == b1 + b2
    assert equations[0].rhs == 1
    assert equations[1].lhs == b2 * c2
    assert equations[1].rhs == sp.Rational(1, 2)


def test_symbolic_tableau_uses_row_sums():
    tableau = symbolic_tableau(3)
    for i in range(3):
        assert sp.expand(sum(tableau.A.row(i)) - tableau.c[i]) == 0


@pytest.mark.parametrize("name", sorted(EXACT))
def test_published_method_has_its_order(name):
    A, b, p = EXACT[name]
    tableau = Tableau.from_lists(A, b)
    cache: dict = {}
    for tree in trees_up_to(p):
        assert residual(tree, tableau, cache) == 0, name
    next_residuals = [residual(t, tableau, cache) for t in trees_up_to(p + 1)]
    assert any(r != 0 for r in next_residuals[len(trees_up_to(p)) :])
    assert method_order(tableau, max_order=p + 2) == p


@pytest.mark.parametrize("name", sorted(EXACT))
def test_published_method_float_residuals(name):
    # Same conditions on float entries: rounding leaves residuals near 1e-16,
    # so 1e-13 separates "holds" from the order-(p+1) residuals (>= 1e-4 here).
    A, b, p = EXACT[name]
    tableau = Tableau.from_lists(
        [[float(x) for x in row] for row in A], [float(x) for x in b]
    )
    cache: dict = {}
    for tree in trees_up_to(p):
        assert abs(float(residual(tree, tableau, cache))) < 1e-13
    worst = max(
        abs(float(residual(tree, tableau, cache)))
        for tree in trees_up_to(p + 1)
        if order(tree) == p + 1
    )
    assert worst > 1e-4


def test_ralston_4_decimals_has_order_4():
    # The published coefficients carry 8 decimals, so the residuals are of
    # that size; 1e-7 accepts them and the order-5 residuals are far larger.
    A, b, p = RALSTON_4_DECIMALS
    tableau = Tableau.from_lists(A, b)
    cache: dict = {}
    for tree in trees_up_to(4):
        assert abs(float(residual(tree, tableau, cache))) < 1e-7
    fifth = [abs(float(residual(t, tableau, cache))) for t in trees_up_to(5)]
    assert max(fifth[len(trees_up_to(4)) :]) > 1e-3


def test_from_lists_rejects_implicit_tableau():
    with pytest.raises(ValueError, match="strictly lower triangular"):
        Tableau.from_lists([[0, 1], [1, 0]], [0.5, 0.5])


def test_from_lists_rejects_wrong_nodes():
    with pytest.raises(ValueError, match="row sums"):
        Tableau.from_lists([[0, 0], [1, 0]], [0.5, 0.5], c=[0, 2])


def test_from_lists_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="must be 3x3"):
        Tableau.from_lists([[0, 0], [1, 0]], [1, 0, 0])


@pytest.mark.parametrize(
    ("stages", "order_", "message"),
    [
        (2, 0, "`order` must be an integer >= 1, got 0"),
        (2, -3, "`order` must be an integer >= 1"),
        (0, 1, "`stages` must be an integer >= 1"),
        (2, 3, "order 3 needs `stages` >= 3"),
    ],
)
def test_bad_stages_and_order(stages, order_, message):
    with pytest.raises(ValueError, match=message.replace("`", ".")):
        validate_stages_and_order(stages, order_)
    with pytest.raises(ValueError):
        order_conditions(stages, order_)
