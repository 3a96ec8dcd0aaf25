"""Fixed-grid solvers for the Runge-Kutta families derived by tableau_gen.

Create a solver by family name with `make_solver`, or call `odeint` with the same
argument order as torchdiffeq's fixed-grid solvers.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from metanode.solvers.base import FamilySolver as FamilySolver
from metanode.solvers.grid import GridSpec as GridSpec
from metanode.solvers.spec import SolverSpec as SolverSpec
from metanode.solvers.spec import SolverSpecError as SolverSpecError
from metanode.solvers.spec import parse_solver_specs as parse_solver_specs

__all__ = [
    "FAMILIES",
    "FamilySolver",
    "GridSpec",
    "SolverSpec",
    "SolverSpecError",
    "family_names",
    "make_solver",
    "odeint",
    "parse_solver_specs",
]


def __getattr__(name: str):
    # The generated modules import metanode.solvers.base, so the registry is
    # imported on first use instead of at package import.
    if name == "FAMILIES":
        from metanode.generated import FAMILIES

        return FAMILIES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def family_names() -> tuple[str, ...]:
    """Return the names of all generated families."""
    from metanode.generated import FAMILIES

    return tuple(FAMILIES)


def make_solver(
    family: str,
    u: float | None = None,
    v: float | None = None,
    *,
    steps: int | None = None,
    step_size: float | None = None,
    grid: Sequence[float] | Tensor | None = None,
    learnable: bool = False,
) -> FamilySolver:
    """Create the solver for one member of a family.

    Args:
        family: a family name such as "rk2", "rk3" or "rk4" (see `family_names`).
        u, v: the family parameters; the family's default member when left out.
        steps, step_size, grid: the fixed grid; give exactly one.
        learnable: store u and v as `nn.Parameter`s.

    Raises:
        ValueError: for an unknown family, a singular parameter or an invalid grid.

    Example:
        >>> solver = make_solver("rk2", u=2 / 3, steps=8)
        >>> y1 = solver(lambda t, y: -y, torch.ones(3))
    """
    from metanode.generated import FAMILIES

    if family not in FAMILIES:
        raise ValueError(
            f"unknown solver family {family!r}; known families: {', '.join(FAMILIES)}"
        )
    return FAMILIES[family](
        u, v, steps=steps, step_size=step_size, grid=grid, learnable=learnable
    )


def odeint(
    func,
    y0: Tensor,
    t: Sequence[float] | Tensor,
    rtol: float | None = None,
    atol: float | None = None,
    method: str = "rk4",
    options: dict | None = None,
) -> Tensor:
    """Solve dy/dt = func(t, y) and return the states at the times t.

    The argument order matches torchdiffeq's `odeint` so that fixed-grid calls can
    switch by changing the import. The solver is the member of family `method` given
    by ``options["u"]`` and ``options["v"]`` (the family default when absent). The
    grid is t itself unless ``options`` sets ``step_size`` or ``steps`` (steps over
    the whole interval t[0] to t[-1]); the times in t are always inserted into the
    grid, so no output is interpolated.

    Returns:
        A tensor of shape (len(t), *y0.shape) whose first entry is y0.

    Raises:
        ValueError: for an unknown method or option, or an invalid t.
    """
    if rtol is not None or atol is not None:
        warnings.warn(
            "rtol and atol have no effect on fixed-grid solvers and are ignored",
            stacklevel=2,
        )
    options = dict(options or {})
    unknown = sorted(set(options) - {"u", "v", "steps", "step_size"})
    if unknown:
        raise ValueError(
            f"unknown option {unknown[0]!r} for fixed-grid method {method!r}; valid "
            "options are u, v, steps and step_size"
        )
    times = torch.as_tensor(t, dtype=torch.float64).detach().cpu()
    if times.dim() != 1 or times.numel() < 2:
        raise ValueError(
            f"t must be a 1-D sequence of at least two times, got shape "
            f"{tuple(times.shape)}"
        )
    # Output times follow torchdiffeq's rule whatever the grid: strictly monotonic.
    GridSpec(times=tuple(times.tolist()))
    steps = options.pop("steps", None)
    step_size = options.pop("step_size", None)
    # A tensor t keeps its dtype, so its rounding is recognised on the grid.
    requested = t if isinstance(t, Tensor) else times
    if steps is None and step_size is None:
        solver = make_solver(method, **options, grid=times)
        return solver(func, y0, t_eval=requested)
    solver = make_solver(method, **options, steps=steps, step_size=step_size)
    return solver(func, y0, float(times[0]), float(times[-1]), t_eval=requested)
