"""Clean, FGSM and PGD accuracy of a model under evaluation regimes and step counts.

For every regime and every test-time step count, the solvers are rebuilt with that
number of steps, and the model is attacked through the regime itself: model
ensembling is attacked through its averaged probabilities, solver ensembling through
its averaged ODE block outputs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from metanode.data import iterate_batches
from metanode.solvers import SolverSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttackSettings:
    """Attack strengths in pixel units; images lie in [0, 1]."""

    fgsm_eps: float = 0.1
    pgd_eps: float = 0.1
    pgd_alpha: float = 0.025
    pgd_steps: int = 7

    def __post_init__(self) -> None:
        # The same ranges as metanode.attacks checks when an attack runs.
        for name in ("fgsm_eps", "pgd_eps", "pgd_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"`{name}` must be a number in (0, 1], got {value!r}")
            if not (math.isfinite(value) and 0 < value <= 1):
                raise ValueError(
                    f"`{name}` must be in (0, 1] because pixels lie in [0, 1], "
                    f"got {value!r}"
                )
        steps = self.pgd_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"`pgd_steps` must be an integer >= 1, got {steps!r}")


@dataclass(frozen=True)
class RegimeRequest:
    """One evaluation regime: its name, solvers and options (weights)."""

    name: str
    specs: tuple[SolverSpec, ...]
    weights: tuple[float, ...] | None = None

    def label(self) -> str:
        return f"{self.name} {' | '.join(str(spec) for spec in self.specs)}"


def with_steps(spec: SolverSpec, steps: int | None) -> SolverSpec:
    """Return ``spec`` on a grid of ``steps`` steps (unchanged when None)."""
    if steps is None:
        return spec
    return dataclasses.replace(spec, steps=steps, step_size=None)


def expand_requests(
    regimes: list[str], specs: list[SolverSpec], weights=None
) -> list[RegimeRequest]:
    """Turn regime names and one solver list into evaluation requests.

    Standalone and smoothing take one solver, so they give one request per solver.
    Switching and the ensembles take the whole list (with ``weights``).
    """
    from metanode.regimes import REGIME_NAMES

    requests = []
    for name in regimes:
        if name not in REGIME_NAMES:
            raise ValueError(
                f"unknown regime {name!r}; expected one of: {', '.join(REGIME_NAMES)}"
            )
        if name in ("standalone", "smoothing"):
            requests.extend(RegimeRequest(name, (spec,)) for spec in specs)
        else:
            option = tuple(weights) if weights is not None else None
            requests.append(RegimeRequest(name, tuple(specs), option))
    return requests


def build_eval_regime(request: RegimeRequest, steps: int | None, generator=None):
    """Build the regime of ``request`` with its solvers on ``steps`` steps."""
    from metanode.training import build_regime_from_options

    specs = [with_steps(spec, steps) for spec in request.specs]
    weights = list(request.weights) if request.weights is not None else None
    return build_regime_from_options(
        request.name,
        specs,
        switching_probs=weights,
        ensemble_weights=weights,
        generator=generator,
    )


def accuracy_under_attacks(
    predict,
    dataset,
    attacks: AttackSettings,
    *,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    description: str = "evaluate",
) -> dict:
    """Return clean, FGSM and PGD accuracy of ``predict`` on ``dataset``.

    ``predict(x)`` returns log-probabilities. PGD starts from a uniform random point
    in the eps-ball drawn from ``generator``.
    """
    from metanode.attacks import fgsm, pgd

    correct = {"clean": 0, "fgsm": 0, "pgd": 0}
    count = 0
    start = time.perf_counter()
    batches = iterate_batches(dataset, batch_size)
    total = -(-len(dataset) // batch_size)
    for images, labels in tqdm(
        batches, total=total, desc=description, unit="batch", disable=None, leave=False
    ):
        images, labels = images.to(device), labels.to(device)
        with torch.no_grad():
            correct["clean"] += _count_correct(predict(images), labels)
        adversarial = fgsm(predict, images, labels, attacks.fgsm_eps)
        with torch.no_grad():
            correct["fgsm"] += _count_correct(predict(adversarial), labels)
        adversarial = pgd(
            predict,
            images,
            labels,
            attacks.pgd_eps,
            attacks.pgd_alpha,
            attacks.pgd_steps,
            random_start=True,
            generator=generator,
        )
        with torch.no_grad():
            correct["pgd"] += _count_correct(predict(adversarial), labels)
        count += len(labels)
    seconds = time.perf_counter() - start
    result = {name: value / count for name, value in correct.items()}
    result.update(images=count, seconds=seconds)
    return result


def _count_correct(log_probs: torch.Tensor, labels: torch.Tensor) -> int:
    return int((log_probs.argmax(dim=1) == labels).sum())


def evaluate(
    model: torch.nn.Module,
    dataset,
    requests: list[RegimeRequest],
    steps_list: list[int | None],
    attacks: AttackSettings,
    *,
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> list[dict]:
    """Evaluate every request at every step count and return one row per pair.

    Each row contains ``regime``, ``solvers``, ``steps``, ``step_size``, ``clean``,
    ``fgsm``, ``pgd``, ``images`` and ``seconds``. ``steps`` or ``step_size`` is
    the grid all solvers of the row share, and both are None when they differ.
    The model is put in eval mode and its former mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    rows = []
    try:
        for request in requests:
            for steps in steps_list:
                # A fresh generator per row makes each row reproducible on its own.
                generator = torch.Generator().manual_seed(seed)
                regime = build_eval_regime(request, steps, generator)
                result = accuracy_under_attacks(
                    lambda x, regime=regime: regime(model, x),
                    dataset,
                    attacks,
                    batch_size=batch_size,
                    generator=generator,
                    device=device,
                    description=f"{request.name} steps={steps}",
                )
                grid_steps, step_size = _grid_of(request, steps)
                row = {
                    "regime": request.name,
                    "solvers": [str(spec) for spec in request.specs],
                    "steps": grid_steps,
                    "step_size": step_size,
                    **result,
                }
                logger.info(
                    "%s: clean %.4f, FGSM %.4f, PGD %.4f (%d images, %.1f s)",
                    regime.describe(),
                    row["clean"],
                    row["fgsm"],
                    row["pgd"],
                    row["images"],
                    row["seconds"],
                )
                rows.append(row)
    finally:
        model.train(was_training)
    return rows


def _grid_of(request: RegimeRequest, steps: int | None):
    """Return the (steps, step_size) that all solvers of the row share.

    Both are None when the solvers use different grids, so each keeps its own.
    """
    if steps is not None:
        return steps, None
    grids = {(spec.steps, spec.step_size) for spec in request.specs}
    return grids.pop() if len(grids) == 1 else (None, None)


def format_table(rows: list[dict]) -> str:
    """Format evaluation rows as a Markdown table."""
    header = "| regime | solvers | steps | clean | FGSM | PGD |"
    lines = [header, "| --- | --- | ---: | ---: | ---: | ---: |"]
    for row in rows:
        if row["steps"] is not None:
            grid = str(row["steps"])
        elif row.get("step_size") is not None:
            grid = f"h={row['step_size']!r}"
        else:
            grid = "per solver"
        # Without a shared grid, each solver keeps its own grid in the solvers
        # column.
        shorten = _short_spec if grid != "per solver" else str
        solvers = "; ".join(shorten(text) for text in row["solvers"])
        lines.append(
            f"| {row['regime']} | {solvers} | {grid} | {row['clean']:.4f} | "
            f"{row['fgsm']:.4f} | {row['pgd']:.4f} |"
        )
    return "\n".join(lines)


def _short_spec(text: str) -> str:
    """Drop the grid from a spec string, since the table has its own steps column."""
    family, _, options = text.partition(":")
    kept = [
        item
        for item in options.split(",")
        if item and not item.startswith(("steps=", "step_size="))
    ]
    return f"{family}:{','.join(kept)}" if kept else family
