"""The ``metanode`` command: ``train``, ``evaluate`` and ``solvers``.

Invalid input of any kind ends with one ``metanode: error: ...`` line on stderr and
exit code 2; an interrupted run exits with 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from fractions import Fraction
from pathlib import Path

from metanode.checkpoint import CheckpointError
from metanode.data import DATASETS, DatasetNotFoundError

logger = logging.getLogger("metanode")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, with exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _float_list(text: str) -> list[float]:
    try:
        return [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid list {text!r}: expected numbers separated by commas, "
            f"for example 0.25,0.5,0.25"
        ) from None


def _int_list(text: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        values = []
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(
            f"invalid step counts {text!r}: expected positive integers separated "
            f"by commas, for example 2,4,8"
        )
    return values


def _name_list(text: str) -> list[str]:
    names = [item.strip() for item in text.split(",") if item.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"invalid list {text!r}: no names given")
    return names


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads (default: all cores)",
    )
    parser.add_argument(
        "--device", help="torch device, for example cpu or cuda (default: cpu)"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level (default: INFO)",
    )


def _add_train_parser(commands) -> None:
    from metanode.training import TrainConfig

    defaults = TrainConfig()
    # Options left out stay out of the namespace, so that a resumed run can tell
    # which options the command line sets.
    train = commands.add_parser(
        "train",
        help="train a model",
        description="Train a neural ODE, optionally with adversarial training.",
        argument_default=argparse.SUPPRESS,
    )
    train.add_argument(
        "--out", required=True, help="folder for checkpoint.pt and metrics.json"
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint",
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run even if --out contains a checkpoint; the old "
        "run's checkpoint, config, metrics, evaluation, log and plot files are "
        "removed first",
    )

    data = train.add_argument_group("data")
    data.add_argument(
        "--dataset",
        help=f"one of {', '.join(DATASETS)} (default: {defaults.dataset})",
    )
    data.add_argument(
        "--data-root",
        help="folder with the dataset (default: Debian location for "
        "Fashion-MNIST, else the user cache)",
    )
    data.add_argument(
        "--download", action="store_true", help="download a missing dataset"
    )
    data.add_argument(
        "--train-limit",
        type=int,
        help="train on the first N training images only (default: all)",
    )
    data.add_argument("--batch-size", type=int, help=f"default: {defaults.batch_size}")

    model = train.add_argument_group("model")
    model.add_argument(
        "--model", help=f"odenet, resnet, metanode4.. (default: {defaults.model})"
    )
    model.add_argument("--width", type=int, help=f"default: {defaults.width}")
    model.add_argument("--ode-blocks", type=int, help=f"default: {defaults.ode_blocks}")
    model.add_argument("--norm", help="batch, group, layer, instance or none")
    model.add_argument("--weight-norm", help="weight, spectral or none")
    model.add_argument("--activation", help="for example relu or gelu")

    regime = train.add_argument_group("solvers and regime")
    regime.add_argument(
        "--train-solvers",
        help="solver specs separated by ';', for example 'rk2:u=0.5,steps=8' "
        f"(default: {defaults.train_solvers})",
    )
    regime.add_argument(
        "--train-regime",
        help="standalone, switching, smoothing, solver-ensemble or "
        f"model-ensemble (default: {defaults.train_regime})",
    )
    regime.add_argument(
        "--switching-probs",
        type=_float_list,
        help="probabilities of the switching solvers, comma-separated",
    )
    regime.add_argument(
        "--smoothing-distribution",
        help=f"normal or cauchy (default: {defaults.smoothing_distribution})",
    )
    regime.add_argument(
        "--smoothing-scale",
        type=float,
        help=f"scale of the parameter draws (default: {defaults.smoothing_scale})",
    )
    regime.add_argument(
        "--smoothing-prob",
        type=float,
        help="probability that a batch uses a drawn solver "
        f"(default: {defaults.smoothing_prob})",
    )
    regime.add_argument(
        "--ensemble-weights",
        type=_float_list,
        help="weights of the ensemble solvers, comma-separated, summing to 1",
    )

    adversarial = train.add_argument_group("adversarial training")
    adversarial.add_argument(
        "--adversarial",
        help=f"clean, fgsm, fgsm-random or pgd (default: {defaults.adversarial})",
    )
    adversarial.add_argument(
        "--eps",
        type=float,
        help=f"L-inf radius in pixel units (default: {defaults.eps})",
    )
    adversarial.add_argument(
        "--alpha",
        type=float,
        help="attack step in pixel units (default: 1.25 eps for fgsm-random, "
        "2.5 eps / steps for pgd)",
    )
    adversarial.add_argument(
        "--attack-steps", type=int, help="PGD iterations (default: 7)"
    )

    optimization = train.add_argument_group("optimization")
    optimization.add_argument(
        "--optimizer", help=f"sgd, adam or rmsprop (default: {defaults.optimizer})"
    )
    optimization.add_argument(
        "--lr",
        type=float,
        help=f"learning rate of the constant schedule (default: {defaults.lr})",
    )
    optimization.add_argument(
        "--momentum",
        type=float,
        help=f"for sgd and rmsprop (default: {defaults.momentum})",
    )
    optimization.add_argument(
        "--weight-decay", type=float, help=f"default: {defaults.weight_decay}"
    )
    optimization.add_argument(
        "--schedule",
        help="constant, or one-cycle: linear from --base-lr up to --max-lr over "
        "half the steps and back, stepped per batch "
        f"(default: {defaults.schedule})",
    )
    optimization.add_argument(
        "--base-lr",
        type=float,
        help=f"one-cycle start and end (default: {defaults.base_lr})",
    )
    optimization.add_argument(
        "--max-lr", type=float, help="one-cycle peak (default: --lr)"
    )
    optimization.add_argument(
        "--grad-clip", type=float, help="clip the gradient norm to this value"
    )
    optimization.add_argument(
        "--amp",
        action="store_true",
        help="float16 mixed precision through torch.amp (CUDA only)",
    )

    length = train.add_argument_group("length and output")
    length.add_argument("--epochs", type=int, help=f"default: {defaults.epochs}")
    length.add_argument(
        "--max-steps",
        type=int,
        help="train for this many batches instead of --epochs",
    )
    length.add_argument("--seed", type=int, help=f"default: {defaults.seed}")
    length.add_argument(
        "--log-every",
        type=int,
        help=f"log every N batches, 0 for never (default: {defaults.log_every})",
    )
    length.add_argument(
        "--checkpoint-every",
        type=int,
        help="also checkpoint every N batches; checkpoints are always written "
        "at epoch ends and at the end",
    )
    _add_common(train)
    train.set_defaults(handler=_run_train)


def _add_evaluate_parser(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="measure clean, FGSM and PGD accuracy of a checkpoint",
        description="Measure clean, FGSM and PGD accuracy on the test set for a "
        "list of evaluation regimes and test-time step counts.",
    )
    evaluate.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint file, or a run folder holding checkpoint.pt",
    )
    evaluate.add_argument(
        "--regimes",
        type=_name_list,
        default=["standalone"],
        help="comma-separated regimes; standalone gives one row per solver "
        "(default: standalone)",
    )
    evaluate.add_argument(
        "--solvers",
        help="solver specs separated by ';' (default: the training solvers)",
    )
    evaluate.add_argument(
        "--ensemble-weights",
        type=_float_list,
        help="weights of the ensemble solvers, comma-separated, summing to 1",
    )
    evaluate.add_argument(
        "--steps",
        type=_int_list,
        help="test-time step counts, comma-separated (default: the solvers' own)",
    )
    evaluate.add_argument(
        "--fgsm-eps", type=float, default=0.1, help="default: 0.1 (pixel units)"
    )
    evaluate.add_argument("--pgd-eps", type=float, default=0.1, help="default: 0.1")
    evaluate.add_argument(
        "--pgd-alpha", type=float, default=0.025, help="PGD step (default: 0.025)"
    )
    evaluate.add_argument(
        "--pgd-steps", type=int, default=7, help="PGD iterations (default: 7)"
    )
    evaluate.add_argument(
        "--limit", type=int, help="evaluate the first N test images (default: all)"
    )
    evaluate.add_argument("--batch-size", type=int, default=256, help="default: 256")
    evaluate.add_argument(
        "--data-root", help="dataset folder (default: the training run's)"
    )
    evaluate.add_argument(
        "--download", action="store_true", help="download a missing dataset"
    )
    evaluate.add_argument(
        "--seed", type=int, default=0, help="seed of the PGD random starts"
    )
    evaluate.add_argument(
        "--json",
        help="write the results here (default: evaluation.json beside the checkpoint)",
    )
    evaluate.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing results file (never a checkpoint)",
    )
    _add_common(evaluate)
    evaluate.set_defaults(handler=_run_evaluate)


def _add_solvers_parser(commands) -> None:
    solvers = commands.add_parser(
        "solvers",
        help="list the solver families and their parameters",
        description="List the Runge-Kutta families with their parameters, "
        "defaults, admissible domain and singular set.",
    )
    solvers.add_argument("--json", action="store_true", help="print JSON instead")
    solvers.add_argument(
        "--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING")
    )
    solvers.set_defaults(handler=_run_solvers)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="metanode",
        description="Train and attack neural ODEs with Runge-Kutta solver families.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    _add_train_parser(commands)
    _add_evaluate_parser(commands)
    _add_solvers_parser(commands)
    return parser


_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format=_LOG_FORMAT,
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    logging.captureWarnings(True)


class _RecordBuffer(logging.Handler):
    """A log handler that stores records until the run's log file is open."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _add_log_file(path: Path, earlier: list[logging.LogRecord]) -> logging.Handler:
    """Log to ``path`` too, starting with the ``earlier`` records; return the
    handler."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    for record in earlier:
        handler.handle(record)
    logging.getLogger().addHandler(handler)
    return handler


def _first_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _check_output_folder(option: str, path: Path) -> None:
    """Raise ``ValueError`` unless ``path`` is a folder or can be created as one."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder; choose a folder")
    _check_creatable(option, path, path)


def _check_output_file(option: str, path: Path) -> None:
    """Raise ``ValueError`` unless ``path`` is a file path that can be written."""
    if path.is_dir():
        raise ValueError(
            f"{option} {path} is a folder; give a file path such as "
            f"{path / 'results.json'}"
        )
    _check_creatable(option, path, path.parent)


def _check_creatable(option: str, path: Path, folder: Path) -> None:
    """Raise ``ValueError`` unless ``folder`` exists or can be created, and is
    writable; messages name ``option`` and its value ``path``."""
    existing = _first_existing(folder)
    if existing.exists() and not existing.is_dir():
        raise ValueError(
            f"{option} {path}: {existing} is a file, so no folder can be created "
            f"below it; choose another path"
        )
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"{option} {path}: the folder {existing} is not writable; choose "
            f"another path"
        )


def _parse_specs(option: str, text: str):
    """Parse solver specs; an arithmetic failure in the parser (an overflow, a
    division by zero) becomes a ``ValueError`` naming the option."""
    from metanode.solvers import parse_solver_specs

    try:
        return parse_solver_specs(text)
    except ArithmeticError as error:
        raise ValueError(
            f"invalid solver specs {text!r} in {option}: "
            f"{type(error).__name__}: {error}; use finite decimals or fractions"
        ) from None


_TRAIN_CONTROL = {"out", "resume", "overwrite", "log_level", "handler", "command"}


def _run_train(args: argparse.Namespace) -> int:
    from metanode import checkpoint
    from metanode.training import LOG_FILE, TrainConfig, Trainer, configure_threads

    given = {k: v for k, v in vars(args).items() if k not in _TRAIN_CONTROL}
    out = Path(args.out)
    resume = getattr(args, "resume", False)
    overwrite = getattr(args, "overwrite", False)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other; pick one")
    _check_output_folder("--out", out)
    if "train_solvers" in given:
        _parse_specs("--train-solvers", given["train_solvers"])
    if resume:
        document = checkpoint.load_checkpoint(out / checkpoint.CHECKPOINT_NAME)
        stored = document.get("train_config")
        if not isinstance(stored, dict):
            raise CheckpointError(
                f"{out} contains a checkpoint without a training config"
            )
        base = TrainConfig.from_dict(stored)
    else:
        base = TrainConfig()
    config = dataclasses.replace(base, **given)
    config.validate()
    config.check_options_used(given)

    # Every option is valid, so logging starts. The records of the setup wait in
    # a buffer until the run folder is ready, so that train.log contains them too.
    _configure_logging(args.log_level)
    buffer = _RecordBuffer()
    root = logging.getLogger()
    root.addHandler(buffer)
    try:
        trainer = Trainer(config, out, resume=resume, overwrite=overwrite)
    finally:
        root.removeHandler(buffer)
    if trainer.complete:
        print(
            f"the run in {out} is already complete at step {trainer.step} of "
            f"{trainer.total_steps}; nothing to train, no file changed"
        )
        return 0
    log_file = _add_log_file(out / LOG_FILE, buffer.records)
    try:
        configure_threads(config.threads)
        return _train(trainer, out)
    finally:
        # In-process callers (tests, notebooks) keep no handle on this run's log.
        logging.getLogger().removeHandler(log_file)
        log_file.close()


def _train(trainer, out: Path) -> int:
    try:
        metrics = trainer.run()
    except KeyboardInterrupt:
        logger.warning(
            "interrupted at step %d; the last checkpoint in %s is at step %s, "
            "continue with: metanode train --out %s --resume",
            trainer.step,
            out,
            trainer.last_checkpoint_step,
            out,
        )
        return EXIT_INTERRUPTED
    last = metrics["history"][-1] if metrics["history"] else {}
    print(
        f"trained {metrics['step']} steps; checkpoint {trainer.checkpoint_path}"
        + (f"; last loss {last['loss']:.4f}" if last else "")
    )
    return 0


# Regimes of ``evaluate`` that read --ensemble-weights (switching as its
# probabilities).
_WEIGHTED_REGIMES = ("switching", "solver-ensemble", "model-ensemble")


def _run_evaluate(args: argparse.Namespace) -> int:
    from metanode import checkpoint
    from metanode.data import load_dataset
    from metanode.evaluation import (
        AttackSettings,
        build_eval_regime,
        evaluate,
        expand_requests,
        format_table,
    )
    from metanode.models import build_model
    from metanode.solvers import SolverSpec
    from metanode.training import EVALUATION_FILE, check_device, configure_threads

    # Every option is checked before anything is loaded or logged.
    for option, value in (
        ("--threads", args.threads),
        ("--limit", args.limit),
        ("--batch-size", args.batch_size),
    ):
        if value is not None and value < 1:
            raise ValueError(f"{option} must be at least 1, got {value}")
    device = check_device(args.device or "cpu")
    attacks = AttackSettings(
        args.fgsm_eps, args.pgd_eps, args.pgd_alpha, args.pgd_steps
    )
    if args.ensemble_weights is not None and not set(args.regimes) & set(
        _WEIGHTED_REGIMES
    ):
        raise ValueError(
            f"--ensemble-weights is used only with --regimes "
            f"{', '.join(_WEIGHTED_REGIMES)}, but --regimes is "
            f"{','.join(args.regimes)}; drop --ensemble-weights or add one of "
            f"those regimes"
        )
    specs = _parse_specs("--solvers", args.solvers) if args.solvers else None
    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / checkpoint.CHECKPOINT_NAME
    if args.json:
        json_option, json_path = "--json", Path(args.json)
    else:
        json_option, json_path = "results file", path.parent / EVALUATION_FILE
    _check_results_path(json_option, json_path, path, args.overwrite)

    _configure_logging(args.log_level)
    document = checkpoint.load_checkpoint(path)
    if specs is None:
        try:
            specs = [SolverSpec.from_dict(d) for d in document["solvers"]]
        except (KeyError, TypeError) as error:
            raise CheckpointError(f"{path} contains no solver list ({error})") from None
    requests = expand_requests(args.regimes, specs, args.ensemble_weights)
    # Build every regime once up front, so that bad weights or specs fail before
    # the data is loaded.
    for request in requests:
        for steps in args.steps or [None]:
            build_eval_regime(request, steps)

    model_config = dict(document["model"]["config"])
    try:
        model = build_model(**model_config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"{path} contains a model config that cannot be built: {error}"
        ) from None
    checkpoint.load_model_state(model, document, path)
    train_config = document.get("train_config") or {}
    dataset_name = train_config.get("dataset", "fashion-mnist")
    data_root = args.data_root or train_config.get("data_root")

    model.to(device)
    test_set = load_dataset(
        dataset_name, "test", root=data_root, download=args.download, limit=args.limit
    )
    threads = configure_threads(args.threads)
    rows = evaluate(
        model,
        test_set,
        requests,
        args.steps or [None],
        attacks,
        batch_size=args.batch_size,
        seed=args.seed,
        device=device,
    )
    results = {
        "checkpoint": str(path),
        "dataset": dataset_name,
        "images": len(test_set),
        "attacks": dataclasses.asdict(attacks),
        "threads": threads,
        "rows": rows,
    }
    _write_json_atomically(json_path, results)
    print(format_table(rows))
    print(f"results written to {json_path}")
    return 0


# File name endings of torch checkpoints, which the results never replace.
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def _check_results_path(
    option: str, json_path: Path, checkpoint_path: Path, overwrite: bool
) -> None:
    """Raise ``ValueError`` unless the results may be written to ``json_path``."""
    _check_output_file(option, json_path)
    if not json_path.exists():
        return
    is_checkpoint = json_path.suffix in _CHECKPOINT_SUFFIXES or (
        checkpoint_path.exists() and json_path.samefile(checkpoint_path)
    )
    if is_checkpoint:
        raise ValueError(
            f"{option} {json_path} is a checkpoint, and results never replace a "
            f"checkpoint; choose another --json path"
        )
    if not overwrite:
        raise ValueError(
            f"{option} {json_path} already exists; pass --overwrite to replace it "
            f"or choose another --json path"
        )


def _write_json_atomically(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temporary, path)


def describe_families() -> list[dict]:
    """Return one JSON-able record per solver family."""
    from metanode.solvers import FAMILIES

    records = []
    for name, family in FAMILIES.items():
        records.append(
            {
                "family": name,
                "title": family.title,
                "stages": family.stages,
                "order": family.order,
                "parameters": list(family.parameter_names),
                "roles": dict(family.parameter_roles),
                "defaults": dict(family.defaults),
                "domain": {k: list(v) for k, v in family.domain.items()},
                "singular_set": family.singular_description,
            }
        )
    return records


def _exact_number(value: float) -> str:
    """Write ``value`` so that the solver-spec parser reads back the same float.

    A fraction such as 1/3 or -5/126 is used when it is exact and shorter than the
    shortest round-tripping decimal (``repr``), for example 0.5 but 1/3.
    """
    decimal = repr(float(value))
    if decimal.endswith(".0"):
        decimal = decimal[:-2]
    fraction = Fraction(value).limit_denominator(1000)
    if float(fraction) == value and len(str(fraction)) < len(decimal):
        return str(fraction)
    return decimal


def _run_solvers(args: argparse.Namespace) -> int:
    _configure_logging(args.log_level)
    records = describe_families()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    for record in records:
        print(
            f"{record['family']}: {record['title']} ({record['stages']} stages, "
            f"order {record['order']})"
        )
        for name in record["parameters"]:
            low, high = record["domain"][name]
            role = record["roles"].get(name, "")
            print(
                f"  {name}"
                + (f" ({role})" if role else "")
                + f": default {_exact_number(record['defaults'][name])}, "
                f"domain [{_exact_number(low)}, {_exact_number(high)}]"
            )
        print(f"  singular set: {record['singular_set']}")
        example = ",".join(
            f"{name}={_exact_number(record['defaults'][name])}"
            for name in record["parameters"]
        )
        print(f"  example: {record['family']}:{example},steps=8")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (
        ValueError,
        CheckpointError,
        DatasetNotFoundError,
        FileExistsError,
    ) as error:
        message = " ".join(str(error).split())
        print(f"metanode: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("metanode: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
