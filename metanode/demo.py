"""The main job: robust ODE-Net on Fashion-MNIST, trained and attacked end to end.

Trains the ODE-Net with the RK2 family under solver smoothing and FGSM-random
adversarial training, then measures clean, FGSM and PGD accuracy under standalone,
solver ensembling and model ensembling. Prints the table and writes the checkpoint,
``results.json`` and ``results.png`` into a new folder under ``runs/``.

    python -m metanode.demo

The size (width 32, 2 epochs, 2,000 test images) took 7 to 10 minutes on one thread of
a 2-core AMD EPYC machine, depending on other work. docs/training.md shows the output.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from metanode.data import DEBIAN_FASHION_MNIST, DatasetNotFoundError

logger = logging.getLogger("metanode.demo")

SOLVER = "rk2:u=0.5,steps=4"
ENSEMBLE = "rk2:u=0.25,steps=4;rk2:u=0.5,steps=4;rk2:u=0.75,steps=4"
TEST_STEPS = [2, 4, 8]
DEBIAN_PACKAGE = "dataset-fashion-mnist"


def ensure_fashion_mnist() -> None:
    """Install the Debian package when the data is missing and we may; otherwise
    raise DatasetNotFoundError saying what to do."""
    if (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        return
    can_install = os.geteuid() == 0 and shutil.which("apt-get") is not None
    if not can_install:
        raise DatasetNotFoundError(
            f"Fashion-MNIST is missing from {DEBIAN_FASHION_MNIST}; install it as "
            f"root with `apt-get install -y {DEBIAN_PACKAGE}` and run the demo again"
        )
    logger.info("Fashion-MNIST is missing; installing %s", DEBIAN_PACKAGE)
    install = ["apt-get", "install", "-y", DEBIAN_PACKAGE]
    if subprocess.run(install).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update"], check=False)
        if subprocess.run(install).returncode != 0:
            raise DatasetNotFoundError(
                f"`{' '.join(install)}` failed; install {DEBIAN_PACKAGE} by hand "
                f"and run the demo again"
            )


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m metanode.demo",
        description="Train and attack a robust ODE-Net on Fashion-MNIST.",
    )
    parser.add_argument(
        "--out",
        help="run folder (default: runs/demo-<date>-<time>; never reused)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default: 1, because on a 2-core machine with the "
        "other core busy two threads run several times slower than one)",
    )
    parser.add_argument("--epochs", type=int, default=2, help="default: 2")
    parser.add_argument("--width", type=int, default=32, help="default: 32")
    parser.add_argument("--test-images", type=int, default=2000, help="default: 2000")
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    from metanode.data import load_dataset
    from metanode.evaluation import (
        AttackSettings,
        evaluate,
        expand_requests,
        format_table,
    )
    from metanode.plotting import plot_demo_results
    from metanode.solvers import parse_solver_specs
    from metanode.training import TrainConfig, Trainer, configure_threads

    started = time.perf_counter()
    ensure_fashion_mnist()
    out = Path(args.out or time.strftime("runs/demo-%Y%m%d-%H%M%S"))
    threads = configure_threads(args.threads)

    config = TrainConfig(
        dataset="fashion-mnist",
        model="odenet",
        width=args.width,
        train_solvers=SOLVER,
        train_regime="smoothing",
        smoothing_distribution="normal",
        smoothing_scale=0.0125,
        adversarial="fgsm-random",
        eps=0.1,
        alpha=0.125,
        optimizer="adam",
        schedule="one-cycle",
        base_lr=4e-4,
        max_lr=1e-2,
        batch_size=128,
        epochs=args.epochs,
        seed=args.seed,
        threads=threads,
        log_every=100,
    )
    trainer = Trainer(config, out)
    metrics = trainer.run()
    trained = time.perf_counter()

    attacks = AttackSettings(fgsm_eps=0.1, pgd_eps=0.1, pgd_alpha=0.025, pgd_steps=7)
    test_set = load_dataset("fashion-mnist", "test", limit=args.test_images)
    ensemble = parse_solver_specs(ENSEMBLE)
    regime_requests = expand_requests(["standalone"], ensemble) + expand_requests(
        ["solver-ensemble", "model-ensemble"], ensemble
    )
    regime_rows = evaluate(
        trainer.model, test_set, regime_requests, [4], attacks, seed=args.seed
    )
    step_requests = expand_requests(["standalone"], parse_solver_specs(SOLVER))
    other_steps = [steps for steps in TEST_STEPS if steps != 4]
    step_rows = evaluate(
        trainer.model, test_set, step_requests, other_steps, attacks, seed=args.seed
    )
    middle = next(r for r in regime_rows if r["solvers"] == [SOLVER])
    step_rows = sorted([*step_rows, middle], key=lambda row: row["steps"])
    finished = time.perf_counter()

    results = {
        "train_config": config.to_dict(),
        "train_metrics": metrics,
        "attacks": {
            "fgsm": {"eps": attacks.fgsm_eps},
            "pgd": {
                "eps": attacks.pgd_eps,
                "alpha": attacks.pgd_alpha,
                "steps": attacks.pgd_steps,
                "random_start": True,
            },
        },
        "test_images": len(test_set),
        "threads": threads,
        "regimes": regime_rows,
        "test_steps": step_rows,
        "seconds": {
            "train": trained - started,
            "evaluate": finished - trained,
            "total": finished - started,
        },
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    title = (
        f"ODE-Net width {args.width}, RK2 smoothing + FGSM-random (eps 0.1), "
        f"{args.epochs} epochs; first {len(test_set)} Fashion-MNIST test images"
    )
    plot = plot_demo_results(
        regime_rows, step_rows, metrics["history"], out / "results.png", title
    )

    print()
    print(f"Accuracy on the first {len(test_set)} Fashion-MNIST test images")
    print("(FGSM eps 0.1; PGD eps 0.1, step 0.025, 7 iterations, random start):")
    print()
    print(format_table(regime_rows + [r for r in step_rows if r is not middle]))
    print()
    print(f"checkpoint: {trainer.checkpoint_path}")
    print(f"metrics:    {out / 'results.json'}")
    print(f"plot:       {plot}")
    print(
        f"time: {results['seconds']['total'] / 60:.1f} min (training "
        f"{results['seconds']['train'] / 60:.1f} min, evaluation "
        f"{results['seconds']['evaluate'] / 60:.1f} min) on {threads} thread(s)"
    )
    return results


def main(argv=None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        run(args)
    except (DatasetNotFoundError, ValueError, FileExistsError) as error:
        print(f"metanode demo: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
