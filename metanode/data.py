"""Image datasets as in-memory tensors: Fashion-MNIST, MNIST and CIFAR-10.

All three go through torchvision's dataset classes, read from a local root, and come
back as a ``TensorDataset`` of float images in [0, 1] with shape (N, C, H, W) and
int64 labels. Normalization belongs to the model (see ``DatasetInfo.mean``/``std``).

Fashion-MNIST is found without any option in the Debian package location
(``/usr/share/datasets/fashion-mnist``, package ``dataset-fashion-mnist``). That
folder holds gzipped IDX files and torchvision wants them uncompressed under
``<root>/FashionMNIST/raw``, so they are decompressed once into the user cache
(``$METANODE_CACHE_DIR``, else ``$XDG_CACHE_HOME/metanode``, else
``~/.cache/metanode``). Nothing is ever written into the source folder.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

logger = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

_FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class DatasetInfo:
    """Shape, class count and per-channel normalization of a dataset."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo("fashion-mnist", 10, 1, 28, (0.2860,), (0.3530,)),
    "mnist": DatasetInfo("mnist", 10, 1, 28, (0.1307,), (0.3081,)),
    "cifar10": DatasetInfo(
        "cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    ),
}

SPLITS = ("train", "test")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is missing from every place searched; the message says how to get
    it."""


def dataset_info(name: str) -> DatasetInfo:
    """Return the ``DatasetInfo`` for ``name``; raise ``ValueError`` if unknown."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(DATASETS)
        raise ValueError(
            f"unknown dataset {name!r}; expected one of: {known}"
        ) from None


def cache_dir() -> Path:
    """Return the folder where metanode keeps prepared data."""
    explicit = os.environ.get("METANODE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "metanode"


def load_dataset(
    name: str,
    split: str,
    *,
    root: str | os.PathLike | None = None,
    download: bool = False,
    limit: int | None = None,
) -> TensorDataset:
    """Load one split of a dataset as float images in [0, 1] and int64 labels.

    Args:
        name: ``"fashion-mnist"``, ``"mnist"`` or ``"cifar10"``.
        split: ``"train"`` or ``"test"``.
        root: folder holding the data in torchvision's layout (for Fashion-MNIST also
            a folder with the four IDX files, gzipped or not). Without it,
            Fashion-MNIST is looked up in the Debian location and the user cache,
            the other datasets in ``cache_dir() / "data"``.
        download: let torchvision download a missing dataset into ``root`` (or the
            cache). Needs internet access.
        limit: keep only the first ``limit`` images (a fixed slice, not a sample).

    Raises:
        ValueError: unknown name or split, or a limit below 1.
        DatasetNotFoundError: the data is not there and ``download`` is off.
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
    if limit is not None and limit < 1:
        raise ValueError(f"`limit` must be at least 1, got {limit}")

    train = split == "train"
    if name == "fashion-mnist":
        images, labels = _load_fashion_mnist(train, root, download)
    elif name == "mnist":
        images, labels = _load_torchvision("MNIST", train, root, download)
    else:
        images, labels = _load_torchvision("CIFAR10", train, root, download)

    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    pixels = images.to(torch.float32).div_(255.0)
    logger.info(
        "loaded %s %s: %d images of shape %s",
        info.name,
        split,
        len(labels),
        tuple(pixels.shape[1:]),
    )
    return TensorDataset(pixels, labels)


def _tensors_from_torchvision(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a torchvision MNIST-like or CIFAR dataset into (uint8 NCHW, int64)."""
    data = dataset.data
    if isinstance(data, np.ndarray):  # CIFAR keeps NHWC numpy arrays
        images = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
    else:  # MNIST-like datasets keep an (N, H, W) uint8 tensor
        images = data.unsqueeze(1)
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    return images, labels


def _load_torchvision(
    class_name: str, train: bool, root, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision.datasets

    folder = Path(root) if root is not None else cache_dir() / "data"
    dataset_class = getattr(torchvision.datasets, class_name)
    try:
        dataset = dataset_class(str(folder), train=train, download=download)
    except RuntimeError as error:
        # torchvision raises RuntimeError("Dataset not found...") for missing data.
        hint = "the download failed" if download else "pass --download to fetch it"
        raise DatasetNotFoundError(
            f"{class_name} not found under {folder} ({error}); {hint} where the "
            f"internet is reachable, or point --data-root at a folder holding it "
            f"in torchvision's layout"
        ) from None
    return _tensors_from_torchvision(dataset)


def _load_fashion_mnist(
    train: bool, root, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision.datasets

    searched = [Path(root)] if root is not None else [DEBIAN_FASHION_MNIST]
    torchvision_root = None
    for folder in searched:
        torchvision_root = _prepare_fashion_mnist(folder)
        if torchvision_root is not None:
            break

    if torchvision_root is None and download:
        torchvision_root = Path(root) if root is not None else cache_dir() / "data"
        logger.info("downloading Fashion-MNIST into %s", torchvision_root)
    elif torchvision_root is None:
        places = " or ".join(str(folder) for folder in searched)
        raise DatasetNotFoundError(
            f"Fashion-MNIST not found in {places}; install the Debian package "
            f"(apt-get install dataset-fashion-mnist), point --data-root at a folder "
            f"holding the four IDX files, or add --download where the internet is "
            f"reachable"
        )

    try:
        dataset = torchvision.datasets.FashionMNIST(
            str(torchvision_root), train=train, download=download
        )
    except RuntimeError as error:
        raise DatasetNotFoundError(
            f"Fashion-MNIST could not be read or downloaded into "
            f"{torchvision_root}: {error}"
        ) from None
    return _tensors_from_torchvision(dataset)


def _prepare_fashion_mnist(folder: Path) -> Path | None:
    """Return a torchvision root for the Fashion-MNIST files in ``folder``.

    ``folder`` may already be a torchvision root (``FashionMNIST/raw`` inside it,
    uncompressed) or hold the IDX files directly, gzipped or not. Gzipped or flat
    files are decompressed or copied into the cache. Returns None when the files
    are not all there.
    """
    if all(
        (folder / "FashionMNIST" / "raw" / n).is_file() for n in _FASHION_MNIST_FILES
    ):
        return folder

    sources = {}
    for name in _FASHION_MNIST_FILES:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                sources[name] = candidate
                break
    if len(sources) < len(_FASHION_MNIST_FILES):
        return None

    # One cache folder per source folder, so two sources never mix.
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
    prepared = cache_dir() / f"fashion-mnist-{digest}"
    raw = prepared / "FashionMNIST" / "raw"
    for name, source in sources.items():
        target = raw / name
        if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        logger.info("preparing %s from %s", target, source)
        _copy_atomically(source, target)
    return prepared


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target``, decompressing ``.gz``; readers never see a
    partial file because the copy goes to a temporary name first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if source.suffix == ".gz" else open
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with opener(source, "rb") as reader, os.fdopen(handle, "wb") as writer:
            shutil.copyfileobj(reader, writer, length=1 << 20)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def iterate_batches(
    dataset: TensorDataset,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    start_batch: int = 0,
):
    """Yield ``(images, labels)`` batches, shuffled when ``generator`` is given.

    The order is one ``torch.randperm`` draw from ``generator``, so restoring the
    generator's state from before the draw and passing ``start_batch`` resumes an
    epoch at the same batch. The last batch may be smaller.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, got {batch_size}")
    images, labels = dataset.tensors
    count = len(labels)
    order = (
        torch.randperm(count, generator=generator) if generator is not None else None
    )
    for start in range(start_batch * batch_size, count, batch_size):
        if order is None:
            yield images[start : start + batch_size], labels[start : start + batch_size]
        else:
            index = order[start : start + batch_size]
            yield images[index], labels[index]


def batches_per_epoch(dataset: TensorDataset, batch_size: int) -> int:
    """Return the number of batches ``iterate_batches`` yields for a whole epoch."""
    return -(-len(dataset) // batch_size)
