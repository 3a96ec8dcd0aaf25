"""Generated solver modules against a plain tableau stepper and the solver contract."""

from __future__ import annotations

import json
import math
import random
import warnings
from fractions import Fraction
from pathlib import Path

import pytest
import sympy
import torch
from torch import nn

from metanode.generated import FAMILIES
from metanode.solvers import make_solver, odeint

CATALOGUE = Path(__file__).resolve().parent.parent / "tableau_gen" / "catalogue.json"
FAMILY_RECORDS = {f["name"]: f for f in json.loads(CATALOGUE.read_text())["families"]}


def sample_parameters(record: dict, count: int, seed: int) -> list[dict[str, float]]:
    """Draw parameter points in the family's domain, away from its singular set."""
    rng = random.Random(seed)
    solver_class = FAMILIES[record["name"]]
    symbols = {name: sympy.Symbol(name) for name in record["parameters"]}
    factors = [
        sympy.lambdify(list(symbols.values()), sympy.sympify(text, locals=symbols))
        for text in record["singular"]["nonzero"]
    ]
    points = []
    while len(points) < count:
        point = {
            name: rng.uniform(*solver_class.domain[name])
            for name in record["parameters"]
        }
        # A margin of 0.05 keeps coefficients moderate, so 1e-12 comparisons hold.
        if all(abs(f(*point.values())) > 0.05 for f in factors):
            points.append(point)
    return points


def reference_tableau(record: dict, point: dict[str, float]):
    """Evaluate the catalogue's formulas directly with SymPy, in float64."""
    symbols = {name: sympy.Symbol(name) for name in record["parameters"]}
    values = {symbols[name]: sympy.Float(point[name], 30) for name in point}

    def evaluate(text):
        return float(sympy.sympify(text, locals=symbols).subs(values))

    A = [[evaluate(x) for x in row] for row in record["A"]]
    b = [evaluate(x) for x in record["b"]]
    c = [evaluate(x) for x in record["c"]]
    return A, b, c


def reference_step(func, t, dt, y, A, b, c):
    """One explicit Runge-Kutta step read straight off (A, b, c)."""
    stages = []
    for i in range(len(b)):
        state = y + dt * sum(
            (A[i][j] * stages[j] for j in range(i)), torch.zeros_like(y)
        )
        stages.append(func(t + c[i] * dt, state))
    return y + dt * sum(b[i] * stages[i] for i in range(len(b)))


def nonlinear_rhs(t, y):
    return torch.sin(y) * torch.cos(3 * t) - 0.5 * y**2 + t


ALL_FAMILIES = sorted(FAMILIES)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_step_matches_reference(family):
    record = FAMILY_RECORDS[family]
    generator = torch.Generator().manual_seed(0)
    y = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    t = torch.tensor(0.3, dtype=torch.float64)
    for point in sample_parameters(record, count=6, seed=1):
        solver = make_solver(family, **point, steps=1)
        coefficients = solver._solve_coefficients(y)
        generated = solver.step(nonlinear_rhs, t, 0.1, y, coefficients)
        A, b, c = reference_tableau(record, point)
        expected = reference_step(nonlinear_rhs, t, 0.1, y, A, b, c)
        # Both evaluate the same formulas in float64; 1e-12 relative leaves room
        # for different operation order and nothing else.
        torch.testing.assert_close(generated, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_tableau_matches_catalogue(family):
    record = FAMILY_RECORDS[family]
    for point in sample_parameters(record, count=3, seed=2):
        A, b, c = make_solver(family, **point, steps=1).tableau()
        A_ref, b_ref, c_ref = reference_tableau(record, point)
        torch.testing.assert_close(A, torch.tensor(A_ref, dtype=torch.float64))
        torch.testing.assert_close(b, torch.tensor(b_ref, dtype=torch.float64))
        torch.testing.assert_close(c, torch.tensor(c_ref, dtype=torch.float64))
        assert torch.equal(A, A.tril(-1)), "A must be strictly lower triangular"
        torch.testing.assert_close(A.sum(dim=1), c)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_parameter_gradient_matches_finite_difference(family):
    record = FAMILY_RECORDS[family]
    point = sample_parameters(record, count=1, seed=3)[0]
    y0 = torch.linspace(-1, 1, 4, dtype=torch.float64)

    def loss_at(values: dict[str, float]) -> float:
        solver = make_solver(family, **values, steps=3)
        return float(solver(nonlinear_rhs, y0).square().sum())

    solver = make_solver(family, **point, steps=3, learnable=True)
    solver(nonlinear_rhs, y0).square().sum().backward()
    h = 1e-4
    for name in record["parameters"]:
        values = [loss_at({**point, name: point[name] + k * h}) for k in (-2, -1, 1, 2)]
        expected = (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * h)
        gradient = getattr(solver, name).grad.item()
        # The five-point difference has O(h^4) truncation and O(eps / h) rounding
        # error. Coefficients grow like 1/u^2 near the singular set, which scales
        # both, so 1e-6 relative is the bound that is met over the whole domain.
        assert gradient == pytest.approx(expected, rel=1e-6, abs=1e-10), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 7)])
def test_dtype_and_shape_follow_state(dtype, shape):
    y0 = torch.rand(shape, dtype=dtype)
    for family in ALL_FAMILIES:
        solver = make_solver(family, steps=16)
        y1 = solver(lambda t, y: -y * t, y0)
        assert y1.dtype == dtype
        assert y1.shape == y0.shape
        exact = y0.double() * math.exp(-0.5)
        # Every family has order >= 2; with h = 1/16 the error on y' = -t y is
        # below 3e-4, and float32 rounding adds about 1e-7.
        torch.testing.assert_close(y1.double(), exact, rtol=1e-3, atol=1e-3)


def test_module_right_hand_side_and_compile():
    torch.manual_seed(0)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))

        def forward(self, t, y):
            return self.net(y)

    func = MLP()
    solver = make_solver("rk4", steps=8)
    y0 = torch.randn(64, 2)
    eager = solver(func, y0)
    compiled = torch.compile(solver)
    result = compiled(func, y0)
    # Compiled kernels may fuse and reorder float32 arithmetic: allow 1e-5.
    torch.testing.assert_close(result, eager, rtol=1e-5, atol=1e-5)


class CountingRHS:
    def __init__(self):
        self.times = []

    def __call__(self, t, y):
        self.times.append(float(t))
        return torch.ones_like(y)


def test_steps_count_is_exact():
    for steps in (1, 3, 7, 10):
        rhs = CountingRHS()
        solver = make_solver("rk2", steps=steps)
        solver(rhs, torch.zeros(1), 0.1, 0.7)
        assert len(rhs.times) == 2 * steps


def test_step_size_shortens_last_step():
    rhs = CountingRHS()
    solver = make_solver("rk2", u=1.0, step_size=0.3)
    y1 = solver(rhs, torch.zeros(1, dtype=torch.float64), 0.0, 1.0)
    # Steps 0.3, 0.3, 0.3, 0.1: four steps, first stages at 0, 0.3, 0.6, 0.9.
    assert rhs.times[::2] == pytest.approx([0.0, 0.3, 0.6, 0.9])
    assert y1.item() == pytest.approx(1.0)


def test_step_size_that_divides_interval():
    rhs = CountingRHS()
    make_solver("rk2", step_size=0.1)(rhs, torch.zeros(1), 0.0, 0.3)
    assert len(rhs.times) == 2 * 3


def test_backward_time_integration():
    y0 = torch.tensor([1.0], dtype=torch.float64)
    solver = make_solver("rk4", steps=20)
    y1 = solver(lambda t, y: y, y0, 1.0, 0.0)
    # Fourth order with h = 0.05: error about 1e-8.
    assert y1.item() == pytest.approx(math.exp(-1.0), rel=1e-7)


def test_grid_options_agree():
    y0 = torch.tensor([0.5, -0.2], dtype=torch.float64)
    by_steps = make_solver("rk3", steps=4)(nonlinear_rhs, y0)
    by_size = make_solver("rk3", step_size=0.25)(nonlinear_rhs, y0)
    by_grid = make_solver("rk3", grid=[0.0, 0.25, 0.5, 0.75, 1.0])(nonlinear_rhs, y0)
    # The three grids are the same points, up to rounding of 0.25 * k.
    torch.testing.assert_close(by_steps, by_size, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(by_steps, by_grid, rtol=1e-14, atol=1e-14)


def test_requested_times_are_inserted():
    y0 = torch.tensor([1.0], dtype=torch.float64)
    solver = make_solver("rk4", steps=10)
    states = solver(lambda t, y: -y, y0, t_eval=[0.0, 0.25, 1.0])
    assert states.shape == (3, 1)
    assert states[0].item() == 1.0
    # Inserting 0.25 splits one step; the values stay fourth-order accurate.
    assert states[1].item() == pytest.approx(math.exp(-0.25), rel=1e-6)
    assert states[2].item() == pytest.approx(math.exp(-1.0), rel=1e-6)


def test_odeint_returns_states_at_times():
    t = torch.linspace(0, 1, 5)
    states = odeint(lambda t, y: -y, torch.ones(3), t, method="rk2", options={"u": 0.5})
    assert states.shape == (5, 3)
    assert torch.equal(states[0], torch.ones(3))
    # On y' = -y every two-stage second-order member multiplies by the stability
    # polynomial R(-h) = 1 - h + h^2/2 per step; float32 rounding only.
    h = 0.25
    expected = (1 - h + h**2 / 2) ** torch.arange(5.0)
    torch.testing.assert_close(states[:, 0], expected, rtol=1e-6, atol=1e-6)


def test_odeint_rejects_unknown_option():
    with pytest.raises(ValueError, match="unknown option 'rtol_scale'"):
        odeint(lambda t, y: y, torch.ones(1), [0.0, 1.0], options={"rtol_scale": 1})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be a positive integer"),
        ({"steps": -2}, "steps must be a positive integer"),
        ({"steps": 2.5}, "steps must be a positive integer"),
        ({"step_size": 0.0}, "step_size must be a positive finite number"),
        ({"step_size": -0.1}, "step_size must be a positive finite number"),
        ({"steps": 4, "step_size": 0.25}, "exactly one of steps, step_size or grid"),
        ({}, "exactly one of steps, step_size or grid"),
        ({"grid": [0.0, 0.5, 0.5, 1.0]}, "strictly increasing or strictly decreasing"),
        ({"grid": [0.0, 0.6, 0.4, 1.0]}, "strictly increasing or strictly decreasing"),
        ({"grid": [0.0]}, "at least two times"),
    ],
)
def test_invalid_grid_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_solver("rk2", **kwargs)


def test_forbidden_values_rejected():
    for family, record in FAMILY_RECORDS.items():
        solver_class = FAMILIES[family]
        for name, values in record["singular"]["forbidden_values"].items():
            for text in values:
                point = {**solver_class.defaults, name: float(Fraction(text))}
                with pytest.raises(ValueError, match=f"{name}=") as error:
                    make_solver(family, **point, steps=2)
                assert "singular set" in str(error.value)


def test_unknown_family_and_parameter_rejected():
    with pytest.raises(ValueError, match="unknown solver family 'rk7'"):
        make_solver("rk7", steps=2)
    with pytest.raises(ValueError, match="rk2 has no parameter v"):
        make_solver("rk2", u=0.5, v=0.3, steps=2)


def test_learnable_switch_and_projection():
    solver = make_solver("rk2", u=0.5, steps=2)
    assert [name for name, _ in solver.named_buffers()] == ["u"]
    solver.learnable = True
    assert [name for name, _ in solver.named_parameters()] == ["u"]
    low, high = solver.domain["u"]
    with torch.no_grad():
        solver.u.fill_(high + 5.0)
    solver.project_()
    assert solver.u.item() == high
    with torch.no_grad():
        solver.u.fill_(0.0)
    with pytest.raises(ValueError, match="singular set"):
        solver(lambda t, y: y, torch.ones(1))
    solver.learnable = False
    assert [name for name, _ in solver.named_parameters()] == []


def test_tensor_requiring_grad_rejected():
    u = torch.tensor(0.4, requires_grad=True)
    with pytest.raises(ValueError, match="learnable=True"):
        make_solver("rk2", u=u, steps=2)


def test_assigned_tensor_receives_gradient():
    solver = make_solver("rk2", u=0.4, steps=2)
    weight = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    solver.u = 2 * weight
    y0 = torch.ones(3, dtype=torch.float64)
    solver(lambda t, y: torch.sin(y) * t, y0).sum().backward()
    assert weight.grad is not None
    assert weight.grad.item() != 0.0


def test_near_singular_float32_warns():
    solver = make_solver("rk2", u=1e-5, steps=4)
    with pytest.warns(RuntimeWarning, match="singular set") as record:
        solver(lambda t, y: -y, torch.ones(1))
    assert record[0].filename == __file__, "the warning points at the caller"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # 1e-5 is far above sqrt(eps) of float64 (1.5e-8): no warning there.
        solver(lambda t, y: -y, torch.ones(1, dtype=torch.float64))


def test_requested_times_near_grid_points_reuse_them():
    rhs = CountingRHS()
    times = torch.linspace(0, 1, 11, dtype=torch.float32)
    states = make_solver("rk4", steps=10)(rhs, torch.zeros(1), t_eval=times)
    assert states.shape == (11, 1)
    # 10 steps of 4 stages: no extra near-zero steps for float32 rounding.
    assert len(rhs.times) == 40


def test_odeint_rejects_unsorted_times_with_steps():
    with pytest.raises(ValueError, match="strictly increasing or strictly decreasing"):
        odeint(
            lambda t, y: y, torch.ones(1), [0.0, 0.8, 0.2, 1.0], options={"steps": 4}
        )


def test_non_finite_parameter_rejected_at_solve():
    solver = make_solver("rk2", u=0.5, steps=2, learnable=True)
    with torch.no_grad():
        solver.u.fill_(float("nan"))
    with pytest.raises(ValueError, match="must be finite, got nan"):
        solver(lambda t, y: y, torch.ones(1))


def test_spec_of_numpy_step_count():
    import numpy as np

    spec = make_solver("rk2", steps=np.int64(3)).spec
    assert spec.steps == 3
    assert isinstance(spec.steps, int)
    assert hash(spec) == hash(make_solver("rk2", steps=3).spec)


def test_model_cast_keeps_parameters_float64():
    for learnable in (False, True):
        solver = make_solver("rk4", u=0.3, v=0.7, steps=2, learnable=learnable)
        holder = nn.ModuleDict({"solver": solver, "layer": nn.Linear(2, 2)}).half()
        assert holder["layer"].weight.dtype == torch.float16
        assert solver.u.dtype == torch.float64
        assert solver.parameter_values() == {"u": 0.3, "v": 0.7}
        assert isinstance(solver.u, nn.Parameter) == learnable
        y = solver(lambda t, y: -y, torch.ones(2, dtype=torch.float16))
        assert y.dtype == torch.float16
