"""Observed convergence order of family members on problems with known solutions."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from metanode.solvers import make_solver
from tests.properties.problems import (
    FAMILY_RECORDS,
    family_members,
    linear_system,
    problems,
)

STEP_COUNTS = (16, 32, 64)
# Observed orders come from error ratios at 16, 32 and 64 steps. Higher-order terms
# still shift a single ratio by up to about 0.2 there, so 0.3 is the band.
ORDER_TOLERANCE = 0.3


def final_errors(family, point, problem) -> list[float]:
    errors = []
    for steps in STEP_COUNTS:
        solver = make_solver(family, **point, steps=steps)
        y1 = solver(problem.rhs, problem.y0)
        errors.append((y1 - problem.exact(1.0)).abs().max().item())
    return errors


def observed_orders(errors: list[float]) -> list[float]:
    return [math.log2(coarse / fine) for coarse, fine in zip(errors, errors[1:])]


# Below this error float64 round-off (about 1e-14 per step) blurs the ratios.
ROUND_OFF_FLOOR = 1e-11


def settled_order(family, point, problem) -> tuple[float, list[float]]:
    """Refine from 16 steps until two successive observed orders agree within 0.1.

    A member whose principal error nearly cancels on a problem shows erratic ratios
    at coarse steps; refining until the ratios settle measures its true order.
    Stops at 1024 steps or when the error reaches the round-off floor.
    """
    steps, errors, orders = 16, [], []
    while True:
        solver = make_solver(family, **point, steps=steps)
        y1 = solver(problem.rhs, problem.y0)
        errors.append((y1 - problem.exact(1.0)).abs().max().item())
        if len(errors) >= 2:
            orders.append(math.log2(errors[-2] / max(errors[-1], 1e-300)))
        settled = len(orders) >= 2 and abs(orders[-1] - orders[-2]) <= 0.1
        if settled or errors[-1] < ROUND_OFF_FLOOR or steps >= 1024:
            return orders[-1], errors
        steps *= 2


@given(member=family_members(), problem=problems)
def test_converges_at_least_at_order_p(member, problem):
    family, point = member
    order = FAMILY_RECORDS[family]["order"]
    observed, errors = settled_order(family, point, problem)
    if errors[-1] < ROUND_OFF_FLOOR:
        return  # converged to round-off before the ratios could settle
    # A particular member can cancel its principal error on a particular non-linear
    # problem and converge faster, so only the lower bound holds for every pair.
    assert observed >= order - ORDER_TOLERANCE, (family, point, problem.name, errors)


@given(member=family_members(), seed=st.integers(0, 2**16))
def test_order_is_exactly_p_on_linear_system(member, seed):
    family, point = member
    order = FAMILY_RECORDS[family]["order"]
    errors = final_errors(family, point, linear_system(seed))
    for observed in observed_orders(errors):
        assert abs(observed - order) <= ORDER_TOLERANCE, (family, point, errors)
        # Order p + 1 would need a ratio of 2^(p+1); the band above excludes it.
        assert observed < order + 1 - ORDER_TOLERANCE, (family, point, errors)
