"""PNG figures of evaluation results (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

ATTACK_COLUMNS = (("clean", "clean"), ("fgsm", "FGSM"), ("pgd", "PGD"))


def _row_label(row: dict) -> str:
    if row["regime"] == "standalone":
        return f"standalone\n{row['solvers'][0].split(',')[0]}"
    return row["regime"]


def plot_demo_results(
    regime_rows: list[dict],
    step_rows: list[dict],
    history: list[dict],
    path: str | Path,
    title: str,
) -> Path:
    """Draw accuracy per regime, accuracy against test-time steps, and the
    training loss, side by side, into ``path``."""
    figure, (bars, steps, loss) = plt.subplots(
        1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [2.2, 1, 1]}
    )

    width = 0.8 / len(ATTACK_COLUMNS)
    positions = range(len(regime_rows))
    for offset, (key, name) in enumerate(ATTACK_COLUMNS):
        values = [row[key] for row in regime_rows]
        shifted = [p + (offset - 1) * width for p in positions]
        drawn = bars.bar(shifted, values, width, label=name)
        bars.bar_label(drawn, fmt="%.2f", fontsize=7, padding=1)
    bars.set_xticks(list(positions), [_row_label(r) for r in regime_rows], fontsize=8)
    bars.set_ylim(0, 1)
    bars.set_ylabel("test accuracy")
    bars.set_title(f"by regime at {regime_rows[0]['steps']} steps")
    bars.legend(loc="upper right", fontsize=8)

    counts = [row["steps"] for row in step_rows]
    for key, name in ATTACK_COLUMNS:
        steps.plot(counts, [row[key] for row in step_rows], marker="o", label=name)
    steps.set_xscale("log", base=2)
    steps.set_xticks(counts, [str(c) for c in counts])
    steps.set_ylim(0, 1)
    steps.set_xlabel("test-time steps")
    steps.set_title(f"standalone {step_rows[0]['solvers'][0].split(',')[0]}")
    steps.legend(fontsize=8)

    loss.plot([e["epoch"] for e in history], [e["loss"] for e in history])
    loss.set_xlabel("epoch")
    loss.set_ylabel("adversarial training loss")
    loss.set_title("training")

    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
