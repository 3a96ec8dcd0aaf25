"""Named Runge-Kutta families, built from the derived solution branches.

The spec below only names the branches and chooses their parameters, domains
and well-known members.  Every coefficient formula comes from
:func:`tableau_gen.derivation.derive`.  A branch the derivation finds that the
spec does not name, or a spec entry that matches no branch, raises
:class:`FamilySpecError`, so the spec cannot silently drift from the algebra.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from tableau_gen.conditions import Tableau
from tableau_gen.derivation import Branch, derive, singular_factors

U, V = sp.symbols("u v")
PARAMETER_SYMBOLS = {"u": U, "v": V}


class FamilySpecError(RuntimeError):
    """The family spec and the derived branches do not match."""


@dataclass(frozen=True)
class FamilySpec:
    """How to name and parameterise one derived branch.

    Attributes:
        name: lowercase identifier, also the solver name (``rk2:u=0.5``).
        title: one-line description.
        stages: s, equal to the order p.
        nodes: fixed node values (c2, c3) that identify a degenerate branch, or
            None for the general family whose nodes are free.
        roles: tableau entry that each parameter equals, e.g. {"u": "c2"}.
        domain: admissible box per parameter, chosen to exclude the singular
            set so that clamping a learnable parameter into it stays valid.
        default: member used when no parameter is given.
        named_members: published methods of the family.
    """

    name: str
    title: str
    stages: int
    nodes: tuple | None
    roles: dict
    domain: dict
    default: dict
    named_members: dict


# The domains avoid every singular value: for rk3 the box keeps u < 2/3 and
# u < v; for rk4 it keeps 0 < u < v < 1/2 < 1 and stays below the curve
# 6uv - 4u - 4v + 3 = 0, which lies above v = 3/4 for 0 < u < 1/2.
SPEC: tuple[FamilySpec, ...] = (
    FamilySpec(
        name="rk2",
        title="general two-stage, order 2",
        stages=2,
        nodes=None,
        roles={"u": "c2"},
        domain={"u": (0.01, 2.0)},
        default={"u": "1/2"},
        named_members={
            "midpoint": {"u": "1/2"},
            "heun": {"u": "1"},
            "ralston": {"u": "2/3"},
        },
    ),
    FamilySpec(
        name="rk3",
        title="general three-stage, order 3",
        stages=3,
        nodes=None,
        roles={"u": "c2", "v": "c3"},
        domain={"u": (0.05, 0.6), "v": (0.65, 1.0)},
        default={"u": "1/2", "v": "1"},
        named_members={
            "kutta": {"u": "1/2", "v": "1"},
            "heun": {"u": "1/3", "v": "2/3"},
            "ralston": {"u": "1/2", "v": "3/4"},
        },
    ),
    FamilySpec(
        name="rk3_c2_two_thirds_c3_two_thirds",
        title="three-stage, order 3, c2 = c3 = 2/3, free weight b3",
        stages=3,
        nodes=("2/3", "2/3"),
        roles={"u": "b3"},
        domain={"u": (0.1, 1.0)},
        default={"u": "3/8"},
        named_members={},
    ),
    FamilySpec(
        name="rk3_c2_two_thirds_c3_zero",
        title="three-stage, order 3, c2 = 2/3 and c3 = 0, free weight b3",
        stages=3,
        nodes=("2/3", "0"),
        roles={"u": "b3"},
        domain={"u": (0.05, 1.0)},
        default={"u": "1/4"},
        named_members={},
    ),
    FamilySpec(
        name="rk4",
        title="general four-stage, order 4 (c4 = 1)",
        stages=4,
        nodes=None,
        roles={"u": "c2", "v": "c3"},
        domain={"u": (0.2, 0.42), "v": (0.44, 0.74)},
        default={"u": "1/3", "v": "2/3"},
        named_members={
            "three_eighths": {"u": "1/3", "v": "2/3"},
            "ralston": {"u": "2/5", "v": "7/8 - 3*sqrt(5)/16"},
        },
    ),
    FamilySpec(
        name="rk4_c2_half_c3_zero",
        title="four-stage, order 4, c2 = 1/2 and c3 = 0, free weight b3",
        stages=4,
        nodes=("1/2", "0"),
        roles={"u": "b3"},
        domain={"u": (-1.0, -0.01)},
        default={"u": "-5/126"},
        named_members={},
    ),
    FamilySpec(
        name="rk4_c2_half_c3_half",
        title="four-stage, order 4, c2 = c3 = 1/2, free weight b3",
        stages=4,
        nodes=("1/2", "1/2"),
        roles={"u": "b3"},
        domain={"u": (0.05, 1.0)},
        default={"u": "1/3"},
        named_members={"classic": {"u": "1/3"}},
    ),
    FamilySpec(
        name="rk4_c2_one_c3_half",
        title="four-stage, order 4, c2 = 1 and c3 = 1/2, free weight b4",
        stages=4,
        nodes=("1", "1/2"),
        roles={"u": "b4"},
        domain={"u": (0.02, 1.0)},
        default={"u": "1/6"},
        named_members={},
    ),
)


@dataclass(frozen=True, eq=False)
class Family:
    """A derived family: its spec and the tableau as functions of u (and v).

    Families compare and hash by identity; :func:`derive_families` caches them,
    so each family exists once and per-family results can be cached too.
    """

    spec: FamilySpec
    tableau: Tableau
    singular: tuple  # irreducible polynomials in u, v that must not vanish

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def order(self) -> int:
        return self.spec.stages

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(self.spec.roles)

    @property
    def symbols(self) -> tuple:
        return tuple(PARAMETER_SYMBOLS[name] for name in self.parameters)


@cache
def derive_families(stages: tuple[int, ...] = (2, 3, 4)) -> tuple[Family, ...]:
    """Derive every branch for s = p in ``stages`` and name it from the spec.

    Raises:
        FamilySpecError: if a derived branch has no spec entry, or a spec entry
            matches no branch.
    """
    families = []
    for s in stages:
        specs = [spec for spec in SPEC if spec.stages == s]
        branches = list(derive(s, s).branches)
        for spec in specs:
            matching = [b for b in branches if _matches(spec, b)]
            if len(matching) != 1:
                raise FamilySpecError(
                    f"spec entry {spec.name!r} matches {len(matching)} derived "
                    f"branches, expected exactly 1"
                )
            branches.remove(matching[0])
            families.append(_build(spec, matching[0]))
        if branches:
            found = ", ".join(str(b.point()) for b in branches)
            raise FamilySpecError(
                f"derived branches with s = p = {s} have no spec entry: nodes {found}"
            )
    return tuple(families)


def _matches(spec: FamilySpec, branch: Branch) -> bool:
    point = branch.point()
    if spec.nodes is None:
        return all(not value.is_number for value in point[:2])
    expected = tuple(sp.Rational(value) for value in spec.nodes)
    return point[:2] == expected


def _build(spec: FamilySpec, branch: Branch) -> Family:
    """Re-express the branch in the spec's parameters u (and v)."""
    if len(spec.roles) != len(branch.free):
        raise FamilySpecError(
            f"{spec.name}: the spec names {len(spec.roles)} parameters, but the "
            f"derived branch has {len(branch.free)} free unknowns {branch.free}"
        )
    # Each parameter equals a tableau entry, which is a formula in the branch's
    # free unknowns.  Solving those equations gives the free unknowns in u, v.
    equations = [
        PARAMETER_SYMBOLS[name] - branch.values[sp.Symbol(role)]
        for name, role in spec.roles.items()
    ]
    solutions = sp.solve(equations, branch.free, dict=True)
    if len(solutions) != 1:
        raise FamilySpecError(
            f"{spec.name}: the parameter roles {spec.roles} do not determine the "
            f"branch uniquely ({len(solutions)} solutions)"
        )
    (substitution,) = solutions

    values = {
        unknown: sp.factor(sp.cancel(value.subs(substitution)))
        for unknown, value in branch.values.items()
    }
    reparameterised = Branch(branch.stages, branch.order, (), values, ())
    tableau = reparameterised.tableau()
    tableau = Tableau(
        tableau.A.applyfunc(lambda x: sp.factor(sp.cancel(x))),
        tuple(sp.factor(sp.cancel(x)) for x in tableau.b),
        tuple(sp.factor(sp.cancel(x)) for x in tableau.c),
    )

    # The singular set comes from the final formulas, so it is the same however
    # the case split reached the branch.
    entries = Branch(branch.stages, branch.order, (), _entries(tableau), ())
    singular = singular_factors(entries)
    return Family(spec, tableau, tuple(singular))


def _entries(tableau: Tableau) -> dict:
    entries = {}
    for i in range(tableau.stages):
        entries[f"b{i + 1}"] = tableau.b[i]
        entries[f"c{i + 1}"] = tableau.c[i]
        for j in range(i):
            entries[f"a{i + 1}{j + 1}"] = tableau.A[i, j]
    return entries


def family_by_name(name: str) -> Family:
    """Look up a derived family by name.

    Raises:
        ValueError: naming the valid families when ``name`` is unknown.
    """
    for family in derive_families():
        if family.name == name:
            return family
    valid = ", ".join(spec.name for spec in SPEC)
    raise ValueError(f"unknown family {name!r}; valid families: {valid}")


def parse_parameter_value(text: str):
    """Parse ``text`` as an exact rational: ``2/3``, ``0.4``, ``-1``, ``1e-3``.

    Raises:
        ValueError: if ``text`` is not a finite rational number.
    """
    try:
        value = sp.Rational(str(text).strip())
    except (TypeError, ValueError, SyntaxError) as error:
        raise ValueError(
            f"invalid parameter value {text!r}: expected a rational number such "
            f"as 2/3, 0.4 or -1"
        ) from error
    return value


def member(family: Family, values: dict) -> Tableau:
    """Evaluate the family's tableau at the given parameter values, exactly for
    exact values.

    Arguments:
        family: a derived family.
        values: parameter name (``u``, ``v``) to a number or SymPy expression;
            every parameter of the family must be given.

    Raises:
        ValueError: for an unknown or missing parameter, or values in the
            singular set; the message names the values and the valid domain.
    """
    unknown = sorted(set(values) - set(family.parameters))
    if unknown:
        raise ValueError(
            f"{family.name} has no parameter {', '.join(unknown)}; its parameters "
            f"are {', '.join(family.parameters)}"
        )
    missing = [name for name in family.parameters if name not in values]
    if missing:
        raise ValueError(
            f"{family.name} needs a value for {', '.join(missing)} "
            f"({describe_domain(family)})"
        )
    substitution = {
        PARAMETER_SYMBOLS[name]: sp.sympify(values[name]) for name in values
    }
    for factor in family.singular:
        if sp.simplify(factor.subs(substitution)) == 0:
            given = ", ".join(f"{name} = {values[name]}" for name in family.parameters)
            raise ValueError(
                f"{given} is in the singular set of {family.name}, where "
                f"{factor} = 0 and the tableau is undefined; choose values off the "
                f"singular set, for example inside {describe_domain(family)}"
            )
    tableau = family.tableau.subs(substitution)
    if all(value.is_Rational for value in substitution.values()):
        return tableau
    # Irrational values (Ralston's fourth-order node) leave nested radicals.
    return Tableau(
        tableau.A.applyfunc(_simplify_radicals),
        tuple(_simplify_radicals(x) for x in tableau.b),
        tuple(_simplify_radicals(x) for x in tableau.c),
    )


def _simplify_radicals(expression):
    return sp.radsimp(sp.simplify(expression))


def describe_domain(family: Family) -> str:
    """Readable admissible box, e.g. ``u in [0.05, 0.6], v in [0.65, 1.0]``."""
    return ", ".join(
        f"{name} in [{low}, {high}]" for name, (low, high) in family.spec.domain.items()
    )
