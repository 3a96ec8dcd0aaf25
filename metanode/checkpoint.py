"""Training checkpoints: atomic writes, safe loading and random-number states.

A checkpoint is a plain dict of tensors, dicts, lists, numbers and strings, so it
loads with ``torch.load(weights_only=True)``. Its top-level keys:

- ``format`` and ``version``: mark the file as a metanode checkpoint;
- ``model``: ``{"config": build_model keyword arguments, "state": state_dict}``;
- ``optimizer``, ``scheduler``, ``scaler``: their ``state_dict()`` (or None);
- ``train_config``: the full training configuration (JSON-able);
- ``solvers`` (list of ``SolverSpec.to_dict()``) and ``regime`` (its config);
- ``progress``: ``{"step", "epoch", "batch_in_epoch"}`` of the next batch to train;
- ``rng``: states of torch, numpy, Python ``random`` and named generators;
- ``metrics``: the training history and the latest evaluation, if any.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

FORMAT = "metanode-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(Exception):
    """A checkpoint is missing, unreadable, corrupt or belongs to another run."""


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` to ``path`` atomically and return the path.

    The data goes to a temporary file in the same folder, is flushed to disk and then
    renamed over ``path`` with ``os.replace``. A crash leaves either the old file or
    the new one, never a partial file. The file gets mode 0666 less the umask, as a
    file made with ``open()`` does.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"format": FORMAT, "version": VERSION, **payload}
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".pt.tmp"
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            # mkstemp creates the file with mode 0600; give it the mode that
            # open() gives the run's other files.
            os.fchmod(stream.fileno(), 0o666 & ~_current_umask())
            torch.save(document, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    logger.debug("wrote checkpoint %s", path)
    return path


def _current_umask() -> int:
    # os.umask can only be read by setting it; the old value is restored at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load and validate a checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: the file is missing, is not a metanode checkpoint, is
            corrupt, or comes from a newer format version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        document = torch.load(path, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        zipfile.BadZipFile,
        AttributeError,
        TypeError,
    ) as error:
        # torch's messages run to several sentences; the first names the failure.
        text = " ".join(str(error).split())
        reason = text.split(". ")[0]
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is corrupt or not a metanode "
            f"checkpoint ({type(error).__name__}: {reason})"
        ) from None

    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a torch file but not a metanode checkpoint (missing "
            f"format marker {FORMAT!r})"
        )
    version = document.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {version!r}, but this metanode reads "
            f"version {VERSION} or older; upgrade metanode"
        )
    model = document.get("model")
    if not isinstance(model, dict) or not {"config", "state"} <= model.keys():
        raise CheckpointError(f"{path} contains no model config and state")
    return document


def check_model_config(document: dict, expected: dict, path) -> None:
    """Raise ``CheckpointError`` unless the checkpoint's model config is ``expected``.

    The message lists every differing key, for example
    ``width: checkpoint 64, requested 32``.
    """
    stored = document["model"]["config"]
    if stored == expected:
        return
    differences = []
    for key in sorted(set(stored) | set(expected)):
        old, new = stored.get(key), expected.get(key)
        if old != new:
            differences.append(f"{key}: checkpoint {old!r}, requested {new!r}")
    raise CheckpointError(
        f"checkpoint {path} contains a different model ({'; '.join(differences)})"
    )


def load_model_state(model: torch.nn.Module, document: dict, path) -> None:
    """Load the checkpoint's model weights into ``model``, with a clear error on a
    mismatch of parameter names or shapes."""
    try:
        model.load_state_dict(document["model"]["state"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise CheckpointError(
            f"checkpoint {path} does not fit the model: {detail}"
        ) from None


def capture_rng_state(generators: dict[str, torch.Generator]) -> dict:
    """Return the states of torch, numpy, Python ``random`` and ``generators``.

    Every value is a tensor, int, float, string, list or dict, so the result loads
    with ``weights_only=True``.
    """
    numpy_state = np.random.get_state(legacy=False)
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict, generators: dict[str, torch.Generator]) -> None:
    """Restore the states written by ``capture_rng_state``."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {
                "key": numpy_state["key"].numpy().astype(np.uint32),
                "pos": numpy_state["pos"],
            },
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    python_state = state["python"]
    random.setstate(
        (
            python_state["version"],
            tuple(python_state["internal"]),
            python_state["gauss"],
        )
    )
    for name, generator in generators.items():
        if name not in state["generators"]:
            raise CheckpointError(
                f"checkpoint contains no state for the random generator {name!r}"
            )
        generator.set_state(state["generators"][name])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
