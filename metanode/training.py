"""Training of neural ODEs under a meta-solver regime, optionally adversarial.

``Trainer`` builds data, model, solvers, regime, attack, optimizer and learning-rate
schedule from a ``TrainConfig``, trains for a number of epochs or steps, and writes
checkpoints that let ``Trainer(..., resume=True)`` continue the run exactly: the
resumed run draws the same batches, attack noise and solver samples, and reaches the
same weights as an uninterrupted run on the same machine and thread count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from metanode import checkpoint as ckpt
from metanode.data import batches_per_epoch, dataset_info, iterate_batches, load_dataset
from metanode.solvers import SolverSpec, parse_solver_specs

logger = logging.getLogger(__name__)

ADVERSARIAL_MODES = ("clean", "fgsm", "fgsm-random", "pgd")
OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("constant", "one-cycle")

LOG_FILE = "train.log"
EVALUATION_FILE = "evaluation.json"
# Every file a run folder may contain: train writes the first four, evaluate writes
# evaluation.json and the demo results.json and results.png. Starting a new run
# with overwrite=True removes them all, so nothing of the replaced run remains.
RUN_FILES = (
    ckpt.CHECKPOINT_NAME,
    "config.json",
    "metrics.json",
    LOG_FILE,
    EVALUATION_FILE,
    "results.json",
    "results.png",
)

# Options that only affect how a run executes, not what it computes (on one
# machine); a resumed run may change them.
RUNTIME_OPTIONS = frozenset(
    {"data_root", "download", "threads", "device", "log_every", "checkpoint_every"}
)

# Options that only some settings use: option -> (the setting that selects, the
# values of that setting that read the option). Any other value ignores it.
OPTION_USERS = {
    "switching_probs": ("train_regime", ("switching",)),
    "smoothing_distribution": ("train_regime", ("smoothing",)),
    "smoothing_scale": ("train_regime", ("smoothing",)),
    "smoothing_prob": ("train_regime", ("smoothing",)),
    "ensemble_weights": ("train_regime", ("solver-ensemble", "model-ensemble")),
    "eps": ("adversarial", ("fgsm", "fgsm-random", "pgd")),
    "alpha": ("adversarial", ("fgsm-random", "pgd")),
    "attack_steps": ("adversarial", ("pgd",)),
    "momentum": ("optimizer", ("sgd", "rmsprop")),
    "base_lr": ("schedule", ("one-cycle",)),
    "max_lr": ("schedule", ("one-cycle",)),
}


@dataclass
class TrainConfig:
    """Everything that defines a training run; JSON-able and stored in checkpoints.

    Learning rates are per optimizer step. ``eps`` and ``alpha`` are in pixel units
    (images in [0, 1]).
    """

    # data
    dataset: str = "fashion-mnist"
    data_root: str | None = None
    download: bool = False
    train_limit: int | None = None
    batch_size: int = 128
    # model
    model: str = "odenet"
    width: int = 64
    ode_blocks: int = 1
    norm: str | None = None
    weight_norm: str = "none"
    activation: str | None = None
    # solvers and training regime
    train_solvers: str = "rk2:u=0.5,steps=4"
    train_regime: str = "standalone"
    switching_probs: list[float] | None = None
    smoothing_distribution: str = "normal"
    smoothing_scale: float = 0.0125
    smoothing_prob: float = 1.0
    ensemble_weights: list[float] | None = None
    # adversarial training
    adversarial: str = "clean"
    eps: float = 0.1
    alpha: float | None = None
    attack_steps: int | None = None
    # optimization
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    base_lr: float = 1e-7
    max_lr: float | None = None
    grad_clip: float | None = None
    amp: bool = False
    # length and execution
    epochs: int = 1
    max_steps: int | None = None
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    log_every: int = 50
    checkpoint_every: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**data)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid option."""
        from metanode.models import MODEL_NAMES
        from metanode.regimes import REGIME_NAMES

        dataset_info(self.dataset)
        _check_choice("model", self.model, MODEL_NAMES)
        _check_choice("regime", self.train_regime, REGIME_NAMES)
        _check_choice("adversarial", self.adversarial, ADVERSARIAL_MODES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice(
            "smoothing_distribution", self.smoothing_distribution, ("normal", "cauchy")
        )
        for name in ("batch_size", "epochs", "width", "ode_blocks"):
            _check_positive_int(name, getattr(self, name))
        for name in ("max_steps", "train_limit", "threads", "attack_steps"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name))
        for name in ("log_every", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}")
        for name in ("lr", "base_lr", "eps"):
            _check_positive(name, getattr(self, name))
        for name in ("max_lr", "alpha", "grad_clip"):
            if getattr(self, name) is not None:
                _check_positive(name, getattr(self, name))
        # Pixels lie in [0, 1], so a larger radius or step allows any image.
        for name in ("eps", "alpha"):
            value = getattr(self, name)
            if value is not None and value > 1:
                raise ValueError(
                    f"`{name}` must be in (0, 1] because pixels lie in [0, 1], "
                    f"got {value!r}"
                )
        for name in ("momentum", "weight_decay", "smoothing_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"`{name}` must be >= 0, got {value!r}")
        if not 0.0 <= self.smoothing_prob <= 1.0:
            raise ValueError(
                f"`smoothing_prob` must lie in [0, 1], got {self.smoothing_prob!r}"
            )
        if self.schedule == "one-cycle" and self.peak_lr <= self.base_lr:
            raise ValueError(
                f"one-cycle schedule needs max_lr > base_lr, got max_lr="
                f"{self.peak_lr!r} and base_lr={self.base_lr!r}"
            )
        parse_solver_specs(self.train_solvers)
        check_device(self.device)

    def check_options_used(self, names) -> None:
        """Raise ``ValueError`` if an option in ``names`` is one that the chosen
        regime, adversarial mode, optimizer or schedule does not read.

        ``names`` are the options a caller set explicitly, because the defaults of
        unused options are harmless.
        """
        for name in names:
            if name not in OPTION_USERS:
                continue
            setting, users = OPTION_USERS[name]
            chosen = getattr(self, setting)
            if chosen in users:
                continue
            option, selector = _flag(name), _flag(setting)
            raise ValueError(
                f"{option} is used only with {selector} {' or '.join(users)}, "
                f"but {selector} is {chosen}; drop {option} or choose "
                f"{selector} {users[0]}"
            )

    @property
    def peak_lr(self) -> float:
        """The learning rate at the top of the one-cycle schedule."""
        return self.max_lr if self.max_lr is not None else self.lr


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_device(name) -> torch.device:
    """Return ``torch.device(name)``; raise ``ValueError`` unless it is the CPU or
    an available CUDA device."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"invalid device {name!r}; expected cpu, cuda or cuda:INDEX"
        ) from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(
            f"unsupported device {name!r}: metanode trains on cpu or cuda; "
            f"choose one of those"
        )
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r} is not available: torch finds no CUDA device "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); "
            f"use device cpu"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ValueError(
            f"device {name!r} is not available: torch finds {count} CUDA "
            f"device(s), numbered from 0"
        )
    return device


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(
            f"unknown {name} {value!r}; expected one of: {', '.join(choices)}"
        )


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"`{name}` must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count (all cores when None) and log it."""
    if threads is not None:
        _check_positive_int("threads", threads)
    count = threads if threads is not None else (os.cpu_count() or 1)
    torch.set_num_threads(count)
    logger.info("torch uses %d intra-op thread(s)", count)
    return count


def build_model_for(config: TrainConfig) -> torch.nn.Module:
    """Build the model of ``config`` with its dataset's channels and statistics."""
    from metanode.models import build_model

    info = dataset_info(config.dataset)
    return build_model(
        config.model,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        width=config.width,
        ode_blocks=config.ode_blocks,
        norm=config.norm,
        weight_norm=config.weight_norm,
        activation=config.activation,
        mean=info.mean,
        std=info.std,
    )


def build_regime_from_options(
    name: str,
    specs: list[SolverSpec],
    *,
    switching_probs=None,
    smoothing_distribution: str = "normal",
    smoothing_scale: float = 0.0125,
    smoothing_prob: float = 1.0,
    ensemble_weights=None,
    generator: torch.Generator | None = None,
):
    """Build a regime from solver specs and the options that regime takes."""
    from metanode.regimes import build_regime

    solvers = [_build_solver(spec) for spec in specs]
    if name == "switching":
        options = {"probs": switching_probs, "generator": generator}
    elif name == "smoothing":
        options = {
            "distribution": smoothing_distribution,
            "scale": smoothing_scale,
            "prob": smoothing_prob,
            "generator": generator,
        }
    elif name in ("solver-ensemble", "model-ensemble"):
        options = {"weights": ensemble_weights}
    else:
        options = {}
    return build_regime(name, solvers, **options)


def _build_solver(spec: SolverSpec):
    """Build the solver of ``spec`` and lay out its time grid once.

    The grid is otherwise built at the first forward pass, so a grid too large for
    memory would surface only after a run has started.
    """
    solver = spec.build()
    try:
        solver.grid_spec.build()
    except (RuntimeError, MemoryError) as error:
        reason = " ".join(str(error).split())
        raise ValueError(
            f"cannot lay out the time grid of solver {spec}: {reason}; use fewer "
            f"steps or a larger step_size"
        ) from None
    return solver


def build_train_attack(config: TrainConfig, generator: torch.Generator):
    """Return the attack of the adversarial mode, or None for clean training.

    Left-out alpha and steps take ``build_attack``'s defaults: 1.25 eps for
    fgsm-random, 7 steps of 2.5 eps / 7 for pgd.
    """
    if config.adversarial == "clean":
        return None
    from metanode.attacks import build_attack

    return build_attack(
        config.adversarial,
        config.eps,
        alpha=config.alpha,
        steps=config.attack_steps,
        generator=generator,
    )


@dataclass
class StepRecord:
    """What one optimizer step reports to callbacks and logs."""

    step: int
    epoch: int
    loss: float
    accuracy: float
    lr: float


class Trainer:
    """A training run writing into ``out_dir``.

    Args:
        config: the run's options.
        out_dir: folder for ``checkpoint.pt``, ``config.json`` and
            ``metrics.json``.
        resume: continue from ``out_dir/checkpoint.pt``. Options of ``config`` that
            change the computation must equal the checkpoint's.
        overwrite: start a new run even if ``out_dir`` contains a checkpoint. The
            files of ``RUN_FILES`` in ``out_dir`` are removed once the new run's
            options, model, solvers and data are ready, so a failed start keeps
            the old run.

    Raises:
        ValueError: invalid options.
        FileExistsError: ``out_dir`` contains a checkpoint and neither ``resume`` nor
            ``overwrite`` is set.
        CheckpointError: the checkpoint cannot be read or belongs to another run.
        DatasetNotFoundError: the dataset is missing.
    """

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | os.PathLike,
        *,
        resume: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.checkpoint_path = self.out_dir / ckpt.CHECKPOINT_NAME
        document = None
        if resume:
            document = ckpt.load_checkpoint(self.checkpoint_path)
            config = _merge_resumed_config(document, config, self.checkpoint_path)
        elif self.checkpoint_path.exists() and not overwrite:
            raise FileExistsError(
                f"{self.out_dir} already contains a checkpoint; pass --resume to "
                f"continue that run, --overwrite to replace it, or choose another "
                f"--out folder"
            )
        config.validate()
        self.config = config

        self.device = torch.device(config.device)
        self.amp = _amp_enabled(config.amp, self.device)
        # Python's and NumPy's generators are seeded too, because checkpoints save
        # and restore their states along with torch's.
        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)
        # Separate generators keep the batch order independent of how much
        # randomness the attack and the regime consume.
        self.data_generator = torch.Generator().manual_seed(config.seed)
        self.noise_generator = torch.Generator().manual_seed(config.seed + 1)

        self.specs = parse_solver_specs(config.train_solvers)
        self.model = build_model_for(config).to(self.device)
        self.regime = build_regime_from_options(
            config.train_regime,
            self.specs,
            switching_probs=config.switching_probs,
            smoothing_distribution=config.smoothing_distribution,
            smoothing_scale=config.smoothing_scale,
            smoothing_prob=config.smoothing_prob,
            ensemble_weights=config.ensemble_weights,
            generator=self.noise_generator,
        )
        self.attack = build_train_attack(config, self.noise_generator)
        self.train_set = load_dataset(
            config.dataset,
            "train",
            root=config.data_root,
            download=config.download,
            limit=config.train_limit,
        )
        self.batches_per_epoch = batches_per_epoch(self.train_set, config.batch_size)
        self.total_steps = (
            config.max_steps
            if config.max_steps is not None
            else config.epochs * self.batches_per_epoch
        )
        self.optimizer = _build_optimizer(config, self.model.parameters())
        self.scheduler = _build_scheduler(config, self.optimizer, self.total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp else None

        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.epoch_data_state = self.data_generator.get_state()
        self.history: list[dict] = []
        self.last_checkpoint_step: int | None = None
        if document is not None:
            self._restore(document)
        else:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if overwrite:
                self._remove_run_files()
        # A finished run stays as it is, so resuming it changes no file.
        if not self.complete:
            _write_json(self.out_dir / "config.json", self.config.to_dict())
        logger.info(
            "training %s (%d parameters) on %d %s images: %s regime over %s, "
            "%s adversarial training, %d steps of batch %d",
            config.model,
            sum(p.numel() for p in self.model.parameters()),
            len(self.train_set),
            config.dataset,
            config.train_regime,
            "; ".join(str(spec) for spec in self.specs),
            config.adversarial,
            self.total_steps,
            config.batch_size,
        )

    @property
    def complete(self) -> bool:
        """Whether the run has trained all ``total_steps`` batches."""
        return self.step >= self.total_steps

    def _remove_run_files(self) -> None:
        removed = []
        for name in RUN_FILES:
            path = self.out_dir / name
            if path.is_file() or path.is_symlink():
                path.unlink()
                removed.append(name)
        if removed:
            logger.info(
                "removed the replaced run's files from %s: %s",
                self.out_dir,
                ", ".join(removed),
            )

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of the model under the training regime."""
        return self.regime(self.model, x)

    def run(self, step_callback: Callable[[StepRecord], None] | None = None) -> dict:
        """Train until ``total_steps`` and return the metrics.

        ``step_callback`` is called after every optimizer step. A checkpoint is
        written every ``checkpoint_every`` steps (when above 0), at each epoch end
        and at the end of the run.
        """
        config = self.config
        if self.complete:
            return self.metrics()
        self.model.train()
        progress = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc="train",
            unit="batch",
            disable=None,
            dynamic_ncols=True,
        )
        window = {"loss": 0.0, "correct": 0, "seen": 0, "start": time.perf_counter()}
        try:
            while self.step < self.total_steps:
                self.data_generator.set_state(self.epoch_data_state)
                batches = iterate_batches(
                    self.train_set,
                    config.batch_size,
                    generator=self.data_generator,
                    start_batch=self.batch_in_epoch,
                )
                for images, labels in batches:
                    record = self._train_step(images, labels)
                    self.step += 1
                    self.batch_in_epoch += 1
                    window["loss"] += record.loss * len(labels)
                    window["correct"] += round(record.accuracy * len(labels))
                    window["seen"] += len(labels)
                    progress.update(1)
                    progress.set_postfix(loss=f"{record.loss:.3f}", refresh=False)
                    if config.log_every and self.step % config.log_every == 0:
                        self._log_window(window, record)
                    finished = self.step >= self.total_steps
                    if self.batch_in_epoch == self.batches_per_epoch:
                        self.epoch += 1
                        self.batch_in_epoch = 0
                        self.epoch_data_state = self.data_generator.get_state()
                    if self.batch_in_epoch == 0 or (
                        config.checkpoint_every
                        and self.step % config.checkpoint_every == 0
                    ):
                        self.save()
                    if step_callback is not None:
                        step_callback(record)
                    if finished:
                        break
        finally:
            progress.close()
        if window["seen"]:
            self._log_window(window, record)
        if self.last_checkpoint_step != self.step:
            self.save()
        return self.metrics()

    def _train_step(self, images: torch.Tensor, labels: torch.Tensor) -> StepRecord:
        config = self.config
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        # One solver draw per batch: the attack and the update see the same solver.
        with self.regime.batch():
            if self.attack is not None:
                images = self.attack(self.predict, images, labels).detach()

            self.optimizer.zero_grad(set_to_none=True)
            with _autocast(self.device, self.amp):
                log_probs = self.predict(images)
                loss = F.nll_loss(log_probs.float(), labels)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scheduler is not None:
            self.scheduler.step()

        accuracy = (log_probs.argmax(dim=1) == labels).float().mean().item()
        return StepRecord(self.step + 1, self.epoch, loss.item(), accuracy, lr)

    def _log_window(self, window: dict, record: StepRecord) -> None:
        elapsed = time.perf_counter() - window["start"]
        entry = {
            "step": self.step,
            "epoch": self.step / self.batches_per_epoch,
            "loss": window["loss"] / window["seen"],
            "train_accuracy": window["correct"] / window["seen"],
            "lr": record.lr,
            "images_per_second": window["seen"] / elapsed if elapsed > 0 else None,
        }
        self.history.append(entry)
        logger.info(
            "step %d/%d (epoch %.2f): loss %.4f, train accuracy %.3f, lr %.3g, "
            "%.1f images/s",
            self.step,
            self.total_steps,
            entry["epoch"],
            entry["loss"],
            entry["train_accuracy"],
            entry["lr"],
            entry["images_per_second"] or 0.0,
        )
        window.update(loss=0.0, correct=0, seen=0, start=time.perf_counter())

    def metrics(self) -> dict:
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "epoch": self.epoch,
            "history": list(self.history),
        }

    def save(self) -> Path:
        """Write the checkpoint and metrics.json atomically."""
        payload = {
            "model": {"config": self.model.config, "state": self.model.state_dict()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "train_config": self.config.to_dict(),
            "solvers": [spec.to_dict() for spec in self.specs],
            "regime": _regime_config(self.regime),
            "progress": {
                "step": self.step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "epoch_data_state": self.epoch_data_state,
            },
            "rng": ckpt.capture_rng_state(
                {"data": self.data_generator, "noise": self.noise_generator}
            ),
            "metrics": self.metrics(),
        }
        path = ckpt.save_checkpoint(self.checkpoint_path, payload)
        self.last_checkpoint_step = self.step
        _write_json(self.out_dir / "metrics.json", self.metrics())
        logger.debug("saved checkpoint at step %d", self.step)
        return path

    def _restore(self, document: dict) -> None:
        path = self.checkpoint_path
        ckpt.check_model_config(document, self.model.config, path)
        ckpt.load_model_state(self.model, document, path)
        try:
            self.optimizer.load_state_dict(document["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(document["scheduler"])
            if self.scaler is not None and document.get("scaler"):
                self.scaler.load_state_dict(document["scaler"])
            progress = document["progress"]
            self.step = int(progress["step"])
            self.epoch = int(progress["epoch"])
            self.batch_in_epoch = int(progress["batch_in_epoch"])
            self.epoch_data_state = progress["epoch_data_state"]
            ckpt.restore_rng_state(
                document["rng"],
                {"data": self.data_generator, "noise": self.noise_generator},
            )
            self.history = list(document["metrics"]["history"])
            self.last_checkpoint_step = self.step
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ckpt.CheckpointError(
                f"checkpoint {path} cannot be resumed: {type(error).__name__}: {error}"
            ) from None
        logger.info("resumed %s at step %d of %d", path, self.step, self.total_steps)


def _merge_resumed_config(document: dict, requested: TrainConfig, path) -> TrainConfig:
    """Return the checkpoint's config with the runtime options of ``requested``.

    Raises CheckpointError if ``requested`` differs from the stored config in an
    option that changes the computation.
    """
    stored = document.get("train_config")
    if not isinstance(stored, dict):
        raise ckpt.CheckpointError(f"checkpoint {path} contains no training config")
    try:
        base = TrainConfig.from_dict(stored)
    except (TypeError, ValueError) as error:
        raise ckpt.CheckpointError(
            f"checkpoint {path} contains an unreadable training config: {error}"
        ) from None
    wanted = requested.to_dict()
    differences = [
        f"{key}: checkpoint {value!r}, requested {wanted[key]!r}"
        for key, value in base.to_dict().items()
        if key not in RUNTIME_OPTIONS and wanted[key] != value
    ]
    if differences:
        raise ckpt.CheckpointError(
            f"cannot resume {path} with different options ({'; '.join(differences)}); "
            f"drop those options or start a new run in another --out folder"
        )
    runtime = {key: wanted[key] for key in RUNTIME_OPTIONS}
    return dataclasses.replace(base, **runtime)


def _regime_config(regime) -> dict:
    config = regime.config() if hasattr(regime, "config") else {}
    return json.loads(json.dumps(config, default=str))


def _build_optimizer(config: TrainConfig, parameters):
    lr = config.base_lr if config.schedule == "one-cycle" else config.lr
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=config.weight_decay)
    return torch.optim.RMSprop(
        parameters, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


class OneCycle:
    """Learning-rate factor of one triangular cycle over ``total_steps`` batches.

    Batch k of T trains at base + (peak - base) * (1 - |2k / (T - 1) - 1|): base_lr
    at the first and last batch, peak_lr in the middle (exactly when T is odd). The
    optimizer's initial rate is base_lr, so the factor is that rate over base_lr.
    A callable object and not a closure, so that LambdaLR saves its fields.
    """

    def __init__(self, total_steps: int, base_lr: float, peak_lr: float) -> None:
        self.total_steps = total_steps
        self.base_lr = base_lr
        self.peak_lr = peak_lr

    def __call__(self, step: int) -> float:
        if self.total_steps <= 1:
            return self.peak_lr / self.base_lr
        position = min(step, self.total_steps - 1) / (self.total_steps - 1)
        height = 1.0 - abs(2.0 * position - 1.0)
        return (self.base_lr + (self.peak_lr - self.base_lr) * height) / self.base_lr


def _build_scheduler(config: TrainConfig, optimizer, total_steps: int):
    if config.schedule == "constant":
        return None
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, OneCycle(total_steps, config.base_lr, config.peak_lr)
    )


def _amp_enabled(requested: bool, device: torch.device) -> bool:
    if not requested:
        return False
    if device.type == "cuda":
        return True
    warnings.warn(
        f"--amp needs a CUDA device for float16 autocast; training on {device} "
        f"runs in float32",
        stacklevel=3,
    )
    logger.warning("mixed precision is off: device %s has no float16 autocast", device)
    return False


def _autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    # NOTE: not run here (no CUDA on the build machines); the solvers integrate in
    # the dtype autocast gives the ODE block's input.
    return torch.autocast(device_type=device.type, dtype=torch.float16)


def _write_json(path: Path, data) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(temporary, path)
