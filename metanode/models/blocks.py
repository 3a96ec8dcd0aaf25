"""Building blocks shared by the models: ODE blocks, ConcatConv and layer factories.

An ODE block integrates its right-hand side over t in [0, 1] with solvers that the
caller passes at call time, so one trained model can be run under any solver of a
family. Every right-hand side counts its evaluations in ``nfe``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrizations

NORMS = ("batch", "group", "layer", "instance", "none")
WEIGHT_NORMS = ("weight", "spectral", "none")
ACTIVATIONS = ("relu", "gelu", "silu", "elu", "leaky_relu", "softplus", "tanh")

# Users type ensemble weights and switching probabilities as decimals, so a sum
# within this distance of one counts as one. The values are then rescaled to sum to
# one exactly.
WEIGHT_SUM_TOLERANCE = 1e-6


def check_choice(argument: str, value: object, choices: Sequence[str]) -> str:
    """Return `value` if it is one of `choices`, else raise ValueError naming both."""
    if value not in choices:
        raise ValueError(
            f"invalid `{argument}` {value!r}; expected one of: {', '.join(choices)}"
        )
    return value


def make_norm(kind: str, channels: int) -> nn.Module:
    """Create a normalization layer for feature maps with `channels` channels.

    "group" uses gcd(32, channels) groups, which is min(32, channels) whenever
    `channels` is a power of two. "layer" normalizes over channels and space
    together (one group), and "instance" normalizes each channel separately. All
    variants except "none" carry a per-channel affine transform.

    NOTE: batch norm inside an ODE right-hand side updates its running statistics
    at every evaluation, from intermediate stage states of the training solver.

    """
    check_choice("norm", kind, NORMS)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = math.gcd(min(32, channels), channels)
        return nn.GroupNorm(groups, channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def make_activation(name: str) -> nn.Module:
    """Create a fresh activation module by name (one of ACTIVATIONS)."""
    check_choice("activation", name, ACTIVATIONS)
    modules = {
        "relu": nn.ReLU,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "elu": nn.ELU,
        "leaky_relu": nn.LeakyReLU,
        "softplus": nn.Softplus,
        "tanh": nn.Tanh,
    }
    return modules[name]()


def apply_weight_norm(module: nn.Module, kind: str) -> nn.Module:
    """Reparametrize the weight of a convolution or linear layer in place.

    "weight" splits the weight into direction and magnitude. "spectral" divides it
    by an estimate of its largest singular value, which one power iteration per
    access refines in training mode.
    """
    check_choice("weight_norm", kind, WEIGHT_NORMS)
    if kind == "weight":
        return parametrizations.weight_norm(module)
    if kind == "spectral":
        return parametrizations.spectral_norm(module)
    return module


def check_weights(
    weights: Sequence[float] | torch.Tensor | None, count: int, argument: str
) -> tuple[float, ...]:
    """Validate weights over `count` solvers and return them as floats summing to one.

    None means uniform weights. Raises ValueError, naming `argument` and the values,
    when the length differs from `count`, a weight is negative or not finite, or the
    sum is further than WEIGHT_SUM_TOLERANCE from one.
    """
    if count < 1:
        raise ValueError(f"`{argument}` needs at least one solver, got {count}")
    if weights is None:
        return tuple(1.0 / count for _ in range(count))
    if isinstance(weights, torch.Tensor):
        values = [float(w) for w in weights.detach().flatten().tolist()]
    else:
        try:
            values = [float(w) for w in weights]
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"`{argument}` must be a sequence of numbers, got {weights!r}"
            ) from error
    if len(values) != count:
        raise ValueError(
            f"`{argument}` has {len(values)} values {values} but there are "
            f"{count} solvers; give one value per solver"
        )
    if any(not math.isfinite(w) or w < 0 for w in values):
        raise ValueError(f"`{argument}` must be finite and non-negative, got {values}")
    total = math.fsum(values)
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise ValueError(
            f"`{argument}` {values} sum to {total:.8g}, not 1 "
            f"(tolerance {WEIGHT_SUM_TOLERANCE:g})"
        )
    return tuple(w / total for w in values)


def as_solver_list(solvers) -> list:
    """Return `solvers` as a non-empty list; a single solver object becomes [solver]."""
    if solvers is None:
        raise ValueError(
            "an ODE model needs `solvers`: pass a list of solvers, for example "
            "[make_solver('rk2', u=0.5, steps=8)]"
        )
    if isinstance(solvers, (list, tuple)):
        solver_list = list(solvers)
    else:
        solver_list = [solvers]
    if not solver_list:
        raise ValueError("`solvers` is empty; pass at least one solver")
    return solver_list


class ConcatConv2d(nn.Module):
    """Convolution whose input gets the time t appended as one constant channel."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        bias: bool = True,
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels + 1, out_channels, kernel_size, stride, padding, bias=bias
        )

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        time_channel = t.to(x).expand(x.shape[0], 1, *x.shape[2:])
        return self.conv(torch.cat([time_channel, x], dim=1))


class ODEFunction(nn.Module):
    """Base class of right-hand sides f(t, y); `nfe` counts calls since the reset."""

    def __init__(self):
        super().__init__()
        self.nfe = 0


class ODEBlock(nn.Module):
    """Integrate dy/dt = func(t, y) from t = 0 to t = 1 and return y(1).

    With one solver the block returns that solver's result. With several it returns
    the weighted average of their results (solver ensembling), uniform by default.
    `nfe` counts right-hand-side evaluations of the latest forward pass, over all
    solvers together.
    """

    def __init__(self, func: ODEFunction):
        super().__init__()
        self.func = func

    @property
    def nfe(self) -> int:
        return self.func.nfe

    def forward(self, x: torch.Tensor, solvers, weights=None) -> torch.Tensor:
        solver_list = as_solver_list(solvers)
        self.func.nfe = 0
        if len(solver_list) == 1:
            if weights is not None:
                check_weights(weights, 1, "weights")
            return solver_list[0](self.func, x)
        weight_values = check_weights(weights, len(solver_list), "weights")
        out = None
        for weight, solver in zip(weight_values, solver_list, strict=True):
            term = weight * solver(self.func, x)
            out = term if out is None else out + term
        return out


def total_nfe(model: nn.Module) -> int:
    """Sum the right-hand-side evaluations of every ODE block in the latest forward."""
    return sum(block.nfe for block in model.modules() if isinstance(block, ODEBlock))


class PixelNormalization(nn.Module):
    """Map pixels in [0, 1] to (x - mean) / std per channel.

    Models normalize inside, so attacks and their eps budgets work in pixel space.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels: int):
        super().__init__()
        mean_values = _channel_values("mean", mean, channels)
        std_values = _channel_values("std", std, channels)
        if any(s <= 0 for s in std_values):
            raise ValueError(f"`std` must be positive, got {std_values}")
        self.register_buffer("mean", torch.tensor(mean_values).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std_values).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def _channel_values(argument: str, values, channels: int) -> list[float]:
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"`{argument}` must be a sequence of numbers, got {values!r}"
        ) from error
    if len(floats) != channels:
        raise ValueError(
            f"`{argument}` has {len(floats)} values {floats} but the model has "
            f"{channels} input channels; give one value per channel"
        )
    if not all(math.isfinite(v) for v in floats):
        raise ValueError(f"`{argument}` must be finite, got {floats}")
    return floats
