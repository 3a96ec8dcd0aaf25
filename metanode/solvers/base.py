"""The shared part of every generated family solver.

An explicit s-stage Runge-Kutta method is the Butcher tableau::

    0   |
    c2  | a21
    c3  | a31  a32
    ... | ...
    cs  | as1  as2  ...  as,s-1
    ----+---------------------------
        | b1   b2   ...  bs-1   bs

with strictly lower-triangular A and row sums c_i = a_i1 + ... + a_i,i-1. A family
maps its free parameters u (and v) to every entry of the tableau. Generated
subclasses supply the family's formulas and an unrolled `step`; this class owns the
parameters, the singular-set checks, the time grid and the integration loop.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from metanode.solvers.grid import GridSpec, insert_times

# A parameter point counts as singular when one of the family's singular factors is
# smaller than this in absolute value. Points that close to the singular set give
# coefficients above 1e9, which are useless even where they are finite.
SINGULAR_TOLERANCE = 1e-9

RightHandSide = Callable[[Tensor, Tensor], Tensor]

_LIBRARY_DIRECTORIES = (
    os.path.dirname(os.path.abspath(__file__)),
    os.path.dirname(os.path.abspath(torch.__file__)),
)


def axpy(y: Tensor, alpha, x: Tensor) -> Tensor:
    """Return y + alpha * x in one kernel.

    alpha is a Python float for frozen parameters and a 0-dim tensor when gradients
    must flow to the family parameters.
    """
    if isinstance(alpha, Tensor):
        return torch.addcmul(y, alpha, x)
    return torch.add(y, x, alpha=alpha)


class FamilySolver(nn.Module):
    """A fixed-grid solver for one member of a Runge-Kutta family.

    Subclasses are generated from the symbolic catalogue and set the class
    attributes below. See the subclass docstrings for each family's tableau.

    Args:
        u, v: the family parameters; a one-parameter family takes only u. When left
            out, the family's default member is used.
        steps: number of equal steps over [t0, t1].
        step_size: length of each step; the last step is shorter when the step
            size does not divide the interval.
        grid: explicit strictly monotonic times; the solve runs from grid[0] to
            grid[-1].
        learnable: store the parameters as `nn.Parameter`s so that gradients reach
            them; otherwise they are frozen buffers. Switch later through the
            `learnable` property.

    Exactly one of steps, step_size and grid must be given.

    Raises:
        ValueError: for an unknown or missing parameter, a value in the family's
            singular set, or an invalid step specification.
    """

    family: ClassVar[str]
    title: ClassVar[str]
    stages: ClassVar[int]
    order: ClassVar[int]
    parameter_names: ClassVar[tuple[str, ...]]
    parameter_roles: ClassVar[dict[str, str]]
    defaults: ClassVar[dict[str, float]]
    domain: ClassVar[dict[str, tuple[float, float]]]
    singular_description: ClassVar[str]
    # Each entry is (factor as text, parameters it involves); the factor must not
    # vanish. `singular_factors` evaluates them in the same order.
    singular_set: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]]
    forbidden_values: ClassVar[dict[str, tuple[str, ...]]]

    def __init__(
        self,
        u: float | None = None,
        v: float | None = None,
        *,
        steps: int | None = None,
        step_size: float | None = None,
        grid: Sequence[float] | Tensor | None = None,
        learnable: bool = False,
    ) -> None:
        super().__init__()
        values = self._resolve_parameters(u, v)
        self.grid_spec = GridSpec.from_arguments(steps, step_size, grid)
        self._learnable = bool(learnable)
        for name, value in values.items():
            self._register_value(name, torch.tensor(value, dtype=torch.float64))

    # Subclasses generate these three from the catalogue.

    @staticmethod
    def coefficients(*parameters):
        """Return the parameter-dependent tableau entries, in the generated order."""
        raise NotImplementedError

    @staticmethod
    def singular_factors(*parameters) -> tuple[float, ...]:
        """Return the values of the factors that must not vanish."""
        raise NotImplementedError

    def step(self, func: RightHandSide, t: Tensor, dt, y: Tensor, coefficients):
        """Advance y from t to t + dt with one step of the method."""
        raise NotImplementedError

    @classmethod
    def tableau_from_coefficients(cls, coefficients) -> tuple[list, list, list]:
        """Return (A, b, c) as nested lists, filling in the constant entries."""
        raise NotImplementedError

    # Parameters.

    @property
    def learnable(self) -> bool:
        """Whether u and v are `nn.Parameter`s (True) or frozen buffers (False)."""
        return self._learnable

    @learnable.setter
    def learnable(self, flag: bool) -> None:
        flag = bool(flag)
        if flag == self._learnable:
            return
        self._learnable = flag
        for name in self.parameter_names:
            value = getattr(self, name).detach().clone()
            delattr(self, name)
            self._register_value(name, value)

    def _register_value(self, name: str, value: Tensor) -> None:
        if self._learnable:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    def _apply(self, fn, recurse=True):
        # Casting a model (model.half(), .to(torch.bfloat16)) would round u and v
        # and so move the member; they stay float64 and only follow the device.
        saved = {
            name: getattr(self, name).detach().clone() for name in self.parameter_names
        }
        super()._apply(fn, recurse)
        for name, value in saved.items():
            current = getattr(self, name)
            if current.dtype == torch.float64:
                continue
            restored = value.to(device=current.device)
            if isinstance(current, nn.Parameter):
                current.data = restored
            else:
                self._buffers[name] = restored
        return self

    def parameter_values(self) -> dict[str, float]:
        """Return the current family parameters as Python floats."""
        return {
            name: float(getattr(self, name).detach()) for name in self.parameter_names
        }

    @classmethod
    def _resolve_parameters(cls, u, v) -> dict[str, float]:
        given = {"u": u, "v": v}
        for name, value in given.items():
            if value is not None and name not in cls.parameter_names:
                raise ValueError(
                    f"{cls.family} has no parameter {name} (got {name}={value!r}); "
                    f"its parameters are {', '.join(cls.parameter_names)}"
                )
        values = {}
        for name in cls.parameter_names:
            value = given[name]
            if value is None:
                value = cls.defaults[name]
            if isinstance(value, Tensor):
                if value.requires_grad:
                    raise ValueError(
                        f"{cls.family} parameter {name} is a tensor that requires "
                        "grad, but the solver stores a copy; pass learnable=True to "
                        "train it inside the solver, or assign the tensor after "
                        f"construction (solver.{name} = tensor) to backpropagate "
                        "into it"
                    )
                if value.numel() != 1:
                    raise ValueError(
                        f"{cls.family} parameter {name} must be a scalar, got a "
                        f"tensor of shape {tuple(value.shape)}"
                    )
                value = value.item()
            try:
                value = float(value)
            except (TypeError, ValueError) as error:
                raise ValueError(
                    f"{cls.family} parameter {name} must be a number, got {value!r}"
                ) from error
            if not math.isfinite(value):
                raise ValueError(
                    f"{cls.family} parameter {name} must be finite, got {value!r}"
                )
            values[name] = value
        cls.check_parameters(**values)
        return values

    @classmethod
    def singular_factor_hit(cls, **values: float) -> str | None:
        """Return the first singular factor that vanishes at these values, or None."""
        factors = cls.singular_factors(*(values[n] for n in cls.parameter_names))
        for (text, _), factor in zip(cls.singular_set, factors):
            if abs(factor) <= SINGULAR_TOLERANCE:
                return text
        return None

    @classmethod
    def is_singular(cls, **values: float) -> bool:
        """Return whether the parameter values lie in the family's singular set."""
        return cls.singular_factor_hit(**values) is not None

    @classmethod
    def check_parameters(cls, **values: float) -> None:
        """Raise ValueError for non-finite values or values in the singular set."""
        for name, value in values.items():
            if not math.isfinite(value):
                raise ValueError(
                    f"{cls.family} parameter {name} must be finite, got {value!r}; "
                    "an optimiser step may have diverged, so reinitialise it"
                )
        hit = cls.singular_factor_hit(**values)
        if hit is None:
            return
        involved = next(names for text, names in cls.singular_set if text == hit)
        shown = ", ".join(f"{name}={values[name]!r}" for name in involved)
        if len(involved) == 1 and involved[0] in cls.forbidden_values:
            name = involved[0]
            forbidden = ", ".join(cls.forbidden_values[name])
            reason = f"{name} must not be {forbidden}"
        else:
            reason = f"the parameters must not satisfy {hit} = 0"
        raise ValueError(
            f"{cls.family}: {shown} lies in the singular set, where the tableau "
            f"is undefined or the order condition fails; {reason} (whole singular "
            f"set: {cls.singular_description}); choose other values"
        )

    def _warn_if_ill_conditioned(self, values: dict[str, float], dtype) -> None:
        # Coefficients grow like 1 / factor near the singular set, and cancelling
        # them loses about log10(1 / factor) digits. Below sqrt(eps) of the state's
        # dtype (3e-4 for float32, 1.5e-8 for float64) half the digits are gone.
        limit = math.sqrt(torch.finfo(dtype).eps)
        factors = self.singular_factors(*values.values())
        if not factors:
            return
        closest = min(abs(factor) for factor in factors)
        if closest < limit and (dtype, closest) != getattr(self, "_warned", None):
            self._warned = (dtype, closest)
            shown = ", ".join(f"{name}={value!r}" for name, value in values.items())
            # Point the warning at the first frame outside this package and torch,
            # whatever nn.Module.__call__ adds in between.
            frame, level = sys._getframe(0), 1
            while frame is not None and frame.f_code.co_filename.startswith(
                _LIBRARY_DIRECTORIES
            ):
                frame, level = frame.f_back, level + 1
            warnings.warn(
                f"{self.family}: {shown} is within {closest:.1e} of the singular set "
                f"({self.singular_description}), so {dtype} solves lose most of "
                "their precision; move the parameters away or solve in float64",
                RuntimeWarning,
                stacklevel=level,
            )

    @torch.no_grad()
    def project_(self) -> FamilySolver:
        """Clamp the parameters in place into the family's admissible domain box.

        The catalogue chooses each box clear of the singular set, so a clamped
        member always has a defined tableau. A non-finite value stays non-finite
        and makes the next solve raise ValueError.
        """
        for name in self.parameter_names:
            low, high = self.domain[name]
            getattr(self, name).clamp_(low, high)
        return self

    def with_parameters(self, **values: float) -> FamilySolver:
        """Return a frozen solver of the same family and grid at other parameters.

        Parameters left out keep their current values.
        """
        unknown = sorted(set(values) - set(self.parameter_names))
        if unknown:
            raise ValueError(
                f"{self.family} has no parameter {unknown[0]}; its parameters are "
                f"{', '.join(self.parameter_names)}"
            )
        merged = {**self.parameter_values(), **values}
        solver = type(self)(
            **merged,
            steps=self.grid_spec.steps,
            step_size=self.grid_spec.step_size,
            grid=self.grid_spec.times,
        )
        return solver.to(getattr(self, self.parameter_names[0]).device)

    @property
    def spec(self):
        """The `SolverSpec` of this solver (not available on an explicit grid)."""
        from metanode.solvers.spec import SolverSpec

        if self.grid_spec.times is not None:
            raise ValueError(
                f"{self.family} on an explicit grid has no solver spec; specs "
                "describe grids by steps or step_size only"
            )
        steps = self.grid_spec.steps
        return SolverSpec(
            family=self.family,
            params=self.parameter_values(),
            steps=None if steps is None else int(steps),
            step_size=self.grid_spec.step_size,
        )

    # The tableau.

    def tableau(self) -> tuple[Tensor, Tensor, Tensor]:
        """Return the numeric tableau (A, b, c) as float64 tensors."""
        values = list(self.parameter_values().values())
        A, b, c = self.tableau_from_coefficients(self.coefficients(*values))
        return (
            torch.tensor(A, dtype=torch.float64),
            torch.tensor(b, dtype=torch.float64),
            torch.tensor(c, dtype=torch.float64),
        )

    def _solve_coefficients(self, like: Tensor):
        # Gradients to u, v need tensor coefficients. Otherwise Python floats let
        # every stage update run as one fused kernel (see `axpy`).
        parameters = [getattr(self, name) for name in self.parameter_names]
        values = {
            name: float(p.detach()) for name, p in zip(self.parameter_names, parameters)
        }
        self.check_parameters(**values)
        self._warn_if_ill_conditioned(values, like.dtype)
        if torch.is_grad_enabled() and any(p.requires_grad for p in parameters):
            wide = [p.to(torch.float64) for p in parameters]
            return tuple(
                c.to(dtype=like.dtype, device=like.device)
                for c in self.coefficients(*wide)
            )
        return self.coefficients(*values.values())

    # Integration.

    def forward(
        self,
        func: RightHandSide,
        y0: Tensor,
        t0: float | None = None,
        t1: float | None = None,
        t_eval: Sequence[float] | Tensor | None = None,
    ) -> Tensor:
        """Integrate dy/dt = func(t, y) on the fixed grid.

        Args:
            func: the right-hand side, called as func(t, y) with t a 0-dim tensor of
                y's dtype and device; usually an `nn.Module`.
            y0: the initial state, any shape (batch first by convention), floating
                point. The solve runs in y0's dtype and on its device.
            t0, t1: the interval; 0 and 1 when left out. On an explicit grid they
                default to the grid's end points.
            t_eval: optional times at which to return the state. They are inserted
                into the grid, so each returned state is a plain order-p solution
                at that time, with no interpolation error. The solver then takes
                one extra, shorter step for each time not already on the grid.

        Returns:
            The state at t1, or the states at t_eval stacked on a new first
            dimension.
        """
        if not isinstance(y0, Tensor) or not torch.is_floating_point(y0):
            raise ValueError(
                f"y0 must be a floating-point tensor, got {type(y0).__name__}"
                + (f" of dtype {y0.dtype}" if isinstance(y0, Tensor) else "")
            )
        grid = self.grid_spec.build(t0, t1)
        if t_eval is None:
            return self._integrate(func, y0, grid)

        requested = torch.as_tensor(t_eval, dtype=torch.float64).detach().cpu()
        if requested.dim() != 1 or requested.numel() == 0:
            raise ValueError(
                "t_eval must be a non-empty 1-D sequence of times, got shape "
                f"{tuple(requested.shape)}"
            )
        precision = torch.float64
        if isinstance(t_eval, Tensor) and t_eval.is_floating_point():
            precision = t_eval.dtype
        merged, positions = insert_times(grid, requested, precision)
        return self._integrate(func, y0, merged, positions)

    def _integrate(
        self,
        func: RightHandSide,
        y0: Tensor,
        grid: Tensor,
        positions: list[int] | None = None,
    ) -> Tensor:
        coefficients = self._solve_coefficients(y0)
        times = grid.to(dtype=y0.dtype, device=y0.device)
        steps = (grid[1:] - grid[:-1]).tolist()
        y = y0

        if positions is None:
            for index, dt in enumerate(steps):
                y = self.step(func, times[index], dt, y, coefficients)
            return y

        # Keep only the states that were asked for.
        wanted: dict[int, list[int]] = {}
        for slot, position in enumerate(positions):
            wanted.setdefault(position, []).append(slot)
        outputs: list[Tensor | None] = [None] * len(positions)
        for slot in wanted.get(0, []):
            outputs[slot] = y0
        for index, dt in enumerate(steps):
            y = self.step(func, times[index], dt, y, coefficients)
            for slot in wanted.get(index + 1, []):
                outputs[slot] = y
        return torch.stack(outputs)

    def extra_repr(self) -> str:
        values = ", ".join(f"{k}={v:g}" for k, v in self.parameter_values().items())
        return f"{values}, {self.grid_spec.describe()}, learnable={self._learnable}"
