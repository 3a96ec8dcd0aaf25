"""Elementary weights and order conditions of explicit Runge-Kutta methods."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from tableau_gen.trees import RootedTree, density, order, symmetry, trees_up_to


@dataclass(frozen=True)
class Tableau:
    """Butcher tableau (A, b, c) of an explicit method, entries SymPy expressions.

    A is strictly lower triangular and c follows the row-sum convention
    c_i = sum_j a_ij, so c_1 = 0.
    """

    A: sp.ImmutableMatrix
    b: tuple
    c: tuple

    def __post_init__(self):
        # Immutable entries make tableaux hashable, so results can be cached.
        object.__setattr__(self, "A", sp.ImmutableMatrix(self.A))

    @property
    def stages(self) -> int:
        return len(self.b)

    @classmethod
    def from_lists(cls, A, b, c=None) -> Tableau:
        """Build a tableau from nested lists, with c from the row sums if omitted.

        Raises:
            ValueError: if the shapes disagree, A is not strictly lower
                triangular, or a given c breaks the row-sum convention.
        """
        matrix = sp.Matrix([[sp.sympify(x) for x in row] for row in A])
        s = len(b)
        if matrix.shape != (s, s):
            raise ValueError(f"`A` must be {s}x{s} to match `b`, got {matrix.shape}")
        for i in range(s):
            for j in range(i, s):
                if not matrix[i, j].is_zero:
                    raise ValueError(
                        f"`A` must be strictly lower triangular for an explicit "
                        f"method, but A[{i + 1},{j + 1}] = {matrix[i, j]}"
                    )
        row_sums = tuple(sp.simplify(sum(matrix.row(i))) for i in range(s))
        if c is None:
            nodes = row_sums
        else:
            nodes = tuple(sp.sympify(x) for x in c)
            if len(nodes) != s:
                raise ValueError(f"`c` must have {s} entries, got {len(nodes)}")
            for i, (given, summed) in enumerate(zip(nodes, row_sums, strict=True)):
                if not sp.simplify(given - summed).is_zero:
                    raise ValueError(
                        f"`c` must equal the row sums of `A` (c_i = sum_j a_ij), "
                        f"but c_{i + 1} = {given} and the row sum is {summed}"
                    )
        return cls(matrix, tuple(sp.sympify(x) for x in b), nodes)

    def subs(self, values) -> Tableau:
        """Substitute ``values`` (a dict of symbol to value) into every entry."""
        return Tableau(
            self.A.subs(values),
            tuple(sp.sympify(x).subs(values) for x in self.b),
            tuple(sp.sympify(x).subs(values) for x in self.c),
        )


def symbolic_tableau(s: int) -> Tableau:
    """General explicit s-stage tableau in the symbols c_i, a_ij (j >= 2), b_i.

    The first column of A is eliminated through the row-sum convention,
    a_i1 = c_i - sum_{j>=2} a_ij, so every remaining symbol is independent.
    """
    if not isinstance(s, int) or s < 1:
        raise ValueError(f"`s` (number of stages) must be an integer >= 1, got {s!r}")
    c = (sp.Integer(0),) + tuple(sp.Symbol(f"c{i}") for i in range(2, s + 1))
    A = sp.zeros(s, s)
    for i in range(1, s):
        inner = [sp.Symbol(f"a{i + 1}{j + 1}") for j in range(1, i)]
        A[i, 0] = c[i] - sum(inner)
        for j, symbol in enumerate(inner, start=1):
            A[i, j] = symbol
    b = tuple(sp.Symbol(f"b{i}") for i in range(1, s + 1))
    return Tableau(A, b, c)


def stage_weights(tree: RootedTree, tableau: Tableau, cache=None) -> list:
    """Per-stage elementary weights Phi_i(t), i = 1..s.

    Phi_i(τ) = 1, and a tree grafted from children u_1..u_m has
    Phi_i = prod_k sum_j a_ij Phi_j(u_k). A leaf child contributes c_i
    directly, which keeps the row-sum convention visible in the formulas.
    """
    if cache is None:
        cache = {}
    if tree in cache:
        return cache[tree]
    s = tableau.stages
    if not tree:
        result = [sp.Integer(1)] * s
    else:
        factors = []
        for child in tree:
            if not child:
                factors.append(list(tableau.c))
                continue
            inner = stage_weights(child, tableau, cache)
            # Phi_j(child) vanishes for the first stages of an explicit method
            # (always for j = 1), so those terms are skipped.
            nonzero = [j for j in range(s) if inner[j] != 0]
            factors.append(
                [
                    sp.Add(*[tableau.A[i, j] * inner[j] for j in nonzero if j < i])
                    for i in range(s)
                ]
            )
        result = [sp.Mul(*[factor[i] for factor in factors]) for i in range(s)]
    cache[tree] = result
    return result


def elementary_weight(tree: RootedTree, tableau: Tableau, cache=None):
    """Elementary weight Phi(t) = sum_i b_i Phi_i(t) of the method."""
    weights = stage_weights(tree, tableau, cache)
    return sp.Add(*[bi * wi for bi, wi in zip(tableau.b, weights, strict=True)])


def order_conditions(s: int, p: int) -> list[tuple[RootedTree, sp.Eq]]:
    """Order conditions Phi(t) = 1/gamma(t) of a general explicit s-stage method.

    Returns one ``(tree, equation)`` pair per rooted tree with at most ``p``
    nodes, in the symbols of :func:`symbolic_tableau`.

    Raises:
        ValueError: if ``p`` is below 1, or ``s`` is below 1 or cannot reach
            order ``p`` (an explicit method has order at most s).

    Examples:
        >>> [str(eq) for _, eq in order_conditions(2, 2)]
        ['Eq(b1 + b2, 1)', 'Eq(b2*c2, 1/2)']
    """
    validate_stages_and_order(s, p)
    tableau = symbolic_tableau(s)
    cache: dict = {}
    return [
        (
            tree,
            # evaluate=False skips SymPy's attempt to decide each equation, which
            # costs more than building it.
            sp.Eq(
                elementary_weight(tree, tableau, cache),
                sp.Rational(1, density(tree)),
                evaluate=False,
            ),
        )
        for tree in trees_up_to(p)
    ]


def residual(tree: RootedTree, tableau: Tableau, cache=None):
    """Residual Phi(t) - 1/gamma(t), zero when the method satisfies the condition."""
    return elementary_weight(tree, tableau, cache) - sp.Rational(1, density(tree))


def principal_error_coefficient(tree: RootedTree, tableau: Tableau, cache=None):
    """tau(t) = (Phi(t) - 1/gamma(t)) / sigma(t), the convention of nodepy."""
    return residual(tree, tableau, cache) / symmetry(tree)


def method_order(tableau: Tableau, max_order: int = 8) -> int:
    """Largest p <= ``max_order`` such that all conditions up to p hold exactly."""
    cache: dict = {}
    for tree in trees_up_to(max_order):
        if sp.simplify(residual(tree, tableau, cache)) != 0:
            return order(tree) - 1
    return max_order


def validate_stages_and_order(s, p) -> None:
    """Raise ValueError unless 1 <= p <= s, where explicit methods exist."""
    if isinstance(p, bool) or not isinstance(p, int) or p < 1:
        raise ValueError(f"`order` must be an integer >= 1, got {p!r}")
    if isinstance(s, bool) or not isinstance(s, int) or s < 1:
        raise ValueError(f"`stages` must be an integer >= 1, got {s!r}")
    if s < p:
        raise ValueError(
            f"an explicit method with {s} stages has order at most {s}, so order "
            f"{p} needs `stages` >= {p}"
        )
