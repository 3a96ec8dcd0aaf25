"""Checkpoint files: atomic writes, weights_only loading, validation, RNG states."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from metanode.checkpoint import (
    CheckpointError,
    capture_rng_state,
    check_model_config,
    load_checkpoint,
    load_model_state,
    restore_rng_state,
    save_checkpoint,
)
from metanode.models import build_model


def _payload(width: int = 4) -> dict:
    model = build_model("odenet", width=width)
    return {"model": {"config": model.config, "state": model.state_dict()}}


def test_round_trip_loads_weights_only(tmp_path):
    payload = _payload()
    path = save_checkpoint(tmp_path / "checkpoint.pt", payload)

    plain = torch.load(path, weights_only=True)
    loaded = load_checkpoint(path)

    assert plain["format"] == "metanode-checkpoint"
    assert loaded["model"]["config"] == payload["model"]["config"]
    for name, tensor in payload["model"]["state"].items():
        assert torch.equal(loaded["model"]["state"][name], tensor)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_folder_resolves_to_checkpoint_file(tmp_path):
    save_checkpoint(tmp_path / "checkpoint.pt", _payload())
    assert load_checkpoint(tmp_path)["version"] == 1


def test_failed_save_keeps_old_file(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", _payload())
    before = path.read_bytes()
    with pytest.raises(Exception, match="lambda|pickle"):
        save_checkpoint(path, {"model": {"config": {}, "state": lambda: None}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_truncated_file_is_corrupt(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", _payload())
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_text_file_is_corrupt(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_foreign_torch_file_rejected(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match="not a metanode checkpoint"):
        load_checkpoint(path)


def test_newer_version_rejected(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", _payload())
    document = torch.load(path, weights_only=True)
    document["version"] = 99
    torch.save(document, path)
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(path)


def test_missing_file_named(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")


def test_other_model_config_listed(tmp_path):
    document = _payload(width=4)
    expected = build_model("odenet", width=8).config
    with pytest.raises(CheckpointError, match="width: checkpoint 4, requested 8"):
        check_model_config(document, expected, tmp_path)


def test_other_model_state_rejected(tmp_path):
    document = _payload(width=4)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_model_state(build_model("odenet", width=8), document, tmp_path)


def test_rng_states_restore_draws(tmp_path):
    payload = _payload()
    generator = torch.Generator().manual_seed(11)
    state = capture_rng_state({"data": generator})
    path = save_checkpoint(tmp_path / "checkpoint.pt", {**payload, "rng": state})
    expected = (
        torch.rand(3),
        np.random.rand(3),
        random.random(),
        torch.rand(3, generator=generator),
    )

    other = torch.Generator().manual_seed(99)
    restore_rng_state(load_checkpoint(path)["rng"], {"data": other})
    drawn = (
        torch.rand(3),
        np.random.rand(3),
        random.random(),
        torch.rand(3, generator=other),
    )

    assert torch.equal(drawn[0], expected[0])
    assert np.array_equal(drawn[1], expected[1])
    assert drawn[2] == expected[2]
    assert torch.equal(drawn[3], expected[3])


def test_restore_needs_every_generator():
    state = capture_rng_state({})
    with pytest.raises(CheckpointError, match="'noise'"):
        restore_rng_state(state, {"noise": torch.Generator()})


@pytest.mark.parametrize(
    ("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)], ids=["022", "077"]
)
def test_file_mode_follows_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path / "checkpoint.pt", _payload())
        plain = tmp_path / "plain.txt"
        plain.write_text("written with open()\n")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode
    assert plain.stat().st_mode & 0o777 == mode
