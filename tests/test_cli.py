"""The metanode command: outputs, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import require_fashion_mnist

from metanode.cli import main

TINY = [
    "--width", "4",
    "--train-limit", "128",
    "--batch-size", "64",
    "--max-steps", "2",
    "--train-solvers", "rk2:u=0.5,steps=2",
    "--threads", "1",
    "--log-every", "0",
]  # fmt: skip


@pytest.fixture(autouse=True)
def restore_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder holding a two-step checkpoint of a tiny ODE-Net."""
    require_fashion_mnist()
    folder = tmp_path_factory.mktemp("run")
    assert main(["train", "--out", str(folder), *TINY]) == 0
    return folder


def _exit_code(argv: list[str]) -> int:
    """Run the command; argparse reports malformed values by raising SystemExit."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def _single_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_solvers_lists_families(capsys):
    assert main(["solvers"]) == 0
    out = capsys.readouterr().out
    assert "rk2: general two-stage, order 2" in out
    assert "u (c2): default 0.5" in out
    assert "singular set: u = 0" in out


def test_solvers_json(capsys):
    assert main(["solvers", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    rk2 = next(r for r in records if r["family"] == "rk2")
    assert rk2["parameters"] == ["u"]
    assert rk2["defaults"] == {"u": 0.5}
    assert rk2["order"] == 2


def test_train_writes_run_folder(run_folder):
    names = {path.name for path in run_folder.iterdir()}
    assert {"checkpoint.pt", "config.json", "metrics.json", "train.log"} <= names
    metrics = json.loads((run_folder / "metrics.json").read_text())
    assert metrics["step"] == 2


def test_evaluate_prints_table_and_json(run_folder, tmp_path, capsys):
    output = tmp_path / "results.json"
    code = main(
        [
            "evaluate",
            "--checkpoint", str(run_folder),
            "--regimes", "standalone,model-ensemble",
            "--solvers", "rk2:u=0.5,steps=2;rk2:u=1,steps=2",
            "--steps", "1,2",
            "--limit", "64",
            "--threads", "1",
            "--json", str(output),
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "| regime | solvers | steps | clean | FGSM | PGD |" in out
    results = json.loads(output.read_text())
    # Two standalone rows (one per solver) and one ensemble row, each at 1 and 2
    # steps.
    assert len(results["rows"]) == 6
    assert [row["steps"] for row in results["rows"]] == [1, 2, 1, 2, 1, 2]
    for row in results["rows"]:
        assert row["images"] == 64
        assert 0.0 <= row["pgd"] <= 1.0


def test_resume_continues_run(run_folder, tmp_path, capsys):
    folder = tmp_path / "run"
    assert main(["train", "--out", str(folder), *TINY]) == 0
    assert main(["train", "--out", str(folder), "--resume", "--threads", "1"]) == 0
    assert "trained 2 steps" in capsys.readouterr().out


TRAIN_ERRORS = [
    (["--model", "vgg11"], "unknown model 'vgg11'"),
    (["--train-regime", "voting"], "unknown regime 'voting'"),
    (["--adversarial", "deepfool"], "unknown adversarial 'deepfool'"),
    (["--train-solvers", "rk2:u=0.5;steps=4"], "invalid solver spec"),
    (["--train-solvers", "rk2:u=abc,steps=4"], "is not a number"),
    (["--train-solvers", "rk7:u=0.5,steps=4"], "unknown family 'rk7'"),
    (["--train-solvers", "rk2:u=0,steps=4"], "singular set"),
    (["--train-solvers", "rk3:u=0.5,v=0.5,steps=4"], "singular set"),
    (
        [
            "--train-regime", "solver-ensemble",
            "--train-solvers", "rk2:u=0.5,steps=2;rk2:u=1,steps=2",
            "--ensemble-weights", "0.6,0.6",
        ],
        "sum to",
    ),
    (
        [
            "--train-regime", "model-ensemble",
            "--train-solvers", "rk2:u=0.5,steps=2;rk2:u=1,steps=2",
            "--ensemble-weights", "0.2,0.3,0.5",
        ],
        "3 values",
    ),
    (["--lr", "-0.1"], "`lr` must be a positive"),
    (["--epochs", "two"], "invalid int value"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
]  # fmt: skip


@pytest.mark.parametrize(("arguments", "message"), TRAIN_ERRORS)
def test_train_bad_input_exits_2(tmp_path, capsys, arguments, message):
    code = _exit_code(["train", "--out", str(tmp_path / "run"), *TINY, *arguments])
    assert code == 2
    assert message in _single_error_line(capsys)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_existing_run_not_overwritten(run_folder, capsys):
    saved = (run_folder / "checkpoint.pt").read_bytes()
    assert main(["train", "--out", str(run_folder), *TINY]) == 2
    assert "already holds a checkpoint" in _single_error_line(capsys)
    assert (run_folder / "checkpoint.pt").read_bytes() == saved


def test_resume_other_model_exits_2(run_folder, capsys):
    saved = (run_folder / "checkpoint.pt").read_bytes()
    code = main(["train", "--out", str(run_folder), "--resume", "--width", "8"])
    assert code == 2
    assert "width: checkpoint 4, requested 8" in _single_error_line(capsys)
    assert (run_folder / "checkpoint.pt").read_bytes() == saved


def test_evaluate_corrupt_checkpoint_exits_2(tmp_path, capsys):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"PK\x03\x04 truncated")
    assert main(["evaluate", "--checkpoint", str(path)]) == 2
    assert "corrupt" in _single_error_line(capsys)


def test_evaluate_mismatched_weights_exits_2(run_folder, tmp_path, capsys):
    document = torch.load(run_folder / "checkpoint.pt", weights_only=True)
    document["model"]["config"]["width"] = 8
    torch.save(document, tmp_path / "checkpoint.pt")
    assert main(["evaluate", "--checkpoint", str(tmp_path)]) == 2
    assert "does not fit the model" in _single_error_line(capsys)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--regimes", "voting"], "unknown regime 'voting'"),
        (["--solvers", "rk2:steps=2,u=1/0"], "is not a number"),
        (["--steps", "0,2"], "invalid step counts"),
        (["--pgd-steps", "0"], "`pgd_steps` must be"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_evaluate_bad_input_exits_2(run_folder, capsys, arguments, message):
    code = _exit_code(["evaluate", "--checkpoint", str(run_folder), *arguments])
    assert code == 2
    assert message in _single_error_line(capsys)


def test_command_error_is_one_line(tmp_path):
    # The installed console script when present (an editable install puts it
    # beside the interpreter), else the module, run as a user would.
    script = Path(sys.executable).with_name("metanode")
    command = (
        [str(script)] if script.exists() else [sys.executable, "-m", "metanode.cli"]
    )
    environment = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [*command, "evaluate", "--checkpoint", str(tmp_path / "absent.pt")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"metanode: error: checkpoint not found: {tmp_path / 'absent.pt'}"
    ]
