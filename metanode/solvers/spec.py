"""Readable solver specifications such as ``rk4:u=0.3,v=0.6,step_size=0.125``.

A spec names a family, its parameters and the grid: ``family:key=value,...`` with
keys u, v (family parameters; fractions such as 2/3 are accepted), steps or
step_size. Several specs are separated by semicolons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

_GRID_KEYS = ("steps", "step_size")
_EXAMPLE = "rk2:u=0.5,steps=8"


class SolverSpecError(ValueError):
    """A solver specification that cannot be parsed or describes no valid solver."""


@dataclass(frozen=True)
class SolverSpec:
    """A family member and its fixed grid, without any tensors."""

    family: str
    params: dict[str, float] = field(default_factory=dict)
    steps: int | None = None
    step_size: float | None = None

    def __post_init__(self) -> None:
        solver_class = _family_class(self.family, str(self))
        unknown = sorted(set(self.params) - set(solver_class.parameter_names))
        if unknown:
            raise SolverSpecError(
                f"invalid solver spec {str(self)!r}: {self.family} has no parameter "
                f"{unknown[0]}; its parameters are "
                f"{', '.join(solver_class.parameter_names)}"
            )
        if (self.steps is None) == (self.step_size is None):
            raise SolverSpecError(
                f"invalid solver spec {str(self)!r}: give exactly one of steps or "
                f"step_size, for example {_EXAMPLE}"
            )
        if self.steps is not None and (
            isinstance(self.steps, bool) or not isinstance(self.steps, int)
        ):
            raise SolverSpecError(
                f"invalid solver spec {str(self)!r}: steps must be an integer"
            )
        if self.steps is not None and self.steps < 1:
            raise SolverSpecError(
                f"invalid solver spec {str(self)!r}: steps must be at least 1, "
                f"got {self.steps}"
            )
        if self.step_size is not None and not (
            isinstance(self.step_size, (int, float))
            and math.isfinite(self.step_size)
            and self.step_size > 0
        ):
            raise SolverSpecError(
                f"invalid solver spec {str(self)!r}: step_size must be a positive "
                f"finite number, got {self.step_size!r}"
            )
        values = {**solver_class.defaults, **self.params}
        try:
            values = {name: float(value) for name, value in values.items()}
            solver_class.check_parameters(**values)
        except ValueError as error:
            raise SolverSpecError(
                f"invalid solver spec {str(self)!r}: {error}"
            ) from None

    @classmethod
    def parse(cls, text: str) -> SolverSpec:
        """Parse one spec such as ``rk2:u=0.5,steps=8``."""
        if not isinstance(text, str) or not text.strip():
            raise SolverSpecError(
                f"invalid solver spec {text!r}: expected text like {_EXAMPLE}"
            )
        family, _, options = text.strip().partition(":")
        family = family.strip()
        _family_class(family, text)
        params: dict[str, float] = {}
        grid: dict[str, float | int] = {}
        for item in filter(None, (part.strip() for part in options.split(","))):
            key, equals, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not equals or not key or not raw:
                raise SolverSpecError(
                    f"invalid solver spec {text!r}: {item!r} is not key=value; "
                    f"write specs like {_EXAMPLE}"
                )
            if key in params or key in grid:
                raise SolverSpecError(
                    f"invalid solver spec {text!r}: {key} is given twice"
                )
            if key == "steps":
                grid[key] = _parse_int(text, key, raw)
            elif key == "step_size":
                grid[key] = _parse_number(text, key, raw)
            elif key in ("u", "v"):
                params[key] = _parse_number(text, key, raw)
            else:
                raise SolverSpecError(
                    f"invalid solver spec {text!r}: unknown key {key!r}; valid keys "
                    "are u, v, steps and step_size"
                )
        return cls(family=family, params=params, **grid)

    def __hash__(self) -> int:
        params = tuple(sorted(self.params.items()))
        return hash((self.family, params, self.steps, self.step_size))

    def __str__(self) -> str:
        items = [f"{name}={value!r}" for name, value in sorted(self.params.items())]
        if self.steps is not None:
            items.append(f"steps={self.steps}")
        if self.step_size is not None:
            items.append(f"step_size={self.step_size!r}")
        return f"{self.family}:{','.join(items)}" if items else self.family

    def build(self, learnable: bool = False):
        """Return the solver module this spec describes."""
        solver_class = _family_class(self.family, str(self))
        return solver_class(
            **self.params,
            steps=self.steps,
            step_size=self.step_size,
            learnable=learnable,
        )

    def to_dict(self) -> dict:
        """Return a JSON-able dict; `from_dict` reverses it."""
        return {
            "family": self.family,
            "params": dict(self.params),
            "steps": self.steps,
            "step_size": self.step_size,
        }

    @classmethod
    def from_dict(cls, data: dict) -> SolverSpec:
        try:
            return cls(
                family=data["family"],
                params={k: float(v) for k, v in data.get("params", {}).items()},
                steps=data.get("steps"),
                step_size=data.get("step_size"),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            if isinstance(error, SolverSpecError):
                raise
            raise SolverSpecError(
                f"invalid solver spec record {data!r}: {error}"
            ) from None


def parse_solver_specs(text: str) -> list[SolverSpec]:
    """Parse semicolon-separated specs such as ``rk2:u=0.5,steps=8;rk2:u=1,steps=8``."""
    if not isinstance(text, str):
        raise SolverSpecError(f"invalid solver specs {text!r}: expected a string")
    parts = [part.strip() for part in text.split(";")]
    specs = [SolverSpec.parse(part) for part in parts if part]
    if not specs:
        raise SolverSpecError(
            f"invalid solver specs {text!r}: no spec found; write for example "
            f"{_EXAMPLE};rk2:u=1,steps=8"
        )
    return specs


def _family_class(family: str, text: str):
    from metanode.generated import FAMILIES

    if family not in FAMILIES:
        raise SolverSpecError(
            f"invalid solver spec {text!r}: unknown family {family!r}; known "
            f"families: {', '.join(FAMILIES)}"
        )
    return FAMILIES[family]


def _parse_number(text: str, key: str, raw: str) -> float:
    try:
        value = float(Fraction(raw))
    except (ValueError, ZeroDivisionError):
        raise SolverSpecError(
            f"invalid solver spec {text!r}: {key}={raw!r} is not a number; use a "
            "decimal or a fraction such as 2/3"
        ) from None
    except OverflowError:
        raise SolverSpecError(
            f"invalid solver spec {text!r}: {key}={raw!r} is too large for a "
            "float64; use a finite value"
        ) from None
    return value


def _parse_int(text: str, key: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SolverSpecError(
            f"invalid solver spec {text!r}: {key}={raw!r} is not an integer"
        ) from None
