"""CIFAR-10 models metanode4/6/10/18/34 and premetanode4/6/10/18/34.

Each model is a ResNet whose stages hold residual blocks followed by ODE blocks:

    Conv(3x3) -> stage 1 -> ... -> stage k -> average pool -> Linear

Stage i has width * 2**(i - 1) channels; every stage after the first halves the
spatial size in its first residual block. The number in the name counts the
convolutions and the linear layer, with each ODE block counted as its two
convolutions, as in ResNet-18 and ResNet-34. The metanode models use basic blocks
(Conv N A Conv N, add, A) and the right-hand side Conv N A Conv N A. The premetanode
models use pre-activation blocks (N A Conv N A Conv, add), the right-hand side
N A Conv N A Conv and a final N A before pooling. The right-hand sides do not
depend on t.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from metanode.models.blocks import (
    ODEBlock,
    ODEFunction,
    PixelNormalization,
    apply_weight_norm,
    make_activation,
    make_norm,
)

# (residual blocks, ODE blocks) per stage, keyed by the depth in the model name.
STAGE_LAYOUTS: dict[int, tuple[tuple[int, int], ...]] = {
    4: ((0, 1),),
    6: ((1, 1),),
    10: ((1, 1), (1, 1)),
    18: ((1, 1), (1, 1), (1, 1), (1, 1)),
    34: ((1, 2), (1, 3), (1, 5), (1, 2)),
}


def _conv3x3(
    in_channels: int, out_channels: int, stride: int, norm: str, weight_norm: str
) -> nn.Module:
    # A bias is redundant in front of a normalization layer with its own shift.
    conv = nn.Conv2d(
        in_channels, out_channels, 3, stride, padding=1, bias=norm == "none"
    )
    return apply_weight_norm(conv, weight_norm)


def _shortcut(
    in_channels: int, out_channels: int, stride: int, weight_norm: str
) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    conv = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
    return apply_weight_norm(conv, weight_norm)


class BasicBlock(nn.Module):
    """A(N(Conv(A(N(Conv(x))))) + shortcut(x)), the block of ResNet-18/34."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        norm: str,
        weight_norm: str,
        activation: str,
    ):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride, norm, weight_norm)
        self.norm1 = make_norm(norm, out_channels)
        self.act1 = make_activation(activation)
        self.conv2 = _conv3x3(out_channels, out_channels, 1, norm, weight_norm)
        self.norm2 = make_norm(norm, out_channels)
        self.act2 = make_activation(activation)
        self.shortcut = _shortcut(in_channels, out_channels, stride, weight_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class PreActivationBlock(nn.Module):
    """Conv(A(N(Conv(A(N(x)))))) + shortcut(x), the pre-activation residual block."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        norm: str,
        weight_norm: str,
        activation: str,
    ):
        super().__init__()
        self.norm1 = make_norm(norm, in_channels)
        self.act1 = make_activation(activation)
        self.conv1 = _conv3x3(in_channels, out_channels, stride, norm, weight_norm)
        self.norm2 = make_norm(norm, out_channels)
        self.act2 = make_activation(activation)
        self.conv2 = _conv3x3(out_channels, out_channels, 1, norm, weight_norm)
        self.shortcut = _shortcut(in_channels, out_channels, stride, weight_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.act1(self.norm1(x)))
        out = self.conv2(self.act2(self.norm2(out)))
        return out + self.shortcut(x)


class ConvODEFunction(ODEFunction):
    """Autonomous right-hand side: Conv N A Conv N A, or N A Conv N A Conv if
    `preactivation`."""

    def __init__(
        self,
        channels: int,
        preactivation: bool,
        norm: str,
        weight_norm: str,
        activation: str,
    ):
        super().__init__()
        conv1 = _conv3x3(channels, channels, 1, norm, weight_norm)
        conv2 = _conv3x3(channels, channels, 1, norm, weight_norm)
        if preactivation:
            layers = [
                make_norm(norm, channels),
                make_activation(activation),
                conv1,
                make_norm(norm, channels),
                make_activation(activation),
                conv2,
            ]
        else:
            layers = [
                conv1,
                make_norm(norm, channels),
                make_activation(activation),
                conv2,
                make_norm(norm, channels),
                make_activation(activation),
            ]
        self.layers = nn.Sequential(*layers)

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.layers(y)


class Stage(nn.Module):
    """Residual blocks, the first with the stage's stride, then ODE blocks."""

    def __init__(self, residual_blocks: nn.Module, ode_blocks: nn.ModuleList):
        super().__init__()
        self.residual_blocks = residual_blocks
        self.ode_blocks = ode_blocks

    def forward(self, x: torch.Tensor, solvers, weights) -> torch.Tensor:
        out = self.residual_blocks(x)
        for block in self.ode_blocks:
            out = block(out, solvers, weights)
        return out


class MetaNODE(nn.Module):
    """A metanode or premetanode model for 32x32 colour images.

    Takes pixels in [0, 1] of shape (N, in_channels, H, W) and returns logits of
    shape (N, num_classes). `ode_blocks` multiplies the number of ODE blocks in
    every stage of the named layout (1 keeps the layout).
    """

    def __init__(
        self,
        name: str,
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
        preactivation = name.startswith("pre")
        depth = int(name.removeprefix("pre").removeprefix("metanode"))
        block_class = PreActivationBlock if preactivation else BasicBlock
        self.normalize = PixelNormalization(mean, std, in_channels)
        self.stem = apply_weight_norm(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=norm == "none"),
            weight_norm,
        )
        # Basic blocks expect activated input, pre-activation blocks raw input, so
        # the N A pair sits after the stem or before the pooling, not both.
        if preactivation:
            self.stem_norm, self.stem_act = nn.Identity(), nn.Identity()
        else:
            self.stem_norm = make_norm(norm, width)
            self.stem_act = make_activation(activation)

        channels = width
        stages = []
        for index, (residual_count, ode_count) in enumerate(STAGE_LAYOUTS[depth]):
            stage_channels = width * 2**index
            stride = 1 if index == 0 else 2
            residual = []
            for _ in range(residual_count):
                residual.append(
                    block_class(
                        channels, stage_channels, stride, norm, weight_norm, activation
                    )
                )
                channels = stage_channels
                stride = 1
            ode = nn.ModuleList(
                ODEBlock(
                    ConvODEFunction(
                        channels, preactivation, norm, weight_norm, activation
                    )
                )
                for _ in range(ode_count * ode_blocks)
            )
            stages.append(Stage(nn.Sequential(*residual), ode))
        self.stages = nn.ModuleList(stages)

        if preactivation:
            self.head_norm = make_norm(norm, channels)
            self.head_act = make_activation(activation)
        else:
            self.head_norm, self.head_act = nn.Identity(), nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.config = {
            "name": name,
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

    def forward(self, x: torch.Tensor, solvers=None, weights=None) -> torch.Tensor:
        # The weight reparametrization is computed once per forward pass instead of
        # once per right-hand-side evaluation, because the weights cannot change
        # in between.
        with parametrize.cached():
            out = self.stem_act(self.stem_norm(self.stem(self.normalize(x))))
            for stage in self.stages:
                out = stage(out, solvers, weights)
            out = self.head_act(self.head_norm(out))
            return self.fc(torch.flatten(self.pool(out), 1))
