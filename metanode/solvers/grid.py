"""Fixed time grids for the family solvers.

A grid is a 1-D float64 CPU tensor of strictly monotonic times. Time may run
backwards (a decreasing grid). Grids are built once per solve from one of three
specifications: a number of steps, a step size, or explicit times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

import torch

# A step size that divides the interval up to this relative slack counts as dividing
# it, so 0.3 / 0.1 = 2.9999999999999996 gives 3 steps and not a 4th step of 4e-17.
_DIVISION_SLACK = 1e-9


@dataclass(frozen=True)
class GridSpec:
    """How to lay out the fixed grid: exactly one of the three fields is set."""

    steps: int | None = None
    step_size: float | None = None
    times: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        given = [
            name
            for name in ("steps", "step_size", "times")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            shown = ", ".join(given) if given else "none"
            raise ValueError(
                "give exactly one of steps, step_size or grid to lay out the time "
                f"grid (got {shown})"
            )
        if self.steps is not None:
            _check_steps(self.steps)
        if self.step_size is not None:
            _check_step_size(self.step_size)
        if self.times is not None:
            _check_times(self.times)

    @classmethod
    def from_arguments(cls, steps=None, step_size=None, grid=None) -> GridSpec:
        """Build a spec from the keyword arguments that solvers accept."""
        times = None
        if grid is not None:
            times = _times_tuple(grid)
        if step_size is not None and isinstance(step_size, Real):
            step_size = float(step_size)
        return cls(steps=steps, step_size=step_size, times=times)

    def describe(self) -> str:
        if self.steps is not None:
            return f"steps={self.steps}"
        if self.step_size is not None:
            return f"step_size={self.step_size:g}"
        return f"grid of {len(self.times)} times"

    def build(self, t0: float | None = None, t1: float | None = None) -> torch.Tensor:
        """Return the grid from t0 to t1 as a float64 CPU tensor.

        An explicit grid defines its own interval, so t0 and t1 may be left out.
        If they are given, they must equal the grid's first and last times.
        """
        if self.times is not None:
            grid = torch.tensor(self.times, dtype=torch.float64)
            for name, given, end in (
                ("t0", t0, self.times[0]),
                ("t1", t1, self.times[-1]),
            ):
                if given is not None and float(given) != end:
                    raise ValueError(
                        f"{name}={float(given)!r} does not match the explicit "
                        f"grid, which runs from {self.times[0]!r} to "
                        f"{self.times[-1]!r}; leave {name} out or pass a grid with "
                        "that end point"
                    )
            return grid

        t0 = 0.0 if t0 is None else _finite_time("t0", t0)
        t1 = 1.0 if t1 is None else _finite_time("t1", t1)
        if self.steps is not None:
            return uniform_grid(t0, t1, self.steps)
        return step_size_grid(t0, t1, self.step_size)


def uniform_grid(t0: float, t1: float, steps: int) -> torch.Tensor:
    """Return steps + 1 equally spaced times whose ends are exactly t0 and t1."""
    fractions = torch.arange(steps + 1, dtype=torch.float64) / steps
    grid = t0 + (t1 - t0) * fractions
    grid[-1] = t1
    return grid


def step_size_grid(t0: float, t1: float, step_size: float) -> torch.Tensor:
    """Return times t0, t0 +- h, ... ending exactly at t1.

    The grid moves towards t1 whatever the sign of t1 - t0. When h does not divide
    the interval the last step is shorter than h.
    """
    length = abs(t1 - t0)
    if length == 0.0:
        return torch.tensor([t0, t1], dtype=torch.float64)
    ratio = length / step_size
    steps = round(ratio)
    if steps == 0 or abs(ratio - steps) > _DIVISION_SLACK * ratio:
        steps = math.ceil(ratio)
    direction = 1.0 if t1 > t0 else -1.0
    grid = t0 + direction * step_size * torch.arange(steps + 1, dtype=torch.float64)
    grid[-1] = t1
    return grid


def insert_times(
    grid: torch.Tensor, times: torch.Tensor, precision: torch.dtype = torch.float64
) -> tuple[torch.Tensor, list]:
    """Merge requested output times into a grid.

    Returns the merged grid and, for each requested time, its index in that grid.
    Every requested time must lie within the grid's interval. `precision` is the
    dtype the caller gave the times in; a time within its rounding of a grid point
    is that grid point.
    """
    start, end = float(grid[0]), float(grid[-1])
    low, high = min(start, end), max(start, end)
    for value in times.tolist():
        if not low <= value <= high:
            raise ValueError(
                f"requested time {value!r} lies outside the integration interval "
                f"[{low!r}, {high!r}]; request times between t0 and t1"
            )
    # A requested time within rounding of a grid point (0.1 * 3 against 0.3, or a
    # float32 linspace) takes that point, so no near-zero step is inserted.
    relative = max(_DIVISION_SLACK, 4 * torch.finfo(precision).eps)
    slack = relative * max(high - low, abs(low), abs(high), 1e-300)
    grid_values = grid.tolist()
    snapped = []
    for value in times.tolist():
        index = int(torch.argmin((grid - value).abs()))
        near = grid_values[index]
        snapped.append(near if abs(near - value) <= slack else value)
    merged = torch.unique(torch.tensor(grid_values + snapped, dtype=torch.float64))
    if end < start:
        merged = merged.flip(0)
    position = {value: index for index, value in enumerate(merged.tolist())}
    return merged, [position[value] for value in snapped]


def _check_steps(steps) -> None:
    if isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 1:
        raise ValueError(
            f"steps must be a positive integer, got {steps!r}; pass the number of "
            "fixed steps, for example steps=8"
        )


def _check_step_size(step_size) -> None:
    if (
        isinstance(step_size, bool)
        or not isinstance(step_size, Real)
        or not math.isfinite(step_size)
        or step_size <= 0
    ):
        raise ValueError(
            f"step_size must be a positive finite number, got {step_size!r}; it is "
            "the length of each step, and time direction comes from t0 and t1"
        )


def _check_times(times: tuple[float, ...]) -> None:
    if len(times) < 2:
        raise ValueError(
            f"an explicit grid needs at least two times, got {len(times)}; pass "
            "the start and end times at least"
        )
    if not all(math.isfinite(value) for value in times):
        raise ValueError(f"the explicit grid contains non-finite times: {times!r}")
    differences = [b - a for a, b in zip(times, times[1:])]
    if not (all(d > 0 for d in differences) or all(d < 0 for d in differences)):
        bad = next(
            index
            for index, d in enumerate(differences)
            if d == 0 or (d > 0) != (differences[0] > 0)
        )
        raise ValueError(
            "the explicit grid must be strictly increasing or strictly decreasing, "
            f"but times[{bad}]={times[bad]!r} is followed by "
            f"times[{bad + 1}]={times[bad + 1]!r}"
        )


def _times_tuple(grid) -> tuple[float, ...]:
    if isinstance(grid, torch.Tensor):
        if grid.dim() != 1:
            raise ValueError(
                f"the explicit grid must be a 1-D tensor, got shape {tuple(grid.shape)}"
            )
        return tuple(float(value) for value in grid.detach().cpu().tolist())
    try:
        return tuple(float(value) for value in grid)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"the explicit grid must be a sequence of numbers, got {grid!r}"
        ) from error


def _finite_time(name: str, value) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{name} must be a scalar time, got a tensor of shape "
                f"{tuple(value.shape)}"
            )
        value = value.item()
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite time, got {value!r}")
    return value
