"""Observed convergence order of family members on problems with known solutions."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from metanode.solvers import make_solver
from tests.properties.problems import (
    FAMILY_RECORDS,
    ROUND_OFF_FLOOR,
    family_members,
    linear_system,
    problems,
    settled_order,
)

STEP_COUNTS = (16, 32, 64)
# Observed orders come from error ratios at 16, 32 and 64 steps. Higher-order terms
# still shift a single ratio by up to about 0.2 there, so 0.3 is the band.
ORDER_TOLERANCE = 0.3


def final_error(family, point, problem, steps: int) -> float:
    solver = make_solver(family, **point, steps=steps)
    y1 = solver(problem.rhs, problem.y0)
    return (y1 - problem.exact(1.0)).abs().max().item()


def observed_orders(errors: list[float]) -> list[float]:
    return [math.log2(coarse / fine) for coarse, fine in zip(errors, errors[1:])]


@given(member=family_members(), problem=problems)
def test_converges_at_least_at_order_p(member, problem):
    family, point = member
    order = FAMILY_RECORDS[family]["order"]
    observed, errors = settled_order(
        lambda steps: final_error(family, point, problem, steps),
        minimum_order=order - ORDER_TOLERANCE,
    )
    if errors[-1] < ROUND_OFF_FLOOR:
        return  # converged to round-off before the ratios could settle
    # A particular member can cancel its principal error on a particular non-linear
    # problem and converge faster, so only the lower bound holds for every pair.
    assert observed >= order - ORDER_TOLERANCE, (family, point, problem.name, errors)


@given(member=family_members(), seed=st.integers(0, 2**16))
def test_order_is_exactly_p_on_linear_system(member, seed):
    family, point = member
    order = FAMILY_RECORDS[family]["order"]
    problem = linear_system(seed)
    errors = [final_error(family, point, problem, steps) for steps in STEP_COUNTS]
    for observed in observed_orders(errors):
        assert abs(observed - order) <= ORDER_TOLERANCE, (family, point, errors)
        # Order p + 1 would need a ratio of 2^(p+1); the band above excludes it.
        assert observed < order + 1 - ORDER_TOLERANCE, (family, point, errors)
