"""Neural ODE models: the grey-image ODE-Net, its ResNet baseline and CIFAR-10 nets.

Every model takes pixels in [0, 1], normalizes them inside with its `mean` and
`std`, and is called as ``model(x, solvers, weights=None) -> logits``. `solvers` is
a list of solver objects. With one solver, each ODE block integrates with it. With
several, each ODE block returns the `weights`-weighted average of their results.
The ResNet baseline ignores `solvers`. ``model.config`` contains the constructor
arguments, so ``build_model(**model.config)`` rebuilds the same architecture.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from metanode.models.blocks import (
    ACTIVATIONS,
    NORMS,
    WEIGHT_NORMS,
    ODEBlock,
    check_choice,
    total_nfe,
)
from metanode.models.cifar import STAGE_LAYOUTS, MetaNODE
from metanode.models.odenet import ODENet, ResNet

__all__ = [
    "ACTIVATIONS",
    "MODEL_NAMES",
    "NORMS",
    "WEIGHT_NORMS",
    "ODEBlock",
    "build_model",
    "model_defaults",
    "total_nfe",
]

GREY_IMAGE_MODELS = ("odenet", "resnet")
CIFAR_MODELS = tuple(
    f"{prefix}metanode{depth}" for prefix in ("", "pre") for depth in STAGE_LAYOUTS
)
MODEL_NAMES = GREY_IMAGE_MODELS + CIFAR_MODELS

# Per-channel pixel statistics: Fashion-MNIST for the grey-image models, CIFAR-10
# for the others.
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def model_defaults(name: str) -> dict:
    """Return the defaults that build_model fills in for options left as None.

    The grey-image models default to group normalization, ReLU and Fashion-MNIST
    statistics. The CIFAR-10 models default to CIFAR-10 statistics; the premetanode
    models have no normalization layers and use GELU, the metanode models use group
    normalization and ReLU.
    """
    check_choice("model", name, MODEL_NAMES)
    if name in GREY_IMAGE_MODELS:
        return {
            "in_channels": 1,
            "norm": "group",
            "activation": "relu",
            "mean": FASHION_MNIST_MEAN,
            "std": FASHION_MNIST_STD,
        }
    preactivation = name.startswith("pre")
    return {
        "in_channels": 3,
        "norm": "none" if preactivation else "group",
        "activation": "gelu" if preactivation else "relu",
        "mean": CIFAR10_MEAN,
        "std": CIFAR10_STD,
    }


_OPTION_NAMES = (
    "num_classes",
    "in_channels",
    "width",
    "ode_blocks",
    "norm",
    "weight_norm",
    "activation",
    "mean",
    "std",
)


def _check_count(argument: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{argument}` must be an integer >= {minimum}, got {value!r}")
    return value


def build_model(
    name: str,
    *,
    num_classes: int = 10,
    in_channels: int | None = None,
    width: int = 64,
    ode_blocks: int = 1,
    norm: str | None = None,
    weight_norm: str = "none",
    activation: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kwargs,
) -> nn.Module:
    """Build the model `name` (one of MODEL_NAMES).

    Args:
        name: "odenet", "resnet", "metanode4", ..., "premetanode34".
        num_classes: number of output logits.
        in_channels: image channels; None takes the model's default (1 or 3).
        width: channels of the ODE-Net and ResNet, base channels of the CIFAR-10
            models (doubled at each later stage).
        ode_blocks: ODE blocks of the ODE-Net or residual blocks of the ResNet; for
            the CIFAR-10 models, a multiplier of the ODE blocks in each stage.
        norm: one of NORMS, or None for the model's default (see model_defaults).
        weight_norm: one of WEIGHT_NORMS, applied to every convolution.
        activation: one of ACTIVATIONS, or None for the model's default.
        mean, std: per-channel pixel statistics used to normalize inside the model;
            None takes the model's default when its length fits `in_channels`.

    Raises:
        ValueError: for an unknown name or option, or an invalid option value.
    """
    if kwargs:
        valid = ", ".join(_OPTION_NAMES)
        raise ValueError(
            f"unknown model option(s) {', '.join(sorted(kwargs))}; "
            f"valid options: {valid}"
        )
    defaults = model_defaults(name)
    in_channels = defaults["in_channels"] if in_channels is None else in_channels
    _check_count("num_classes", num_classes, 2)
    _check_count("in_channels", in_channels, 1)
    _check_count("width", width, 1)
    _check_count("ode_blocks", ode_blocks, 1)
    norm = check_choice("norm", defaults["norm"] if norm is None else norm, NORMS)
    check_choice("weight_norm", weight_norm, WEIGHT_NORMS)
    if activation is None:
        activation = defaults["activation"]
    check_choice("activation", activation, ACTIVATIONS)
    if mean is None:
        mean = _default_statistic("mean", defaults["mean"], in_channels)
    if std is None:
        std = _default_statistic("std", defaults["std"], in_channels)

    options = {
        "num_classes": num_classes,
        "in_channels": in_channels,
        "width": width,
        "ode_blocks": ode_blocks,
        "norm": norm,
        "weight_norm": weight_norm,
        "activation": activation,
        "mean": mean,
        "std": std,
    }
    if name == "odenet":
        return ODENet(**options)
    if name == "resnet":
        return ResNet(**options)
    return MetaNODE(name, **options)


def _default_statistic(argument: str, values: tuple, in_channels: int) -> tuple:
    if len(values) != in_channels:
        raise ValueError(
            f"`{argument}` has no default for {in_channels} input channels; "
            f"pass {in_channels} values"
        )
    return values
