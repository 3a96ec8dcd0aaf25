"""Time generated RK4 solves against a hand-unrolled loop and torchdiffeq.

Each case times forward plus backward of one solve on the CPU. The three
implementations run interleaved, round after round, so that machine noise hits them
alike; the table reports medians and ratios to the hand-unrolled loop, which is the
floor for a fixed-grid Python solver.

    python benchmarks/solver_overhead.py [--threads 1] [--rounds 30]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from metanode.solvers import make_solver

try:
    import torchdiffeq
except ImportError:  # the bench extra is not installed
    torchdiffeq = None


class MLPField(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, width)
        )

    def forward(self, t, y):
        return self.net(y)


class ConcatConv(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels + 1, channels, 3, padding=1)

    def forward(self, t, y):
        time_channel = torch.ones_like(y[:, :1]) * t
        return self.conv(torch.cat([time_channel, y], dim=1))


class ConvField(nn.Module):
    """The grey-image ODE-Net's right-hand side: GN ReLU conv GN ReLU conv GN."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(32, channels), channels)
        self.conv1 = ConcatConv(channels)
        self.norm2 = nn.GroupNorm(min(32, channels), channels)
        self.conv2 = ConcatConv(channels)
        self.norm3 = nn.GroupNorm(min(32, channels), channels)

    def forward(self, t, y):
        out = self.conv1(t, torch.relu(self.norm1(y)))
        out = self.conv2(t, torch.relu(self.norm2(out)))
        return self.norm3(out)


def hand_rk4(func, y, steps: int):
    """Kutta's 3/8 rule written out by hand over [0, 1]."""
    dt = 1.0 / steps
    t = torch.zeros((), dtype=y.dtype)
    for _ in range(steps):
        k1 = func(t, y)
        k2 = func(t + dt / 3, y + dt / 3 * k1)
        k3 = func(t + 2 * dt / 3, y + dt * (k2 - k1 / 3))
        k4 = func(t + dt, y + dt * (k1 - k2 + k3))
        y = y + dt / 8 * (k1 + 3 * (k2 + k3) + k4)
        t = t + dt
    return y


def time_once(run, y0) -> float:
    y = y0.clone().requires_grad_(True)
    start = time.perf_counter()
    run(y).square().mean().backward()
    return time.perf_counter() - start


def measure(case: dict, rounds: int) -> dict[str, float]:
    func, y0, steps = case["func"], case["y0"], case["steps"]
    generated = make_solver("rk4", u=1 / 3, v=2 / 3, steps=steps)
    runs = {
        "hand-unrolled": lambda y: hand_rk4(func, y, steps),
        "generated rk4": lambda y: generated(func, y),
    }
    if torchdiffeq is not None:
        times = torch.tensor([0.0, 1.0])
        runs["torchdiffeq rk4"] = lambda y: torchdiffeq.odeint(
            func, y, times, method="rk4", options={"step_size": 1.0 / steps}
        )[-1]

    # All three must agree before they are timed.
    with torch.no_grad():
        reference = runs["hand-unrolled"](y0)
        for name, run in runs.items():
            difference = (run(y0) - reference).abs().max().item()
            if difference > 1e-4:
                raise RuntimeError(f"{name} differs from the hand loop by {difference}")

    for run in runs.values():  # warm-up
        time_once(run, y0)
    samples = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name].append(time_once(run, y0))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds per case")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cases = [
        {
            "name": "tiny MLP 2->16->2, batch 64, 32 steps",
            "func": MLPField(2, 16),
            "y0": torch.randn(64, 2),
            "steps": 32,
        },
        {
            "name": "MLP 64->128->64, batch 256, 8 steps",
            "func": MLPField(64, 128),
            "y0": torch.randn(256, 64),
            "steps": 8,
        },
        {
            "name": "conv 64x7x7 block, batch 128, 8 steps",
            "func": ConvField(64),
            "y0": torch.randn(128, 64, 7, 7),
            "steps": 8,
        },
    ]
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print(
        f"threads: {torch.get_num_threads()}, rounds: {args.rounds}, forward+backward"
    )
    if torchdiffeq is None:
        print("torchdiffeq not installed (pip install -e '.[bench]'); column skipped")
    header = "| case | hand-unrolled ms | generated / hand | torchdiffeq / hand |"
    print(header)
    print("| --- | --- | --- | --- |")
    for case in cases:
        medians = measure(case, args.rounds)
        hand = medians["hand-unrolled"]
        ratio = medians["generated rk4"] / hand
        if "torchdiffeq rk4" in medians:
            diffeq = f"{medians['torchdiffeq rk4'] / hand:.3f}"
        else:
            diffeq = "n/a"
        print(f"| {case['name']} | {hand * 1e3:.2f} | {ratio:.3f} | {diffeq} |")


if __name__ == "__main__":
    main()
