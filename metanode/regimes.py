"""Meta-solver regimes: how a model is run with one or several solvers.

A regime is called as ``regime(model, x)`` and returns log-probabilities of shape
(N, classes), so the loss is always ``F.nll_loss(regime(model, x), y)`` and attacks
can differentiate through every regime.

- Standalone: one solver.
- Switching: every call draws one solver from a finite set with given
  probabilities.
- Smoothing: every call draws each free parameter of the solver (u, and v for
  two-parameter families) from a Normal or Cauchy distribution centred on the
  solver's own value. A draw further than 2 * scale from that value, or one that
  makes the tableau singular, falls back to the solver's value. The draw happens
  with probability `prob`, otherwise the call uses the solver unchanged.
- SolverEnsemble: each ODE block returns the weighted average of the results of
  several solvers.
- ModelEnsemble: the whole model runs once per solver, and the regime returns the
  log of the weighted average of the class probabilities.

Switching and smoothing are meant for training; they also run at evaluation.
Inside ``with regime.batch():`` they draw once for all calls in the block.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from metanode.models.blocks import check_choice, check_weights

REGIME_NAMES = (
    "standalone",
    "switching",
    "smoothing",
    "solver-ensemble",
    "model-ensemble",
)
DISTRIBUTIONS = ("normal", "cauchy")


def _solver_text(solver) -> str:
    try:
        return str(solver.spec)
    except ValueError:
        # Solvers on an explicit time grid have no spec.
        values = ",".join(f"{k}={v:g}" for k, v in solver.parameter_values().items())
        return f"{solver.family}:{values}"


def _solver_config(solver) -> dict:
    try:
        return solver.spec.to_dict()
    except ValueError:
        return {"family": solver.family, "params": solver.parameter_values()}


def _solver_list(solvers, regime: str) -> list:
    if solvers is None or isinstance(solvers, (str, bytes)):
        raise ValueError(f"{regime} needs a list of solver objects, got {solvers!r}")
    if not isinstance(solvers, Sequence):
        solvers = [solvers]
    solver_list = list(solvers)
    if not solver_list:
        raise ValueError(f"{regime} needs at least one solver, got none")
    return solver_list


def _single_solver(solvers, regime: str):
    solver_list = _solver_list(solvers, regime)
    if len(solver_list) != 1:
        specs = ", ".join(_solver_text(s) for s in solver_list)
        raise ValueError(
            f"{regime} takes exactly one solver, got {len(solver_list)}: {specs}"
        )
    return solver_list[0]


def _format_weights(weights: Sequence[float]) -> str:
    return ",".join(f"{w:.4g}" for w in weights)


class Regime:
    """Base class: subclasses set `name` and implement __call__."""

    name = ""

    def __init__(self, solvers: list):
        self.solvers = solvers
        self._held: list | None = None

    def __call__(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def draw_solvers(self) -> list:
        """Return the solvers for one call; random regimes draw them here."""
        return self.solvers

    def _call_solvers(self) -> list:
        return self._held if self._held is not None else self.draw_solvers()

    @contextmanager
    def batch(self) -> Iterator[Regime]:
        """Use a single draw for every call inside the block.

        Switching and smoothing draw new solvers on each call. Inside this block
        they draw once, so the attack on a training batch and the update on it see
        the same solver, which is what "one draw per batch" means in training.
        """
        self._held = self.draw_solvers()
        try:
            yield self
        finally:
            self._held = None

    def describe(self) -> str:
        """Return a short description for tables and logs."""
        return f"{self.name} {' | '.join(_solver_text(s) for s in self.solvers)}"

    def config(self) -> dict:
        """Return the regime's settings as a JSON-able dict (no random state)."""
        return {
            "name": self.name,
            "solvers": [_solver_config(s) for s in self.solvers],
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class Standalone(Regime):
    """Run the model with one solver."""

    name = "standalone"

    def __init__(self, solver):
        super().__init__([_single_solver(solver, self.name)])

    def __call__(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(model(x, self.solvers), dim=-1)


class Switching(Regime):
    """Run each call with one solver drawn from `solvers` with probabilities `probs`.

    `probs` defaults to uniform and must sum to one. `last_index` is the index of
    the solver drawn in the latest call.
    """

    name = "switching"

    def __init__(self, solvers, probs=None, generator: torch.Generator | None = None):
        solver_list = _solver_list(solvers, self.name)
        super().__init__(solver_list)
        self.probs = check_weights(probs, len(solver_list), "probs")
        self.generator = generator
        self.last_index: int | None = None

    def draw_index(self) -> int:
        """Draw the index of the solver for the next call."""
        probs = torch.tensor(self.probs, dtype=torch.float64)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def draw_solvers(self) -> list:
        self.last_index = self.draw_index()
        return [self.solvers[self.last_index]]

    def __call__(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(model(x, self._call_solvers()), dim=-1)

    def describe(self) -> str:
        text = super().describe()
        if len(set(self.probs)) > 1:
            text += f" (probs {_format_weights(self.probs)})"
        return text

    def config(self) -> dict:
        return {**super().config(), "probs": list(self.probs)}


class Smoothing(Regime):
    """Run each call with the solver's free parameters drawn around their values.

    Each parameter p with value p0 is drawn as p0 + scale * z, with z standard
    Normal or standard Cauchy. A draw with |p - p0| > 2 * scale falls back to p0,
    and if the drawn values together lie in the family's singular set, all of them
    fall back. With probability 1 - prob the call uses the solver unchanged.
    `last_parameters` contains the values used in the latest call.

    NOTE: each draw builds a frozen copy of the solver, so a learnable solver gets
    no gradient to u or v under smoothing. Standalone and both ensembles do pass
    gradients to them.
    """

    name = "smoothing"

    def __init__(
        self,
        solver,
        distribution: str = "normal",
        scale: float = 0.0125,
        prob: float = 1.0,
        generator: torch.Generator | None = None,
    ):
        solver = _single_solver(solver, self.name)
        super().__init__([solver])
        self.distribution = check_choice("distribution", distribution, DISTRIBUTIONS)
        if not _is_number(scale) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"`scale` must be a positive finite number, got {scale!r}")
        if not _is_number(prob) or not 0.0 <= prob <= 1.0:
            raise ValueError(f"`prob` must be a number in [0, 1], got {prob!r}")
        if not solver.parameter_names:
            raise ValueError(
                f"smoothing needs a solver with free parameters; family "
                f"{solver.family!r} has none"
            )
        self.scale = float(scale)
        self.prob = float(prob)
        self.generator = generator
        self.base_parameters = solver.parameter_values()
        self.last_parameters: dict[str, float] | None = None

    def _standard_draw(self) -> float:
        uniform = float(torch.rand((), generator=self.generator, dtype=torch.float64))
        if self.distribution == "cauchy":
            # Inverse CDF of the standard Cauchy distribution.
            return math.tan(math.pi * (uniform - 0.5))
        return float(torch.randn((), generator=self.generator, dtype=torch.float64))

    def draw_parameters(self) -> dict[str, float]:
        """Draw the parameter values for one call, with the fall-backs applied."""
        apply = float(torch.rand((), generator=self.generator, dtype=torch.float64))
        if apply >= self.prob:
            return dict(self.base_parameters)
        drawn = {}
        for name, base in self.base_parameters.items():
            value = base + self.scale * self._standard_draw()
            drawn[name] = value if abs(value - base) <= 2 * self.scale else base
        if self.solvers[0].is_singular(**drawn):
            return dict(self.base_parameters)
        return drawn

    def draw_solvers(self) -> list:
        parameters = self.draw_parameters()
        self.last_parameters = parameters
        if parameters == self.base_parameters:
            return [self.solvers[0]]
        return [self.solvers[0].with_parameters(**parameters)]

    def __call__(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(model(x, self._call_solvers()), dim=-1)

    def describe(self) -> str:
        text = f"{super().describe()} ({self.distribution}, scale {self.scale:g}"
        if self.prob < 1.0:
            text += f", prob {self.prob:g}"
        return text + ")"

    def config(self) -> dict:
        return {
            **super().config(),
            "distribution": self.distribution,
            "scale": self.scale,
            "prob": self.prob,
        }


class SolverEnsemble(Regime):
    """Average the ODE block outputs over `solvers` with `weights` inside the model."""

    name = "solver-ensemble"

    def __init__(self, solvers, weights=None):
        solver_list = _solver_list(solvers, self.name)
        super().__init__(solver_list)
        self.weights = check_weights(weights, len(solver_list), "weights")

    def __call__(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(model(x, self.solvers, self.weights), dim=-1)

    def describe(self) -> str:
        text = super().describe()
        if len(set(self.weights)) > 1:
            text += f" (weights {_format_weights(self.weights)})"
        return text

    def config(self) -> dict:
        return {**super().config(), "weights": list(self.weights)}


class ModelEnsemble(Regime):
    """Average the class probabilities of whole-model runs, one per solver.

    Returns log(sum_k w_k softmax(model(x, [solver_k]))), computed with logsumexp
    over log w_k + log_softmax so that tiny probabilities do not underflow.
    """

    name = "model-ensemble"

    def __init__(self, solvers, weights=None):
        solver_list = _solver_list(solvers, self.name)
        super().__init__(solver_list)
        self.weights = check_weights(weights, len(solver_list), "weights")

    def __call__(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        terms = []
        for weight, solver in zip(self.weights, self.solvers, strict=True):
            if weight == 0.0:
                continue
            log_probs = F.log_softmax(model(x, [solver]), dim=-1)
            terms.append(log_probs + math.log(weight))
        return torch.logsumexp(torch.stack(terms), dim=0)

    def describe(self) -> str:
        text = super().describe()
        if len(set(self.weights)) > 1:
            text += f" (weights {_format_weights(self.weights)})"
        return text

    def config(self) -> dict:
        return {**super().config(), "weights": list(self.weights)}


_REGIME_CLASSES = {
    "standalone": Standalone,
    "switching": Switching,
    "smoothing": Smoothing,
    "solver-ensemble": SolverEnsemble,
    "model-ensemble": ModelEnsemble,
}

_REGIME_OPTIONS = {
    "standalone": (),
    "switching": ("probs", "generator"),
    "smoothing": ("distribution", "scale", "prob", "generator"),
    "solver-ensemble": ("weights",),
    "model-ensemble": ("weights",),
}


def build_regime(name: str, solvers, **options) -> Regime:
    """Build the regime `name` (one of REGIME_NAMES) over a list of solvers.

    Options per regime: switching takes probs and generator; smoothing takes
    distribution, scale, prob and generator; the ensembles take weights.
    Standalone and smoothing need exactly one solver.

    Raises:
        ValueError: for an unknown name, an option the regime does not take, or an
            invalid option value or solver count.
    """
    check_choice("regime", name, REGIME_NAMES)
    allowed = _REGIME_OPTIONS[name]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise ValueError(
            f"regime {name!r} takes no option {unknown[0]!r}; its options: {valid}"
        )
    regime_class = _REGIME_CLASSES[name]
    if name in ("standalone", "smoothing"):
        return regime_class(_single_solver(solvers, name), **options)
    return regime_class(solvers, **options)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
