"""The metanode command: outputs, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import require_fashion_mnist

from metanode.cli import describe_families, main
from metanode.evaluation import format_table
from metanode.solvers import parse_solver_specs

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
    # Nothing is logged before the error, so stderr contains that one line only.
    assert err.splitlines() == lines, err
    # argparse names the subcommand too: "metanode train: error: ...".
    assert lines[0].startswith("metanode"), err
    assert ": error: " in lines[0], err
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
    (["--device", "bogus"], "invalid device 'bogus'"),
    (["--device", f"cuda:{torch.cuda.device_count()}"], "is not available"),
    (["--train-solvers", "rk2:u=1e400,steps=4"], "too large for a float64"),
    (["--train-solvers", "rk2:u=0.5,step_size=1e400"], "too large for a float64"),
    (
        ["--train-solvers", "rk2:u=0.5,steps=99999999999"],
        "cannot lay out the time grid of solver rk2:u=0.5,steps=99999999999",
    ),
    (
        ["--train-regime", "standalone", "--ensemble-weights", "0.7,0.7"],
        "--ensemble-weights is used only with --train-regime solver-ensemble or "
        "model-ensemble, but --train-regime is standalone",
    ),
    (
        ["--adversarial", "clean", "--alpha", "0.9"],
        "--alpha is used only with --adversarial fgsm-random or pgd, but "
        "--adversarial is clean",
    ),
    (["--switching-probs", "1"], "--switching-probs is used only with"),
    (["--smoothing-scale", "0.1"], "--smoothing-scale is used only with"),
    (["--eps", "0.1"], "--eps is used only with"),
    (["--adversarial", "fgsm", "--attack-steps", "3"], "--attack-steps is used"),
    (["--momentum", "0.5"], "--momentum is used only with --optimizer sgd"),
    (["--base-lr", "1e-5"], "--base-lr is used only with --schedule one-cycle"),
    (["--adversarial", "pgd", "--eps", "2"], "`eps` must be in (0, 1]"),
    (["--threads", "0"], "`threads` must be an integer >= 1"),
]  # fmt: skip


@pytest.mark.parametrize(("arguments", "message"), TRAIN_ERRORS)
def test_train_bad_input_exits_2(tmp_path, capsys, arguments, message):
    code = _exit_code(["train", "--out", str(tmp_path / "run"), *TINY, *arguments])
    assert code == 2
    assert message in _single_error_line(capsys)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    # Bad input creates no run folder and no file in it.
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_cuda_without_device_exits_2(tmp_path, capsys, command):
    if command == "train":
        argv = ["train", "--out", str(tmp_path / "run"), *TINY]
    else:
        argv = ["evaluate", "--checkpoint", str(tmp_path / "absent.pt")]
    assert main([*argv, "--device", "cuda"]) == 2
    assert "device 'cuda' is not available" in _single_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_train_out_is_file_exits_2(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("a file\n")
    assert main(["train", "--out", str(afile), *TINY]) == 2
    assert f"--out {afile} is a file, not a folder" in _single_error_line(capsys)
    assert main(["train", "--out", str(afile / "run"), *TINY]) == 2
    line = _single_error_line(capsys)
    assert f"--out {afile / 'run'}: {afile} is a file" in line
    assert afile.read_text() == "a file\n"


def test_train_log_holds_run_header(run_folder):
    log = (run_folder / "train.log").read_text()
    assert "torch uses 1 intra-op thread(s)" in log
    assert "loaded fashion-mnist train: 128 images" in log
    assert "training odenet" in log


def test_resume_logs_to_same_file(tmp_path, capsys):
    require_fashion_mnist()
    from metanode.training import TrainConfig, Trainer

    folder = tmp_path / "run"
    assert main(["train", "--out", str(folder), *TINY, "--checkpoint-every", "1"]) == 0
    # Roll the run back to its step-1 checkpoint, as a crash after step 1 would.
    config = TrainConfig.from_dict(json.loads((folder / "config.json").read_text()))
    interrupted = Trainer(config, tmp_path / "interrupted")

    def stop(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted.run(step_callback=stop)
    (tmp_path / "interrupted" / "checkpoint.pt").replace(folder / "checkpoint.pt")
    capsys.readouterr()

    assert main(["train", "--out", str(folder), "--resume", "--threads", "1"]) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    # The first run's lines stay, and the resumed run adds its own header.
    log = (folder / "train.log").read_text()
    assert log.count("training odenet") == 2
    assert log.count("torch uses 1 intra-op thread(s)") == 2
    assert f"resumed {folder / 'checkpoint.pt'} at step 1 of 2" in log
    assert log.index("resumed ") > log.index("training odenet")


def test_resume_of_finished_run_changes_nothing(run_folder, capsys):
    before = {
        path.name: (path.read_bytes(), path.stat().st_mtime_ns)
        for path in run_folder.iterdir()
    }
    assert main(["train", "--out", str(run_folder), "--resume", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "already complete at step 2 of 2" in out
    after = {
        path.name: (path.read_bytes(), path.stat().st_mtime_ns)
        for path in run_folder.iterdir()
    }
    assert after == before


def test_overwrite_replaces_old_run_files(run_folder, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    (folder / "evaluation.json").write_text('{"rows": []}\n')
    (folder / "results.png").write_bytes(b"old plot")

    assert main(["train", "--out", str(folder), *TINY, "--overwrite"]) == 0

    names = {path.name for path in folder.iterdir()}
    assert names == {"checkpoint.pt", "config.json", "metrics.json", "train.log"}
    log = (folder / "train.log").read_text()
    assert log.count("training odenet") == 1
    assert "removed the replaced run's files" in log


def test_checkpoint_mode_matches_other_files(run_folder):
    checkpoint_mode = (run_folder / "checkpoint.pt").stat().st_mode & 0o777
    assert checkpoint_mode == (run_folder / "config.json").stat().st_mode & 0o777


def test_existing_run_not_overwritten(run_folder, capsys):
    saved = (run_folder / "checkpoint.pt").read_bytes()
    assert main(["train", "--out", str(run_folder), *TINY]) == 2
    assert "already contains a checkpoint" in _single_error_line(capsys)
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


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--threads", "0"], "--threads must be at least 1, got 0"),
        (["--fgsm-eps", "0"], "`fgsm_eps` must be in (0, 1]"),
        (["--pgd-eps", "2"], "`pgd_eps` must be in (0, 1]"),
        (["--pgd-alpha", "5"], "`pgd_alpha` must be in (0, 1]"),
        (["--device", "bogus"], "invalid device 'bogus'"),
        (["--device", f"cuda:{torch.cuda.device_count()}"], "is not available"),
        (["--solvers", "rk2:u=1e400,steps=2"], "too large for a float64"),
        (
            ["--ensemble-weights", "0.5,0.5"],
            "--ensemble-weights is used only with --regimes switching, "
            "solver-ensemble, model-ensemble, but --regimes is standalone",
        ),
    ],
)
def test_evaluate_options_checked_first(tmp_path, capsys, arguments, message):
    # The checkpoint does not exist: each error must come before it is looked up.
    absent = tmp_path / "absent.pt"
    code = _exit_code(["evaluate", "--checkpoint", str(absent), *arguments])
    assert code == 2
    assert message in _single_error_line(capsys)


def test_evaluate_keeps_existing_json(run_folder, tmp_path, capsys):
    output = tmp_path / "results.json"
    output.write_text("earlier results\n")
    argv = [
        "evaluate",
        "--checkpoint", str(run_folder),
        "--limit", "64",
        "--threads", "1",
        "--json", str(output),
    ]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"metanode: error: --json {output} already exists; pass --overwrite to "
        f"replace it or choose another --json path"
    ]
    # The check runs before the evaluation, which would print the table.
    assert captured.out == ""
    assert output.read_text() == "earlier results\n"

    assert main([*argv, "--overwrite"]) == 0
    assert json.loads(output.read_text())["images"] == 64


def test_evaluate_default_json_not_replaced(run_folder, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    (folder / "evaluation.json").write_text("earlier results\n")
    argv = ["evaluate", "--checkpoint", str(folder), "--limit", "64", "--threads", "1"]
    assert main(argv) == 2
    assert "already exists; pass --overwrite" in _single_error_line(capsys)
    assert (folder / "evaluation.json").read_text() == "earlier results\n"


@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
def test_evaluate_never_writes_over_checkpoint(run_folder, capsys, extra):
    path = run_folder / "checkpoint.pt"
    saved = path.read_bytes()
    argv = ["evaluate", "--checkpoint", str(run_folder), "--json", str(path)]
    assert main([*argv, *extra]) == 2
    assert "results never replace a checkpoint" in _single_error_line(capsys)
    assert path.read_bytes() == saved


def test_evaluate_json_below_file_exits_2(run_folder, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("a file\n")
    target = afile / "x.json"
    argv = ["evaluate", "--checkpoint", str(run_folder), "--json", str(target)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"metanode: error: --json {target}: {afile} is a file, so no folder can be "
        f"created below it; choose another path"
    ]
    assert captured.out == ""


def test_evaluate_step_size_column(run_folder, tmp_path, capsys):
    output = tmp_path / "results.json"
    code = main(
        [
            "evaluate",
            "--checkpoint", str(run_folder),
            "--solvers", "rk2:u=0.5,step_size=0.3",
            "--limit", "64",
            "--threads", "1",
            "--json", str(output),
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "| standalone | rk2:u=0.5 | h=0.3 |" in out
    assert "None" not in out
    row = json.loads(output.read_text())["rows"][0]
    assert row["steps"] is None
    assert row["step_size"] == 0.3


def test_table_keeps_grids_that_differ():
    row = {
        "regime": "model-ensemble",
        "solvers": ["rk2:u=0.5,steps=2", "rk2:u=1.0,step_size=0.25"],
        "steps": None,
        "step_size": None,
        "clean": 0.5,
        "fgsm": 0.4,
        "pgd": 0.3,
    }
    line = format_table([row]).splitlines()[-1]
    assert line.startswith(
        "| model-ensemble | rk2:u=0.5,steps=2; rk2:u=1.0,step_size=0.25 | per solver |"
    )


def test_solvers_examples_read_back_exactly(capsys):
    assert main(["solvers"]) == 0
    out = capsys.readouterr().out
    examples = [
        line.split("example: ", 1)[1] for line in out.splitlines() if "example:" in line
    ]
    records = {record["family"]: record for record in describe_families()}
    assert len(examples) == len(records)
    for text in examples:
        spec = parse_solver_specs(text)[0]
        assert spec.params == records[spec.family]["defaults"], text
    assert "example: rk4_c2_half_c3_zero:u=-5/126,steps=8" in out


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
