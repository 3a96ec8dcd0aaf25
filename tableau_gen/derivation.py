"""Solve the order conditions s = p and enumerate every solution branch.

The solver eliminates one unknown at a time from a polynomial system and splits
into cases wherever the elimination would divide by something that might be zero:

* an equation ``lc * x + rest = 0`` that is linear in ``x`` gives two cases,
  ``lc != 0`` with ``x = -rest / lc``, and ``lc = 0`` together with ``rest = 0``;
* an equation that factors, ``f * g = 0``, gives one case per factor.

Each split is an exhaustive disjunction, so every solution of the order
conditions lies in at least one leaf of the case tree.  That is the
completeness argument: a leaf is either inconsistent (an equation reduced to a
nonzero constant, or a factor assumed nonzero vanished) or a solution branch,
and the branches found are all there are.  Cases may overlap, so leaves that
are special members of a larger branch are merged into it afterwards.

The unknowns are eliminated in the order b_1..b_s, the inner entries a_ij
(j >= 2), then the nodes c_s..c_2.  That order leaves the low nodes (c2, c3) as
the free parameters of the general families and the highest-index weight of a
set of coinciding nodes as the free parameter of a degenerate branch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache

import sympy as sp

from tableau_gen.conditions import (
    Tableau,
    order_conditions,
    symbolic_tableau,
    validate_stages_and_order,
)

logger = logging.getLogger(__name__)


class DerivationError(RuntimeError):
    """The case-split solver met a system it cannot reduce."""


@dataclass(frozen=True)
class Branch:
    """One solution branch of the order conditions.

    Attributes:
        stages: number of stages s.
        order: order p the branch satisfies.
        free: the unknowns left free, in elimination order reversed.
        values: every unknown (c_i, a_ij with j >= 2, b_i) as an expression in
            ``free``.
        nonzero: irreducible polynomials in ``free`` assumed nonzero on the path
            that found the branch.
    """

    stages: int
    order: int
    free: tuple
    values: dict
    nonzero: tuple

    def tableau(self) -> Tableau:
        return symbolic_tableau(self.stages).subs(self.values)

    def point(self) -> tuple:
        """Node values (c2, ..., cs) as expressions in the free unknowns."""
        return tuple(self.values[sp.Symbol(f"c{i}")] for i in range(2, self.stages + 1))


@dataclass
class CaseTree:
    """Record of the case split: counts of the leaves by outcome."""

    branches: list = field(default_factory=list)
    inconsistent: int = 0
    no_real_solution: int = 0
    merged: int = 0

    @property
    def leaves(self) -> int:
        return (
            len(self.branches) + self.merged + self.inconsistent + self.no_real_solution
        )


# Outcome of a case whose equations have complex solutions only.
_NO_REAL_SOLUTION = object()


@dataclass
class _Case:
    equations: list
    solved: dict
    nonzero: list
    unknowns: list


def unknowns_in_elimination_order(s: int) -> list:
    """b_1..b_s, then a_ij (j >= 2) row by row from the last, then c_s..c_2."""
    weights = [sp.Symbol(f"b{i}") for i in range(1, s + 1)]
    inner = [
        sp.Symbol(f"a{i}{j}") for i in range(s, 2, -1) for j in range(i - 1, 1, -1)
    ]
    nodes = [sp.Symbol(f"c{i}") for i in range(s, 1, -1)]
    return weights + inner + nodes


@cache
def derive(s: int, p: int) -> CaseTree:
    """Find every solution branch of the order-``p`` conditions with ``s`` stages.

    The result is cached per (s, p); treat it as read-only.

    Raises:
        ValueError: for stage and order counts with no explicit method.
        DerivationError: if the case split meets an equation that is linear in
            no unknown and does not factor.
    """
    validate_stages_and_order(s, p)
    equations = [
        sp.numer(sp.together(eq.lhs - eq.rhs)) for _, eq in order_conditions(s, p)
    ]
    unknowns = unknowns_in_elimination_order(s)
    result = CaseTree()
    leaves: list[Branch] = []
    stack = [_Case(equations, {}, [], unknowns)]
    while stack:
        case = stack.pop()
        outcome = _step(case)
        if outcome is None:
            result.inconsistent += 1
        elif outcome is _NO_REAL_SOLUTION:
            result.no_real_solution += 1
        elif isinstance(outcome, Branch):
            leaves.append(_finish(outcome, s, p))
        else:
            stack.extend(reversed(outcome))
    result.branches = _merge(leaves)
    result.merged = len(leaves) - len(result.branches)
    logger.info(
        "s=%d p=%d: %d leaves, %d branches, %d merged, %d inconsistent, "
        "%d without real solutions",
        s,
        p,
        result.leaves,
        len(result.branches),
        result.merged,
        result.inconsistent,
        result.no_real_solution,
    )
    return result


def _step(case: _Case):
    """Advance one case: None if inconsistent, a Branch if solved, else subcases."""
    equations = []
    for equation in case.equations:
        factors = _relevant_factors(equation, case.nonzero)
        if factors is None:
            continue  # identically zero
        if not factors:
            return None  # a nonzero constant, or a product of nonzero factors
        if len(factors) > 1:
            others = [e for e in case.equations if e is not equation]
            return [
                _Case([factor] + others, case.solved, case.nonzero, case.unknowns)
                for factor in factors
            ]
        equations.append(factors[0])
    if not equations:
        return Branch(0, 0, (), dict(case.solved), tuple(case.nonzero))

    pivot = _choose_pivot(equations, case.unknowns)
    if pivot is None:
        return _split_on_roots(case, equations)
    equation, unknown, lead, rest = pivot
    others = [e for e in equations if e is not equation]
    subcases = []

    # The solved values are kept as a chain and resolved only for the leaves that
    # turn out to be branches, because most leaves are inconsistent.
    solved = dict(case.solved)
    solved[unknown] = -rest / lead
    lead_factors = [] if lead.is_number else list(_factors(lead))
    nonzero = []
    for factor in case.nonzero:
        reduced = _substitute_numerator(factor, unknown, lead, rest)
        if reduced == 0:
            nonzero = None
            break
        if not reduced.is_number:
            nonzero.extend(_factors(reduced))
    if nonzero is not None:
        nonzero = _unique(nonzero + lead_factors)
        substituted = [_substitute_numerator(e, unknown, lead, rest) for e in others]
        subcases.append(_Case(substituted, solved, nonzero, case.unknowns))

    if not lead.is_number:
        subcases.append(
            _Case([lead, rest] + others, case.solved, case.nonzero, case.unknowns)
        )
    return subcases


def _split_on_roots(case: _Case, equations: list):
    """Handle a system that is linear in no unknown, through a lex Groebner basis.

    A basis equal to [1] proves the case inconsistent.  Otherwise the basis
    holds a polynomial in the last unknown alone, and the case splits over its
    real roots; a polynomial without real roots proves that the case has no
    real solution (the methods sought have real coefficients).
    """
    present = [u for u in case.unknowns if any(e.has(u) for e in equations)]
    basis = sp.groebner(equations, *present, order="lex")
    if list(basis.exprs) == [1]:
        return None
    last = present[-1]
    univariate = [g for g in basis.exprs if g.free_symbols == {last}]
    if not univariate:
        raise DerivationError(
            "no equation is linear in a remaining unknown and the Groebner basis "
            "has no univariate member: " + "; ".join(str(e) for e in basis.exprs)
        )
    roots = sp.Poly(univariate[0], last).real_roots()
    if not roots:
        return _NO_REAL_SOLUTION
    subcases = []
    for root in _unique(roots):
        value = sp.nsimplify(root) if root.is_rational else root
        solved = dict(case.solved)
        solved[last] = value
        substituted = [sp.expand(e.subs(last, value)) for e in equations]
        nonzero = [f.subs(last, value) for f in case.nonzero]
        if any(sp.simplify(f) == 0 for f in nonzero):
            continue
        nonzero = _unique([g for f in nonzero if not f.is_number for g in _factors(f)])
        subcases.append(_Case(substituted, solved, nonzero, case.unknowns))
    return subcases or None


def _choose_pivot(equations, unknowns):
    """First unknown in elimination order that some equation contains linearly.

    Among those equations, the one whose coefficient has the fewest terms wins,
    so constant coefficients (no case split) come first.
    """
    for unknown in unknowns:
        candidates = []
        for equation in equations:
            if not equation.has(unknown):
                continue
            poly = sp.Poly(equation, unknown)
            if poly.degree() != 1:
                continue
            lead, rest = (sp.expand(coefficient) for coefficient in poly.all_coeffs())
            size = (
                0 if lead.is_number else len(sp.Add.make_args(lead)),
                sp.count_ops(lead),
            )
            candidates.append((size, equation, lead, rest))
        if candidates:
            candidates.sort(key=lambda item: item[0])
            _, equation, lead, rest = candidates[0]
            return equation, unknown, lead, rest
    return None


def _substitute_numerator(expression, unknown, lead, rest):
    """Numerator of ``expression`` at ``unknown = -rest / lead``, kept polynomial.

    For expression = sum_k e_k x^k of degree d this is
    sum_k e_k (-rest)^k lead^(d - k), which avoids rational-function arithmetic.
    """
    if not expression.has(unknown):
        return expression
    poly = sp.Poly(expression, unknown)
    degree = poly.degree()
    terms = [
        coefficient * (-rest) ** k * lead ** (degree - k)
        for (k,), coefficient in poly.terms()
    ]
    return sp.expand(sp.Add(*terms))


def _relevant_factors(expression, nonzero):
    """Distinct irreducible factors of ``expression`` not known to be nonzero.

    Returns None when the expression is identically zero and an empty list when
    it cannot vanish (a nonzero constant, or only factors assumed nonzero).
    """
    expression = sp.expand(expression)
    if expression == 0:
        return None
    if expression.is_number:
        return []
    return [f for f in _factors(expression) if f not in nonzero]


@cache
def _factors(expression) -> tuple:
    """Distinct non-constant irreducible factors over Q, each made primitive and
    sign-normalised so that equal factors compare equal."""
    _, factor_list = sp.factor_list(sp.expand(expression))
    result = []
    for factor, _multiplicity in factor_list:
        if factor.is_number:
            continue
        poly = sp.Poly(factor, *sorted(factor.free_symbols, key=str))
        poly = poly.primitive()[1]
        if poly.LC() < 0:
            poly = -poly
        result.append(poly.as_expr())
    return tuple(result)


def _unique(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _finish(raw: Branch, s: int, p: int) -> Branch:
    """Express every unknown in the free ones and simplify."""
    unknowns = unknowns_in_elimination_order(s)
    # Later entries of the chain were solved in terms of fewer unknowns, so
    # resolving from the last entry back expresses each in the free unknowns.
    resolved: dict = {}
    for unknown, value in reversed(list(raw.values.items())):
        resolved[unknown] = sp.cancel(sp.together(value.subs(resolved)))
    values = {}
    for unknown in unknowns:
        values[unknown] = sp.factor(resolved.get(unknown, unknown))
    free = tuple(u for u in reversed(unknowns) if u not in raw.values)
    return Branch(s, p, free, values, raw.nonzero)


def singular_factors(branch: Branch) -> list:
    """Collect the irreducible factors of the denominators of the branch's formulas."""
    factors = []
    for value in branch.values.values():
        denominator = sp.denom(sp.together(value))
        if not denominator.is_number:
            factors.extend(_factors(denominator))
    return sorted(_unique(factors), key=sp.default_sort_key)


def _merge(leaves: list[Branch]) -> list[Branch]:
    """Drop leaves that are special members of another, larger leaf.

    A leaf L is contained in a leaf H when H's formulas, evaluated at H's free
    unknowns read off L, reproduce L's formulas. In addition, every point of L
    where H's denominators vanish must be a singular point of L or a member of
    another leaf, so that the merge loses no solution.
    """
    ordered = sorted(leaves, key=lambda branch: -len(branch.free))
    distinct: list[Branch] = []
    for leaf in ordered:
        others = [other for other in leaves if other is not leaf]
        if not any(_contains(big, leaf, others) for big in distinct):
            distinct.append(leaf)
    return distinct


def _contains(big: Branch, small: Branch, others: list[Branch]) -> bool:
    at = {symbol: small.values[symbol] for symbol in big.free}
    for unknown, value in big.values.items():
        if sp.simplify(value.subs(at) - small.values[unknown]) != 0:
            return False
    own = singular_factors(small)
    for factor in singular_factors(big):
        restricted = sp.numer(sp.together(factor.subs(at)))
        if sp.expand(restricted) == 0:
            return False
        if restricted.is_number:
            continue
        for exception in _factors(restricted):
            if exception in own:
                continue
            if len(small.free) != 1:
                return False
            # A point of the small leaf where the big one breaks down must be
            # covered by some other leaf, or the merge would lose it.
            (parameter,) = small.free
            for root in sp.solve(exception, parameter):
                point = {k: v.subs(parameter, root) for k, v in small.values.items()}
                if not any(is_member(point, other) for other in others):
                    return False
    return True


def is_member(point: dict, branch: Branch) -> bool:
    """Return whether the solution ``point`` is a regular member of ``branch``."""
    at = {symbol: point[symbol] for symbol in branch.free}
    for factor in singular_factors(branch):
        if sp.simplify(factor.subs(at)) == 0:
            return False
    return all(
        sp.simplify(value.subs(at) - point[unknown]) == 0
        for unknown, value in branch.values.items()
    )
