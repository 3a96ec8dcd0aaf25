"""Solver invariants: batching, grid options, time reversal, dtypes and gradients."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from metanode.solvers import make_solver
from tests.properties.problems import (
    FAMILY_RECORDS,
    ROUND_OFF_FLOOR,
    family_members,
    problems,
    settled_order,
)

steps_counts = st.integers(2, 24)


@given(member=family_members(), problem=problems, steps=steps_counts)
def test_batch_equals_items(member, problem, steps):
    family, point = member
    solver = make_solver(family, **point, steps=steps)
    batched = solver(problem.rhs, problem.y0)
    for index in range(problem.y0.shape[0]):
        single = solver(problem.rhs, problem.y0[index : index + 1])
        # Only the matrix product of the linear problem may round differently
        # for different batch sizes.
        torch.testing.assert_close(single[0], batched[index], rtol=1e-13, atol=1e-14)


@given(member=family_members(), problem=problems, steps=steps_counts)
def test_grid_options_agree(member, problem, steps):
    family, point = member
    by_steps = make_solver(family, **point, steps=steps)(problem.rhs, problem.y0)
    by_size = make_solver(family, **point, step_size=1.0 / steps)(
        problem.rhs, problem.y0
    )
    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    by_grid = make_solver(family, **point, grid=grid)(problem.rhs, problem.y0)
    # The three describe the same grid up to rounding of the grid times (1e-16),
    # which moves the result by far less than 1e-12.
    torch.testing.assert_close(by_size, by_steps, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(by_grid, by_steps, rtol=1e-12, atol=1e-12)


@given(member=family_members(), problem=problems)
def test_forward_then_backward_returns_to_start(member, problem):
    family, point = member
    order = FAMILY_RECORDS[family]["order"]

    def round_trip_error(steps: int) -> float:
        solver = make_solver(family, **point, steps=steps)
        there = solver(problem.rhs, problem.y0, 0.0, 1.0)
        back = solver(problem.rhs, there, 1.0, 0.0)
        return (back - problem.y0).abs().max().item()

    # The round trip is a method of order at least p, so its distance from the
    # start must shrink at that order. Its forward and backward errors can partly
    # cancel at coarse steps, so the order is read where the ratios have settled.
    observed, errors = settled_order(round_trip_error, minimum_order=order - 0.5)
    if errors[-1] >= ROUND_OFF_FLOOR:
        assert observed >= order - 0.5, errors


@given(member=family_members(), problem=problems, steps=steps_counts)
def test_float32_agrees_with_float64(member, problem, steps):
    family, point = member
    solver = make_solver(family, **point, steps=steps)
    wide = solver(problem.rhs, problem.y0)
    narrow = solver(problem.rhs, problem.y0.float())
    assert narrow.dtype == torch.float32
    scale = wide.abs().max().item() + 1.0
    # float32 carries 6e-8 relative error per operation; a few hundred stage
    # operations accumulate to well below 1e-5 of the solution's size.
    assert (narrow.double() - wide).abs().max().item() <= 1e-5 * scale


@given(member=family_members(), problem=problems)
def test_parameter_gradients_match_central_differences(member, problem):
    family, point = member
    solver = make_solver(family, **point, steps=6, learnable=True)
    solver(problem.rhs, problem.y0).square().sum().backward()

    def loss(name: str, value: float) -> float:
        shifted = make_solver(family, **{**point, name: value}, steps=6)
        return shifted(problem.rhs, problem.y0).square().sum().item()

    h = 1e-4
    for name in FAMILY_RECORDS[family]["parameters"]:
        values = [loss(name, point[name] + k * h) for k in (-2, -1, 1, 2)]
        expected = (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * h)
        gradient = getattr(solver, name).grad.item()
        # The five-point difference leaves O(h^4) truncation and O(1e-16 / h)
        # rounding, both scaled up by coefficients of size 1/margin^2 near the
        # singular set: 1e-5 relative (or 1e-8 absolute) bounds them.
        assert abs(gradient - expected) <= 1e-5 * abs(expected) + 1e-8, (
            name,
            gradient,
            expected,
        )
