"""Training runs on a real Fashion-MNIST slice: exact resume, schedule, guards."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch
from conftest import require_fashion_mnist

from metanode.checkpoint import CheckpointError
from metanode.data import DatasetNotFoundError
from metanode.solvers import parse_solver_specs
from metanode.training import (
    TrainConfig,
    Trainer,
    build_regime_from_options,
    check_device,
    configure_threads,
)

# Tiny but complete: every source of randomness is in use (batch order, smoothing
# draws, FGSM random starts), the one-cycle schedule steps per batch, and 10 steps
# of batch 32 over 200 images cross an epoch boundary (7 batches per epoch).
SMALL = TrainConfig(
    width=4,
    train_limit=200,
    batch_size=32,
    max_steps=10,
    train_solvers="rk2:u=0.5,steps=2",
    train_regime="smoothing",
    adversarial="fgsm-random",
    optimizer="sgd",
    schedule="one-cycle",
    max_lr=0.05,
    log_every=0,
    checkpoint_every=4,
)


class Interrupt(Exception):
    """Raised by a step callback to stop a run as a crash would."""


def _stop_at(step: int):
    def callback(record):
        if record.step == step:
            raise Interrupt

    return callback


@pytest.fixture(autouse=True)
def one_thread():
    # Bit-exact comparisons need the same thread count in both runs.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_resume_matches_uninterrupted_run(tmp_path):
    require_fashion_mnist()
    straight = Trainer(SMALL, tmp_path / "straight")
    straight.run()

    interrupted = Trainer(SMALL, tmp_path / "resumed")
    with pytest.raises(Interrupt):
        interrupted.run(step_callback=_stop_at(6))
    assert interrupted.last_checkpoint_step == 4

    resumed = Trainer(SMALL, tmp_path / "resumed", resume=True)
    assert resumed.step == 4
    resumed.run()

    # Same machine, same thread count and deterministic CPU kernels: the weights,
    # optimizer buffers and schedule must agree bit for bit.
    expected = straight.model.state_dict()
    for name, tensor in resumed.model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    momentum = [s["momentum_buffer"] for s in straight.optimizer.state.values()]
    resumed_momentum = [s["momentum_buffer"] for s in resumed.optimizer.state.values()]
    assert all(map(torch.equal, momentum, resumed_momentum))
    assert resumed.scheduler.state_dict() == straight.scheduler.state_dict()
    assert resumed.step == straight.step == 10


def test_one_cycle_rises_and_falls(tmp_path):
    require_fashion_mnist()
    config = dataclasses.replace(
        SMALL, adversarial="clean", train_regime="standalone", base_lr=1e-4
    )
    rates = []
    Trainer(config, tmp_path).run(step_callback=lambda r: rates.append(r.lr))
    # Linear ramps in float arithmetic; 1e-9 is far below the 0.011 step between
    # successive rates. With 10 steps the apex (step 4.5) falls between batches 4
    # and 5, which train at 1e-4 + (0.05 - 1e-4) * 8 / 9.
    assert rates[0] == pytest.approx(1e-4, abs=1e-9)
    assert rates[-1] == pytest.approx(1e-4, abs=1e-9)
    assert max(rates) == pytest.approx(1e-4 + (0.05 - 1e-4) * 8 / 9, abs=1e-9)
    peak = rates.index(max(rates))
    assert peak in (4, 5)
    assert all(a < b for a, b in zip(rates[:peak], rates[1 : peak + 1]))
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1 :]))
    assert rates[peak + 1] < rates[peak] or rates[peak + 2] < rates[peak]


def test_existing_checkpoint_not_overwritten(tmp_path):
    require_fashion_mnist()
    config = dataclasses.replace(SMALL, max_steps=2)
    Trainer(config, tmp_path).run()
    saved = (tmp_path / "checkpoint.pt").read_bytes()

    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(config, tmp_path)
    with pytest.raises(CheckpointError, match="width: checkpoint 4, requested 8"):
        Trainer(dataclasses.replace(config, width=8), tmp_path, resume=True)

    assert (tmp_path / "checkpoint.pt").read_bytes() == saved


def test_overwrite_starts_new_run(tmp_path):
    require_fashion_mnist()
    config = dataclasses.replace(SMALL, max_steps=2)
    Trainer(config, tmp_path).run()
    trainer = Trainer(config, tmp_path, overwrite=True)
    assert trainer.step == 0


def test_resume_without_checkpoint_fails(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        Trainer(SMALL, tmp_path, resume=True)


def test_training_lowers_loss(tmp_path):
    require_fashion_mnist()
    config = dataclasses.replace(
        SMALL,
        width=16,
        adversarial="clean",
        train_regime="standalone",
        optimizer="adam",
        schedule="constant",
        lr=3e-2,
        batch_size=64,
        train_limit=4096,
        max_steps=60,
        log_every=20,
    )
    metrics = Trainer(config, tmp_path).run()
    losses = [entry["loss"] for entry in metrics["history"]]
    assert len(losses) == 3
    # Cross-entropy of a uniform guess over 10 classes is ln 10 = 2.30. This run
    # measured 2.29, 2.14 and 1.72 for the three windows; 2.0 leaves room for
    # other CPUs while still failing for a model that does not learn.
    assert losses[-1] < losses[0]
    assert losses[-1] < 2.0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"model": "vgg"}, "unknown model 'vgg'"),
        ({"adversarial": "cw"}, "unknown adversarial 'cw'"),
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
        ({"train_solvers": "rk2:u=0,steps=2"}, "singular"),
        ({"train_solvers": "rk2:u=0.5"}, "steps or step_size"),
        ({"lr": 0.0}, "`lr` must be a positive"),
        ({"batch_size": 0}, "`batch_size` must be"),
        ({"smoothing_prob": 1.5}, "`smoothing_prob`"),
        ({"schedule": "one-cycle", "max_lr": 1e-8}, "max_lr > base_lr"),
    ],
)
def test_invalid_config_rejected(change, match):
    config = dataclasses.replace(SMALL, **change)
    with pytest.raises(ValueError, match=match):
        config.validate()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"ensemble_weights": [0.5, 0.6]}, "sum to"),
        ({"ensemble_weights": [1.0]}, "1 values"),
    ],
)
def test_invalid_ensemble_weights_rejected(tmp_path, change, match):
    config = dataclasses.replace(
        SMALL,
        train_regime="solver-ensemble",
        train_solvers="rk2:u=0.5,steps=2;rk2:u=1,steps=2",
        **change,
    )
    with pytest.raises(ValueError, match=match):
        Trainer(config, tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_amp_on_cpu_warns_and_stays_off(tmp_path):
    require_fashion_mnist()
    config = dataclasses.replace(SMALL, amp=True, max_steps=1)
    with pytest.warns(UserWarning, match="CUDA"):
        trainer = Trainer(config, tmp_path)
    assert trainer.amp is False
    assert trainer.scaler is None


def test_configure_threads_sets_torch():
    assert configure_threads(1) == 1
    assert torch.get_num_threads() == 1


def test_configure_threads_rejects_zero():
    with pytest.raises(ValueError, match="`threads` must be an integer >= 1"):
        configure_threads(0)


def test_seed_sets_python_and_numpy(tmp_path):
    require_fashion_mnist()
    config = dataclasses.replace(SMALL, seed=3, max_steps=1)
    draws = []
    for folder in ("first", "second"):
        random.seed(100 + len(draws))
        np.random.seed(100 + len(draws))
        Trainer(config, tmp_path / folder)
        draws.append((random.random(), float(np.random.rand())))
    assert draws[0] == draws[1]

    random.seed(3)
    np.random.seed(3)
    assert draws[0] == (random.random(), float(np.random.rand()))


def test_overwrite_removes_old_run_files(tmp_path):
    require_fashion_mnist()
    config = dataclasses.replace(SMALL, max_steps=2)
    Trainer(config, tmp_path).run()
    for name in ("evaluation.json", "train.log", "results.json", "results.png"):
        (tmp_path / name).write_text("from the replaced run\n")
    (tmp_path / "notes.txt").write_text("not a run file\n")

    trainer = Trainer(config, tmp_path, overwrite=True)

    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["config.json", "notes.txt"]
    trainer.run()
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["checkpoint.pt", "config.json", "metrics.json", "notes.txt"]


def test_failed_overwrite_keeps_old_run(tmp_path):
    require_fashion_mnist()
    config = dataclasses.replace(SMALL, max_steps=2)
    Trainer(config, tmp_path / "run").run()
    saved = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    (tmp_path / "empty").mkdir()
    missing_data = dataclasses.replace(config, data_root=str(tmp_path / "empty"))

    with pytest.raises(DatasetNotFoundError):
        Trainer(missing_data, tmp_path / "run", overwrite=True)

    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == saved


def test_resume_of_finished_run_changes_nothing(tmp_path):
    require_fashion_mnist()
    config = dataclasses.replace(SMALL, max_steps=2)
    Trainer(config, tmp_path).run()
    before = {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()
    }

    trainer = Trainer(config, tmp_path, resume=True)
    assert trainer.complete
    assert trainer.last_checkpoint_step == 2
    metrics = trainer.run()

    assert metrics["step"] == 2
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert after == before


def test_oversized_grid_fails_at_build():
    # 10^11 steps need an 800 GB float64 grid.
    specs = parse_solver_specs("rk2:u=0.5,steps=100000000000")
    with pytest.raises(ValueError, match="cannot lay out the time grid"):
        build_regime_from_options("standalone", specs)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("bogus", "invalid device 'bogus'"),
        ("meta", "unsupported device 'meta'"),
        (f"cuda:{torch.cuda.device_count()}", "is not available"),
    ],
)
def test_check_device_rejects(name, match):
    with pytest.raises(ValueError, match=match):
        check_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_check_device_without_cuda():
    with pytest.raises(ValueError, match="torch finds no CUDA device"):
        check_device("cuda")


def test_check_device_accepts_cpu():
    assert check_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(
    ("change", "names", "match"),
    [
        ({}, ["ensemble_weights"], "--ensemble-weights is used only with"),
        ({}, ["switching_probs"], "--train-regime switching, but"),
        ({"train_regime": "switching"}, ["smoothing_scale"], "is switching"),
        ({"adversarial": "clean"}, ["eps"], "--adversarial is clean"),
        ({"adversarial": "fgsm"}, ["alpha"], "--alpha is used only with"),
        ({"adversarial": "fgsm-random"}, ["attack_steps"], "--attack-steps"),
        ({"optimizer": "adam"}, ["momentum"], "--optimizer is adam"),
        ({"schedule": "constant"}, ["base_lr"], "--schedule is constant"),
    ],
)
def test_unused_option_rejected(change, names, match):
    config = dataclasses.replace(SMALL, **change)
    with pytest.raises(ValueError, match=match):
        config.check_options_used(names)


def test_used_options_accepted():
    config = dataclasses.replace(SMALL, adversarial="pgd", attack_steps=3, alpha=0.05)
    config.check_options_used(
        ["smoothing_scale", "eps", "alpha", "attack_steps", "momentum", "max_lr"]
    )


@pytest.mark.parametrize("name", ["eps", "alpha"])
def test_attack_radius_above_one_rejected(name):
    config = dataclasses.replace(SMALL, **{name: 2.0})
    with pytest.raises(ValueError, match=f"`{name}` must be in \\(0, 1\\]"):
        config.validate()
