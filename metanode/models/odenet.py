"""The ODE-Net for 28x28 grey images and its ResNet baseline.

Both share the downsampling stem and the classification head:

    stem: Conv(in -> w, 3x3) N A Conv(w -> w, 4x4, stride 2) N A
          Conv(w -> w, 4x4, stride 2)            28x28 -> 26x26 -> 13x13 -> 6x6
    head: N A global-average-pool Linear(w -> classes)

where N is the normalization layer and A the activation. Between stem and head
the ODE-Net has ODE blocks with the right-hand side
N A ConcatConv(3x3) N A ConcatConv(3x3) N. The ResNet has residual blocks
y + g(y) there instead, where g is the same stack with plain convolutions, so each
block is one explicit Euler step of size one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from metanode.models.blocks import (
    ConcatConv2d,
    ODEBlock,
    ODEFunction,
    PixelNormalization,
    apply_weight_norm,
    make_activation,
    make_norm,
)


class ConcatConvODEFunction(ODEFunction):
    """Right-hand side N A ConcatConv N A ConcatConv N on `channels` feature maps."""

    def __init__(self, channels: int, norm: str, weight_norm: str, activation: str):
        super().__init__()
        self.norm1 = make_norm(norm, channels)
        self.act1 = make_activation(activation)
        self.conv1 = ConcatConv2d(channels, channels)
        self.norm2 = make_norm(norm, channels)
        self.act2 = make_activation(activation)
        self.conv2 = ConcatConv2d(channels, channels)
        self.norm3 = make_norm(norm, channels)
        apply_weight_norm(self.conv1.conv, weight_norm)
        apply_weight_norm(self.conv2.conv, weight_norm)

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        out = self.conv1(t, self.act1(self.norm1(y)))
        out = self.conv2(t, self.act2(self.norm2(out)))
        return self.norm3(out)


class ResidualBlock(nn.Module):
    """y + g(y) with g = N A Conv(3x3) N A Conv(3x3) N."""

    def __init__(self, channels: int, norm: str, weight_norm: str, activation: str):
        super().__init__()
        conv1 = apply_weight_norm(
            nn.Conv2d(channels, channels, 3, padding=1), weight_norm
        )
        conv2 = apply_weight_norm(
            nn.Conv2d(channels, channels, 3, padding=1), weight_norm
        )
        self.residual = nn.Sequential(
            make_norm(norm, channels),
            make_activation(activation),
            conv1,
            make_norm(norm, channels),
            make_activation(activation),
            conv2,
            make_norm(norm, channels),
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.residual(y)


def _make_stem(
    in_channels: int, width: int, norm: str, weight_norm: str, activation: str
) -> nn.Sequential:
    convs = [
        nn.Conv2d(in_channels, width, 3),
        nn.Conv2d(width, width, 4, stride=2, padding=1),
        nn.Conv2d(width, width, 4, stride=2, padding=1),
    ]
    for conv in convs:
        apply_weight_norm(conv, weight_norm)
    return nn.Sequential(
        convs[0],
        make_norm(norm, width),
        make_activation(activation),
        convs[1],
        make_norm(norm, width),
        make_activation(activation),
        convs[2],
    )


def _make_head(width: int, num_classes: int, norm: str, activation: str):
    return nn.Sequential(
        make_norm(norm, width),
        make_activation(activation),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, num_classes),
    )


class _GreyImageNet(nn.Module):
    """Shared constructor and config of the ODE-Net and the ResNet baseline."""

    name = ""

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        width: int,
        ode_blocks: int,
        norm: str,
        weight_norm: str,
        activation: str,
        mean: Sequence[float],
        std: Sequence[float],
    ):
        super().__init__()
        self.normalize = PixelNormalization(mean, std, in_channels)
        self.stem = _make_stem(in_channels, width, norm, weight_norm, activation)
        self.head = _make_head(width, num_classes, norm, activation)
        self.config = {
            "name": self.name,
            "num_classes": num_classes,
            "in_channels": in_channels,
            "width": width,
            "ode_blocks": ode_blocks,
            "norm": norm,
            "weight_norm": weight_norm,
            "activation": activation,
            "mean": [float(m) for m in mean],
            "std": [float(s) for s in std],
        }


class ODENet(_GreyImageNet):
    """ODE-Net for 28x28 images: stem, `ode_blocks` ODE blocks, head.

    Takes pixels in [0, 1] of shape (N, in_channels, 28, 28) and returns logits of
    shape (N, num_classes). Other square sizes from 10x10 up work too because the
    head pools globally.
    """

    name = "odenet"

    def __init__(self, **options):
        super().__init__(**options)
        width = options["width"]
        self.blocks = nn.ModuleList(
            ODEBlock(
                ConcatConvODEFunction(
                    width,
                    options["norm"],
                    options["weight_norm"],
                    options["activation"],
                )
            )
            for _ in range(options["ode_blocks"])
        )

    def forward(self, x: torch.Tensor, solvers=None, weights=None) -> torch.Tensor:
        # The weight reparametrization is computed once per forward pass instead of
        # once per right-hand-side evaluation, because the weights cannot change
        # in between.
        with parametrize.cached():
            out = self.stem(self.normalize(x))
            for block in self.blocks:
                out = block(out, solvers, weights)
            return self.head(out)


class ResNet(_GreyImageNet):
    """ResNet baseline: stem, `ode_blocks` residual blocks, head; ignores solvers."""

    name = "resnet"

    def __init__(self, **options):
        super().__init__(**options)
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(
                    options["width"],
                    options["norm"],
                    options["weight_norm"],
                    options["activation"],
                )
                for _ in range(options["ode_blocks"])
            )
        )

    def forward(self, x: torch.Tensor, solvers=None, weights=None) -> torch.Tensor:
        with parametrize.cached():
            return self.head(self.blocks(self.stem(self.normalize(x))))
