"""Datasets without torchvision (it does not import beside the pinned torch).

* Fashion-MNIST from its four IDX files (``*-ubyte.gz``): the Debian package
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``, installed by ``make setup``),
  a folder named by ``root`` or ``$LOWRANK_DATA``;
* CIFAR-10 from the python version of its archive (``cifar-10-python.tar.gz``) or that archive
  unpacked, found the same way;
* seeded class-balanced subsets, for the memorization experiments' training sets of size 2^k.

Nothing is downloaded: where the data are missing the error says how to get them.
"""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["load_fashion_mnist", "load_cifar10", "balanced_subset", "FASHION_MNIST_DEBIAN"]

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _candidates(root: str | Path | None, default: Path | None) -> list[Path]:
    found = [Path(root)] if root is not None else []
    if os.environ.get("LOWRANK_DATA"):
        found.append(Path(os.environ["LOWRANK_DATA"]))
    if default is not None:
        found.append(default)
    return found


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Array stored in a gzipped IDX file (big-endian header: magic, then one int per dim)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: IDX magic number {found}, expected {magic}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {body.size} bytes of data for shape {dims}")
    return body.reshape(dims)


def load_fashion_mnist(
    split: str = "train", root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images and labels.

    Arguments:
        split: ``"train"`` (60000) or ``"test"`` (10000).
        root: folder with the four ``*-ubyte.gz`` files; else ``$LOWRANK_DATA``, else the
            Debian package's folder.

    Returns:
        ``(images, labels)``: ``(N, 28, 28)`` uint8 and ``(N,)`` int64.
    """
    if split not in _FASHION_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    image_name, label_name = _FASHION_FILES[split]
    searched = _candidates(root, FASHION_MNIST_DEBIAN)
    for folder in searched:
        if (folder / image_name).exists() and (folder / label_name).exists():
            images = _read_idx(folder / image_name, 2051)
            labels = _read_idx(folder / label_name, 2049)
            if len(images) != len(labels):
                raise ValueError(f"{folder}: {len(images)} images but {len(labels)} labels")
            return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
    raise FileNotFoundError(
        f"Fashion-MNIST ({image_name}, {label_name}) not found in {[str(p) for p in searched]}. "
        "Run 'make setup' as root on Debian/Ubuntu (it installs the package "
        "dataset-fashion-mnist), or 'sudo apt-get install dataset-fashion-mnist', or put the "
        "four *-ubyte.gz files in a folder and set LOWRANK_DATA to it."
    )


def _cifar_batches(source: Path, names: list[str]) -> list[dict]:
    if source.is_file():
        with tarfile.open(source, "r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers()}
            return [pickle.load(tar.extractfile(members[n]), encoding="bytes") for n in names]
    return [pickle.loads((source / n).read_bytes(), encoding="bytes") for n in names]


def load_cifar10(
    split: str = "train", root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 (python version) images and labels.

    Arguments:
        split: ``"train"`` (data_batch_1..5, 50000) or ``"test"`` (test_batch, 10000).
        root: ``cifar-10-python.tar.gz``, the folder ``cifar-10-batches-py``, or a folder holding
            either; else ``$LOWRANK_DATA``.

    Returns:
        ``(images, labels)``: ``(N, 3, 32, 32)`` uint8 and ``(N,)`` int64.
    """
    names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    if split not in names:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    searched = _candidates(root, None)
    for base in searched:
        for source in (
            base,
            base / "cifar-10-batches-py",
            base / "cifar-10-python.tar.gz",
        ):
            ok = source.is_file() and source.name.endswith(".tar.gz")
            ok = ok or (source.is_dir() and (source / names[split][0]).exists())
            if ok:
                batches = _cifar_batches(source, names[split])
                images = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
                labels = np.concatenate([np.asarray(b[b"labels"]) for b in batches])
                return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
    raise FileNotFoundError(
        f"CIFAR-10 not found in {[str(p) for p in searched]}. Download the python version "
        "(cifar-10-python.tar.gz, from the dataset's home page at the University of Toronto) "
        "where the internet is reachable, and pass its path as root or set LOWRANK_DATA to "
        "its folder."
    )


def balanced_subset(
    labels: torch.Tensor, size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Indices of a seeded, class-balanced subset: every class gets ``size // K`` examples and
    ``size % K`` classes, chosen at random, one more (``size = 2^k`` is rarely a multiple of K).

    Arguments:
        labels: ``(N,)`` int64 labels in ``0 .. K-1``.
        size: subset size, ``1 <= size <= N``.
        generator: seeds which classes get the extra examples and which examples are taken.

    Returns:
        ``(size,)`` int64 indices, sorted.
    """
    K = int(labels.max()) + 1
    if not 1 <= size <= len(labels):
        raise ValueError(f"size must lie in [1, {len(labels)}], got {size}")
    counts = torch.full((K,), size // K, dtype=torch.long)
    counts[torch.randperm(K, generator=generator)[: size % K]] += 1
    chosen = []
    for k in range(K):
        members = torch.nonzero(labels == k).flatten()
        if len(members) < counts[k]:
            raise ValueError(f"class {k} has {len(members)} examples, {int(counts[k])} needed")
        chosen.append(members[torch.randperm(len(members), generator=generator)[: counts[k]]])
    return torch.cat(chosen).sort().values
