"""Symbolic verification of the derived families and of the branch list."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from tableau_gen.conditions import Tableau, residual
from tableau_gen.derivation import CaseTree, derive
from tableau_gen.families import Family
from tableau_gen.trees import order, trees_up_to


@dataclass(frozen=True)
class FamilyCheck:
    """Outcome of verifying one family.

    Attributes:
        conditions: number of order conditions (trees up to p) checked.
        failed: trees up to p whose residual is not identically zero.
        next_order_residual: a residual of a tree with p + 1 nodes that is not
            identically zero, or None if all of them vanish.
        row_sum_ok: whether c_i = sum_j a_ij holds identically.
    """

    conditions: int
    failed: tuple
    next_order_residual: object
    row_sum_ok: bool

    @property
    def ok(self) -> bool:
        return (
            not self.failed and self.next_order_residual is not None and self.row_sum_ok
        )


def check_family(family: Family) -> FamilyCheck:
    """Check that every condition up to p vanishes identically in u, v and that
    the order is exactly p for generic parameters."""
    return check_tableau(family.tableau, family.order)


def check_tableau(tableau: Tableau, p: int) -> FamilyCheck:
    """Check conditions up to ``p`` and that some order-(p+1) residual is nonzero."""
    cache: dict = {}
    failed = []
    next_residual = None
    for tree in trees_up_to(p + 1):
        value = sp.cancel(sp.together(residual(tree, tableau, cache)))
        if order(tree) <= p:
            if value != 0:
                failed.append(tree)
        elif value != 0 and next_residual is None:
            next_residual = value
    row_sum_ok = all(
        sp.cancel(sum(tableau.A.row(i)) - tableau.c[i]) == 0
        for i in range(tableau.stages)
    )
    conditions = sum(1 for tree in trees_up_to(p))
    return FamilyCheck(conditions, tuple(failed), next_residual, row_sum_ok)


@dataclass(frozen=True)
class Completeness:
    """Summary of the case split for one s = p, which proves the branch list."""

    stages: int
    cases: CaseTree

    def summary(self) -> str:
        cases = self.cases
        points = "; ".join(_describe_point(branch.point()) for branch in cases.branches)
        return (
            f"s = p = {self.stages}: {cases.leaves} leaves of the case split, "
            f"{cases.inconsistent} inconsistent, {cases.no_real_solution} with "
            f"complex solutions only, {cases.merged} merged into larger branches, "
            f"{len(cases.branches)} solution branches: {points}"
        )


def check_completeness(stages=(2, 3, 4)) -> list[Completeness]:
    """Run the exhaustive case split for each s = p and report its leaves."""
    return [Completeness(s, derive(s, s)) for s in stages]


def _describe_point(point: tuple) -> str:
    names = [f"c{i}" for i in range(2, len(point) + 2)]
    fixed = [
        f"{name} = {value}"
        for name, value in zip(names, point, strict=True)
        if value.is_number
    ]
    free = [
        name for name, value in zip(names, point, strict=True) if not value.is_number
    ]
    parts = fixed + ([", ".join(free) + " free"] if free else [])
    return "(" + ", ".join(parts) + ")"
