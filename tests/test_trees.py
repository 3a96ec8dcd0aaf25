"""Rooted trees: counts, canonical form, density and symmetry."""

from __future__ import annotations

import doctest
from math import factorial

import pytest

import tableau_gen.conditions
import tableau_gen.trees
from tableau_gen.trees import (
    LEAF,
    density,
    graft,
    order,
    symmetry,
    tree_to_str,
    trees_of_order,
    trees_up_to,
)

# OEIS A000081: rooted trees with n = 1..8 nodes.
TREE_COUNTS = [1, 1, 2, 4, 9, 20, 48, 115]

T1 = LEAF
T2 = graft([T1])  # [τ]
BUSHY_3 = graft([T1, T1])  # [τ²]
TALL_3 = graft([T2])  # [[τ]]


@pytest.mark.parametrize("n", range(1, 9))
def test_tree_counts_match_a000081(n):
    assert len(trees_of_order(n)) == TREE_COUNTS[n - 1]


@pytest.mark.parametrize("n", range(1, 9))
def test_trees_are_distinct_canonical_and_sized(n):
    trees = trees_of_order(n)
    assert len(set(trees)) == len(trees)
    for tree in trees:
        assert order(tree) == n
        assert graft(tree) == tree  # children already sorted


def test_trees_up_to_counts_conditions():
    # 1, 2, 4, 8, 17, 37, 85, 200 order conditions for p = 1..8.
    cumulative = [sum(TREE_COUNTS[:p]) for p in range(1, 9)]
    assert [len(trees_up_to(p)) for p in range(1, 9)] == cumulative
    assert cumulative[-1] == 200


@pytest.mark.parametrize(
    ("tree", "gamma", "sigma"),
    [
        (T1, 1, 1),
        (T2, 2, 1),
        (BUSHY_3, 3, 2),
        (TALL_3, 6, 1),
        (graft([T1, T1, T1]), 4, 6),  # [τ³]: three leaves permute freely
        (graft([BUSHY_3]), 12, 2),  # [[τ²]]
        (graft([T1, T2]), 8, 1),  # [τ [τ]]
        (graft([TALL_3]), 24, 1),  # [[[τ]]]
        (graft([T2, T2]), 20, 2),  # [[τ]²]: the two [τ] swap
        (graft([BUSHY_3, BUSHY_3]), 63, 8),  # 2! * sigma([τ²])^2
    ],
)
def test_density_and_symmetry_by_hand(tree, gamma, sigma):
    assert density(tree) == gamma
    assert symmetry(tree) == sigma


@pytest.mark.parametrize("n", range(1, 9))
def test_labelled_tree_identity(n):
    # Summing n!/(gamma*sigma) over trees of order n gives (n-1)!, the number
    # of monotonically labelled trees; a wrong gamma or sigma breaks it.
    total = sum(
        factorial(n) // (density(tree) * symmetry(tree)) for tree in trees_of_order(n)
    )
    assert total == factorial(n - 1)


def test_tree_to_str_groups_equal_children():
    assert tree_to_str(T1) == "τ"
    assert tree_to_str(BUSHY_3) == "[τ²]"
    assert tree_to_str(graft([T1, T2])) == "[τ [τ]]"


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3"])
def test_trees_of_order_rejects_bad_n(bad):
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        trees_of_order(bad)


def test_docstring_examples():
    # The examples in the docstrings print exact counts and rationals.
    for module in (tableau_gen.trees, tableau_gen.conditions):
        failures, attempted = doctest.testmod(module)
        assert attempted > 0, module.__name__
        assert failures == 0, module.__name__
