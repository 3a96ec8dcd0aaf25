"""Training and PGD evaluation throughput for the demo's configuration.

Training: the ODE-Net under RK2 smoothing with FGSM-random adversarial batches
(one attack gradient plus one update per batch). Evaluation: PGD with 7 iterations
under the standalone regime. Both run on real Fashion-MNIST images and report the
median images per second over the timed batches.

    python benchmarks/train_throughput.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from metanode.attacks import build_attack
from metanode.data import iterate_batches, load_dataset
from metanode.solvers import SolverSpec
from metanode.training import TrainConfig, build_model_for, build_regime_from_options


def _time_batches(function, batches, warmup: int) -> list[float]:
    rates = []
    for index, (images, labels) in enumerate(batches):
        start = time.perf_counter()
        function(images, labels)
        seconds = time.perf_counter() - start
        if index >= warmup:
            rates.append(len(labels) / seconds)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--solver", default="rk2:u=0.5,steps=4")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=6, help="timed batches")
    parser.add_argument("--warmup", type=int, default=1, help="untimed batches")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    count = (args.batches + args.warmup) * args.batch_size
    dataset = load_dataset("fashion-mnist", "train", limit=count)
    config = TrainConfig(width=args.width, train_solvers=args.solver)
    model = build_model_for(config)
    spec = SolverSpec.parse(args.solver)
    generator = torch.Generator().manual_seed(1)
    smoothing = build_regime_from_options("smoothing", [spec], generator=generator)
    standalone = build_regime_from_options("standalone", [spec])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    fgsm_random = build_attack("fgsm-random", 0.1, alpha=0.125, generator=generator)
    pgd = build_attack("pgd", 0.1, alpha=0.025, steps=7, generator=generator)

    def train_step(images, labels):
        predict = lambda x: smoothing(model, x)  # noqa: E731
        adversarial = fgsm_random(predict, images, labels)
        optimizer.zero_grad(set_to_none=True)
        F.nll_loss(predict(adversarial), labels).backward()
        optimizer.step()

    def pgd_step(images, labels):
        predict = lambda x: standalone(model, x)  # noqa: E731
        adversarial = pgd(predict, images, labels)
        with torch.no_grad():
            predict(adversarial)

    model.train()
    train_rates = _time_batches(
        train_step, iterate_batches(dataset, args.batch_size), args.warmup
    )
    model.eval()
    pgd_rates = _time_batches(
        pgd_step, iterate_batches(dataset, args.batch_size), args.warmup
    )

    print(
        f"machine: {platform.machine()} {platform.processor() or ''}".rstrip()
        + f", {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s)"
    )
    print(
        f"model: odenet width {args.width}, solver {args.solver}, batch "
        f"{args.batch_size}, {args.batches} timed batches after {args.warmup} warmup"
    )
    print(
        "train (smoothing, FGSM-random eps 0.1): "
        f"{statistics.median(train_rates):.1f} images/s (median; min "
        f"{min(train_rates):.1f}, max {max(train_rates):.1f})"
    )
    print(
        "evaluate (standalone, PGD eps 0.1, 7 iterations): "
        f"{statistics.median(pgd_rates):.1f} images/s (median; min "
        f"{min(pgd_rates):.1f}, max {max(pgd_rates):.1f})"
    )


if __name__ == "__main__":
    main()
