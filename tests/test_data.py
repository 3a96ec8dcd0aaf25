"""Dataset loading on the real Fashion-MNIST files, and batch iteration."""

from __future__ import annotations

import gzip
import shutil

import pytest
import torch
from conftest import require_fashion_mnist
from torch.utils.data import TensorDataset

from metanode.data import (
    DEBIAN_FASHION_MNIST,
    DatasetNotFoundError,
    batches_per_epoch,
    dataset_info,
    iterate_batches,
    load_dataset,
)

IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def test_fashion_mnist_found_without_root(fashion_mnist_test_slice):
    images, labels = fashion_mnist_test_slice.tensors
    assert images.shape == (512, 1, 28, 28)
    assert images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert float(images.min()) >= 0.0
    assert float(images.max()) <= 1.0
    assert set(labels.tolist()) == set(range(10))


def test_fashion_mnist_statistics_match_model_defaults():
    require_fashion_mnist()
    images, _ = load_dataset("fashion-mnist", "train").tensors
    info = dataset_info("fashion-mnist")
    # The published statistics are rounded to four decimals.
    assert abs(float(images.mean()) - info.mean[0]) < 1e-4
    assert abs(float(images.std()) - info.std[0]) < 1e-4
    assert len(images) == 60_000


def test_limit_takes_first_images(fashion_mnist_test_slice):
    first = load_dataset("fashion-mnist", "test", limit=5)
    assert torch.equal(first.tensors[0], fashion_mnist_test_slice.tensors[0][:5])
    assert torch.equal(first.tensors[1], fashion_mnist_test_slice.tensors[1][:5])


def test_source_folder_is_never_written(tmp_path, fashion_mnist_test_slice):
    require_fashion_mnist()
    root = tmp_path / "gzipped"
    root.mkdir()
    for name in IDX_NAMES:
        (root / f"{name}.gz").symlink_to(DEBIAN_FASHION_MNIST / f"{name}.gz")
    before = sorted(path.name for path in root.iterdir())
    debian_before = sorted(path.name for path in DEBIAN_FASHION_MNIST.iterdir())

    loaded = load_dataset("fashion-mnist", "test", root=root, limit=512)

    assert torch.equal(loaded.tensors[0], fashion_mnist_test_slice.tensors[0])
    assert sorted(path.name for path in root.iterdir()) == before
    assert sorted(p.name for p in DEBIAN_FASHION_MNIST.iterdir()) == debian_before


def _write_uncompressed(folder, names_by_source):
    folder.mkdir(parents=True)
    for source, target in names_by_source.items():
        with gzip.open(DEBIAN_FASHION_MNIST / f"{source}.gz", "rb") as reader:
            with open(folder / target, "wb") as writer:
                shutil.copyfileobj(reader, writer)


def test_torchvision_layout_root(tmp_path, fashion_mnist_test_slice):
    require_fashion_mnist()
    _write_uncompressed(
        tmp_path / "FashionMNIST" / "raw", {name: name for name in IDX_NAMES}
    )
    loaded = load_dataset("fashion-mnist", "test", root=tmp_path, limit=512)
    assert torch.equal(loaded.tensors[0], fashion_mnist_test_slice.tensors[0])


def test_mnist_reads_torchvision_layout(tmp_path, fashion_mnist_test_slice):
    # MNIST uses the same IDX format and file names, so Fashion-MNIST files in
    # MNIST's torchvision layout exercise the MNIST loading path on real data.
    require_fashion_mnist()
    _write_uncompressed(tmp_path / "MNIST" / "raw", {n: n for n in IDX_NAMES})
    loaded = load_dataset("mnist", "test", root=tmp_path, limit=512)
    assert torch.equal(loaded.tensors[0], fashion_mnist_test_slice.tensors[0])
    assert torch.equal(loaded.tensors[1], fashion_mnist_test_slice.tensors[1])


def test_missing_fashion_mnist_explains_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("fashion-mnist", "train", root=tmp_path)
    message = str(caught.value)
    assert str(tmp_path) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--download" in message


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_missing_torchvision_dataset_explains_fix(tmp_path, name):
    with pytest.raises(DatasetNotFoundError, match="--download"):
        load_dataset(name, "test", root=tmp_path)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"name": "svhn", "split": "test"}, "unknown dataset 'svhn'"),
        ({"name": "mnist", "split": "valid"}, "unknown split 'valid'"),
        ({"name": "mnist", "split": "test", "limit": 0}, "`limit` must be"),
    ],
)
def test_invalid_arguments_rejected(arguments, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(**arguments)


def _numbered(count: int) -> TensorDataset:
    return TensorDataset(torch.arange(count).float(), torch.arange(count))


def test_shuffled_epoch_covers_every_item_once():
    dataset = _numbered(10)
    generator = torch.Generator().manual_seed(3)
    batches = list(iterate_batches(dataset, 4, generator=generator))
    assert [len(labels) for _, labels in batches] == [4, 4, 2]
    seen = torch.cat([labels for _, labels in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert seen.tolist() != list(range(10))
    assert batches_per_epoch(dataset, 4) == 3


def test_epoch_resumes_at_batch():
    dataset = _numbered(10)
    generator = torch.Generator().manual_seed(5)
    state = generator.get_state()
    full = [labels for _, labels in iterate_batches(dataset, 3, generator=generator)]
    generator.set_state(state)
    rest = iterate_batches(dataset, 3, generator=generator, start_batch=2)
    assert [labels.tolist() for _, labels in rest] == [b.tolist() for b in full[2:]]


def test_unshuffled_batches_keep_order():
    labels = torch.cat([y for _, y in iterate_batches(_numbered(7), 3)])
    assert labels.tolist() == list(range(7))
