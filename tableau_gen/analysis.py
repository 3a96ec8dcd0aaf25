"""Principal error, its optimal member, and the linear stability polynomial."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from functools import cache

import mpmath
import numpy as np
import sympy as sp

from tableau_gen.conditions import Tableau, principal_error_coefficient
from tableau_gen.families import Family
from tableau_gen.trees import trees_of_order

logger = logging.getLogger(__name__)

Z = sp.Symbol("z")

# Digits carried by the high-precision refinement of the optimum.  The catalogue
# stores 15 significant digits, so 30 leaves a wide guard.
_WORKING_DIGITS = 30


@dataclass(frozen=True)
class Optimum:
    """Member that minimises the principal error 2-norm.

    Attributes:
        point: parameter name to value, as SymPy Floats with 30 digits.
        error_norm: the 2-norm of the principal error coefficients there.
        constant: True when the norm is the same for every member, in which
            case ``point`` is the family's default member.
    """

    point: dict
    error_norm: sp.Float
    constant: bool = False


def principal_error_coefficients(tableau: Tableau, order: int) -> list:
    """tau(t) for every tree with ``order + 1`` nodes, simplified."""
    cache: dict = {}
    return [
        sp.factor(sp.cancel(principal_error_coefficient(tree, tableau, cache)))
        for tree in trees_of_order(order + 1)
    ]


@cache
def principal_error_square(family: Family):
    """Sum of tau(t)^2 over the trees with p + 1 nodes, as one rational function."""
    coefficients = principal_error_coefficients(family.tableau, family.order)
    return sp.factor(sp.cancel(sp.Add(*[tau**2 for tau in coefficients])))


def principal_error_norm(family: Family):
    """2-norm of the principal error coefficients, as a SymPy expression in u, v."""
    return sp.sqrt(principal_error_square(family))


def stability_polynomial(tableau: Tableau):
    """R(z) = 1 + sum_k z^k b^T A^(k-1) 1, a polynomial because A is nilpotent."""
    s = tableau.stages
    b = sp.Matrix([tableau.b])
    vector = sp.ones(s, 1)
    total = sp.Integer(1)
    for k in range(1, s + 1):
        total += Z**k * sp.cancel((b * vector)[0])
        vector = tableau.A * vector
    return sp.Poly(sp.expand(total), Z).as_expr()


def optimal_member(family: Family) -> Optimum:
    """Find the member with the least principal error 2-norm.

    One-parameter families are solved exactly: the critical points are the real
    roots of the derivative's numerator.  Two-parameter families are searched on
    a grid and the best grid points are refined by Newton's method on the
    gradient at 30 digits.

    Raises:
        RuntimeError: if no critical point off the singular set is found.
    """
    square = principal_error_square(family)
    if not square.free_symbols:
        # Every member has the same error norm, so the default member is optimal.
        point = {
            name: sp.N(sp.sympify(value), _WORKING_DIGITS)
            for name, value in family.spec.default.items()
        }
        return Optimum(point, sp.N(sp.sqrt(square), _WORKING_DIGITS), constant=True)
    if len(family.symbols) == 1:
        return _optimum_one_parameter(family, square)
    return _optimum_two_parameters(family, square)


def _optimum_one_parameter(family: Family, square) -> Optimum:
    (symbol,) = family.symbols
    numerator = sp.numer(sp.together(sp.diff(square, symbol)))
    candidates = []
    for root in sp.Poly(numerator, symbol).real_roots():
        if any(sp.simplify(f.subs(symbol, root)) == 0 for f in family.singular):
            continue
        value = square.subs(symbol, root)
        candidates.append((sp.N(value, _WORKING_DIGITS), root))
    if not candidates:
        raise RuntimeError(f"{family.name}: no critical point of the error norm")
    value, root = min(candidates, key=lambda item: item[0])
    point = {family.parameters[0]: sp.N(root, _WORKING_DIGITS)}
    return Optimum(point, sp.sqrt(value))


# Search box and resolution of the grid stage for two-parameter families.  The
# norm grows without bound next to the singular lines, and far from the origin
# the coefficients are large, so the minimiser lies well inside [-2, 3]^2 for
# the families derived here.
_GRID = np.linspace(-2.0, 3.0, 401)


def _optimum_two_parameters(family: Family, square) -> Optimum:
    u, v = family.symbols
    function = sp.lambdify((u, v), square, "numpy")
    grid_u, grid_v = np.meshgrid(_GRID, _GRID, indexing="ij")
    with np.errstate(all="ignore"):
        values = np.asarray(function(grid_u, grid_v), dtype=float)
    values[~np.isfinite(values)] = np.inf
    starts = _local_minima(values)

    # Refine each grid minimum to a stationary point at working precision.
    gradient = [sp.numer(sp.together(sp.diff(square, x))) for x in (u, v)]
    gradient_function = sp.lambdify((u, v), gradient, "mpmath")
    best = None
    with mpmath.workdps(_WORKING_DIGITS):
        for i, j in starts:
            start = (mpmath.mpf(grid_u[i, j]), mpmath.mpf(grid_v[i, j]))
            try:
                root = mpmath.findroot(lambda x, y: gradient_function(x, y), start)
            except (ValueError, ZeroDivisionError):
                continue
            point = {
                u: sp.Float(str(root[0]), _WORKING_DIGITS),
                v: sp.Float(str(root[1]), _WORKING_DIGITS),
            }
            if any(abs(sp.N(f.subs(point))) < 1e-12 for f in family.singular):
                continue
            value = sp.N(square.subs(point), _WORKING_DIGITS)
            if best is None or value < best[0]:
                best = (value, point)

    if best is None:
        raise RuntimeError(f"{family.name}: no critical point of the error norm")
    value, point = best
    return Optimum({"u": point[u], "v": point[v]}, sp.sqrt(value))


def _local_minima(values: np.ndarray, count: int = 8) -> list:
    """Indices of the ``count`` smallest local minima of a 2-D grid."""
    centre = values[1:-1, 1:-1]
    is_minimum = np.isfinite(centre)
    for di, dj in itertools.product((-1, 0, 1), repeat=2):
        if di or dj:
            neighbour = values[
                1 + di : values.shape[0] - 1 + di, 1 + dj : values.shape[1] - 1 + dj
            ]
            is_minimum &= centre <= neighbour
    rows, cols = np.nonzero(is_minimum)
    order = np.argsort(centre[rows, cols])[:count]
    return [(int(rows[k]) + 1, int(cols[k]) + 1) for k in order]


def member_error_norm(family: Family, values: dict):
    """Principal error 2-norm of one member, exact when the values are."""
    substitution = {
        symbol: sp.sympify(values[name])
        for name, symbol in zip(family.parameters, family.symbols, strict=True)
    }
    return sp.sqrt(sp.simplify(principal_error_square(family).subs(substitution)))
