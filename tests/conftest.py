"""Shared fixtures: an isolated data cache and real Fashion-MNIST slices."""

from __future__ import annotations

import os

import pytest

from metanode.data import DEBIAN_FASHION_MNIST, load_dataset

_FILES = ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")


def fashion_mnist_installed() -> bool:
    return all((DEBIAN_FASHION_MNIST / name).is_file() for name in _FILES)


def require_fashion_mnist() -> None:
    """Skip without the Debian Fashion-MNIST files, but fail when CI is set."""
    if fashion_mnist_installed():
        return
    message = (
        f"Fashion-MNIST is missing from {DEBIAN_FASHION_MNIST}; install it with "
        "apt-get install dataset-fashion-mnist"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def metanode_cache(tmp_path_factory):
    """Point metanode's cache at a temporary folder for the whole session."""
    folder = tmp_path_factory.mktemp("metanode-cache")
    previous = os.environ.get("METANODE_CACHE_DIR")
    os.environ["METANODE_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("METANODE_CACHE_DIR", None)
    else:
        os.environ["METANODE_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def fashion_mnist_test_slice(metanode_cache):
    """The first 512 Fashion-MNIST test images, pixels in [0, 1]."""
    require_fashion_mnist()
    return load_dataset("fashion-mnist", "test", limit=512)
