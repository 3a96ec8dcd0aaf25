"""Initial value problems with closed-form solutions, on [0, 1], in float64.

Each problem is a right-hand side f(t, y) that works on batched states of shape
(batch, dim) and on 0-dim tensor times, plus the exact state at t = 1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sympy
import torch
from hypothesis import strategies as st

CATALOGUE = Path(__file__).resolve().parents[2] / "tableau_gen" / "catalogue.json"
FAMILY_RECORDS = {f["name"]: f for f in json.loads(CATALOGUE.read_text())["families"]}


@dataclass
class Problem:
    name: str
    rhs: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    y0: torch.Tensor
    exact: Callable[[float], torch.Tensor]  # state at time t


def linear_system(seed: int, dim: int = 3) -> Problem:
    """y' = M y with a random M of spectral norm <= 1, solved by the matrix exponential.

    Its principal error never vanishes: for linear autonomous problems every s = p
    member multiplies by the same truncated exponential series.
    """
    generator = torch.Generator().manual_seed(seed)
    M = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    M = M / torch.linalg.matrix_norm(M, ord=2)
    y0 = torch.randn(2, dim, generator=generator, dtype=torch.float64)

    def exact(t: float) -> torch.Tensor:
        return y0 @ torch.linalg.matrix_exp(M * t).T

    return Problem("linear", lambda t, y: y @ M.T.to(y.dtype), y0, exact)


def cosine_growth(seed: int) -> Problem:
    """y' = y cos(t), non-autonomous; y(t) = y0 exp(sin t)."""
    generator = torch.Generator().manual_seed(seed)
    y0 = torch.rand(3, 1, generator=generator, dtype=torch.float64) + 0.5
    return Problem(
        "cosine growth",
        lambda t, y: y * torch.cos(t),
        y0,
        lambda t: y0 * math.exp(math.sin(t)),
    )


def logistic(seed: int) -> Problem:
    """y' = r y (1 - y), non-linear; y(t) = 1 / (1 + (1/y0 - 1) exp(-r t))."""
    generator = torch.Generator().manual_seed(seed)
    rate = 0.5 + 1.5 * torch.rand((), generator=generator, dtype=torch.float64).item()
    y0 = 0.1 + 0.8 * torch.rand(3, 1, generator=generator, dtype=torch.float64)
    return Problem(
        "logistic",
        lambda t, y: rate * y * (1 - y),
        y0,
        lambda t: 1 / (1 + (1 / y0 - 1) * math.exp(-rate * t)),
    )


def time_only(seed: int) -> Problem:
    """y' = cos(a t) exp(t / 2), a quadrature; y(t) from the antiderivative."""
    generator = torch.Generator().manual_seed(seed)
    a = 1.0 + 3.0 * torch.rand((), generator=generator, dtype=torch.float64).item()
    y0 = torch.randn(2, 2, generator=generator, dtype=torch.float64)

    def antiderivative(t: float) -> float:
        # d/dt [exp(t/2) (cos(a t)/2 + a sin(a t)) / (1/4 + a^2)] = cos(a t) exp(t/2)
        return (
            math.exp(t / 2)
            * (0.5 * math.cos(a * t) + a * math.sin(a * t))
            / (0.25 + a * a)
        )

    return Problem(
        "time only",
        lambda t, y: torch.cos(a * t) * torch.exp(t / 2) * torch.ones_like(y),
        y0,
        lambda t: y0 + (antiderivative(t) - antiderivative(0.0)),
    )


PROBLEM_FACTORIES = (linear_system, cosine_growth, logistic, time_only)

# Below this error float64 round-off (about 1e-14 per step) blurs the ratios.
ROUND_OFF_FLOOR = 1e-11


def settled_order(
    error_at: Callable[[int], float], minimum_order: float
) -> tuple[float, list[float]]:
    """Refine from 16 steps until the observed order settles at minimum_order or above.

    error_at(steps) returns the error of a solve with that many steps. A member
    whose principal error nearly cancels on a problem shows erratic ratios at
    coarse steps, so refining continues until two successive observed orders agree
    within 0.1 and reach minimum_order. It stops at 2048 steps or when the error
    reaches ROUND_OFF_FLOOR, and returns the last observed order and all errors.
    """
    steps, errors, orders = 16, [], []
    while True:
        errors.append(error_at(steps))
        if len(errors) >= 2:
            orders.append(math.log2(errors[-2] / max(errors[-1], 1e-300)))
        settled = (
            len(orders) >= 2
            and abs(orders[-1] - orders[-2]) <= 0.1
            and orders[-1] >= minimum_order
        )
        if settled or errors[-1] < ROUND_OFF_FLOOR or steps >= 2048:
            # No ratio exists when the first error is already at round-off.
            return (orders[-1] if orders else math.inf), errors
        steps *= 2


# Distance kept from the singular set, measured on the catalogue's singular factors.
# Near it the coefficients blow up and the asymptotic regime starts at tiny steps.
SINGULAR_MARGIN = 0.1


def _singular_factors(record: dict):
    symbols = [sympy.Symbol(name) for name in record["parameters"]]
    return [
        sympy.lambdify(
            symbols, sympy.sympify(text, locals={s.name: s for s in symbols})
        )
        for text in record["singular"]["nonzero"]
    ]


_FACTORS = {name: _singular_factors(record) for name, record in FAMILY_RECORDS.items()}


def parameters_for(family: str) -> st.SearchStrategy[dict[str, float]]:
    """Draw points of the family's domain at least SINGULAR_MARGIN from singular."""
    record = FAMILY_RECORDS[family]
    strategies = {
        name: st.floats(*record["domain"][name], allow_nan=False, allow_infinity=False)
        for name in record["parameters"]
    }
    factors = _FACTORS[family]

    def clear_of_singular_set(point: dict[str, float]) -> bool:
        values = [point[name] for name in record["parameters"]]
        return all(abs(factor(*values)) > SINGULAR_MARGIN for factor in factors)

    return st.fixed_dictionaries(strategies).filter(clear_of_singular_set)


@st.composite
def family_members(draw) -> tuple[str, dict[str, float]]:
    family = draw(st.sampled_from(sorted(FAMILY_RECORDS)))
    return family, draw(parameters_for(family))


problems = st.builds(
    lambda factory, seed: factory(seed),
    st.sampled_from(PROBLEM_FACTORIES),
    st.integers(0, 2**16),
)
