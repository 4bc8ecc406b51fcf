"""Datasets without torchvision (it does not import beside the pinned torch).

* Fashion-MNIST from its four IDX files (``*-ubyte.gz``): the Debian package
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``, installed by ``make setup``),
  a folder named by ``root`` or ``$LOWRANK_DATA``;
* CIFAR-10 from the python version of its archive (``cifar-10-python.tar.gz``) or that archive
  unpacked, found the same way; its pickled batches are read by an unpickler that admits only
  the numpy arrays, dicts, lists, bytes and ints they hold, so a tampered file cannot run code;
* seeded class-balanced subsets, for the memorization experiments' training sets of size 2^k;
* seeded label noise (:func:`flip_labels`), for the ensemble's robustness to wrong labels;
* a seeded class-agnostic overlay (:func:`overlay`), a hand-made version of the delta term of
  the paper's Assumption 1, for chapter 10.

Nothing is downloaded: where the data are missing the error says how to get them.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import importlib
import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch

from lowrank._checks import check_count, check_labels, check_real

__all__ = [
    "load_fashion_mnist",
    "load_cifar10",
    "balanced_subset",
    "flip_labels",
    "to_model_range",
    "overlay",
    "FASHION_MNIST_DEBIAN",
    "unpickle_batch",
]

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# SHA-256 of the decompressed IDX files, by name without .gz: the gzip bytes differ between
# distributions (Debian recompresses them), the content does not. Measured on the Debian package
# dataset-fashion-mnist 0.0~git20200523.55506a9-1.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def _candidates(root: str | Path | None, default: Path | None) -> list[Path]:
    """Where to look: ``root`` alone when given (it must exist: a typo must not fall back
    silently to another copy), else ``$LOWRANK_DATA``, then ``default``."""
    if root is not None:
        if not Path(root).exists():
            raise FileNotFoundError(f"root {str(root)!r} does not exist: pass an existing path")
        return [Path(root)]
    found = []
    if os.environ.get("LOWRANK_DATA"):
        env = Path(os.environ["LOWRANK_DATA"])
        if not env.exists():  # as for root: a typo must not fall back to another copy
            raise FileNotFoundError(
                f"LOWRANK_DATA={str(env)!r} does not exist: set it to an existing folder (or "
                "unset it to use the default location)"
            )
        found.append(env)
    if default is not None:
        found.append(default)
    return found


def _read_idx(path: Path, magic: int, sha256: str | None = None) -> np.ndarray:
    """Array stored in a gzipped IDX file (big-endian header: magic, then one int per dim),
    checked against the SHA-256 of its decompressed content when ``sha256`` is given."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise ValueError(
            f"{path}: not a complete gzip file ({type(e).__name__}: {e}); the file is corrupt "
            "or truncated: replace it (e.g. reinstall dataset-fashion-mnist)"
        ) from e
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(
            f"{path}: content differs from the published Fashion-MNIST (SHA-256 "
            f"{hashlib.sha256(data).hexdigest()[:16]}..., expected {sha256[:16]}...); replace "
            "the file, or pass verify=False to read files of your own"
        )
    ndim = magic & 0xFF
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: {len(data)} bytes, shorter than an IDX header ({4 + 4 * ndim})")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: IDX magic number {found}, expected {magic}")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {body.size} bytes of data for shape {dims}")
    return body.reshape(dims)


def load_fashion_mnist(
    split: str = "train", root: str | Path | None = None, verify: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images and labels.

    Arguments:
        split: ``"train"`` (60000) or ``"test"`` (10000).
        root: an existing folder with the four ``*-ubyte.gz`` files; without it
            ``$LOWRANK_DATA``, else the Debian package's folder.
        verify: check the files against the published data's SHA-256 sums
            (``False`` reads IDX files of your own, such as a subset).

    Returns:
        ``(images, labels)``: ``(N, 28, 28)`` uint8 and ``(N,)`` int64.
    """
    if split not in _FASHION_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    image_name, label_name = _FASHION_FILES[split]
    searched = _candidates(root, FASHION_MNIST_DEBIAN)
    for folder in searched:
        if (folder / image_name).exists() and (folder / label_name).exists():
            sums = FASHION_MNIST_SHA256 if verify else {}
            images = _read_idx(folder / image_name, 2051, sums.get(image_name[:-3]))
            labels = _read_idx(folder / label_name, 2049, sums.get(label_name[:-3]))
            if len(images) != len(labels):
                raise ValueError(f"{folder}: {len(images)} images but {len(labels)} labels")
            labels = torch.from_numpy(labels.astype(np.int64))
            check_labels(labels, f"labels in {folder / label_name}", K=10)
            return torch.from_numpy(images.copy()), labels
    raise FileNotFoundError(
        f"Fashion-MNIST ({image_name}, {label_name}) not found in {[str(p) for p in searched]}. "
        "Run 'make setup' as root on Debian/Ubuntu (it installs the package "
        "dataset-fashion-mnist), or 'sudo apt-get install dataset-fashion-mnist', or put the "
        "four *-ubyte.gz files in a folder and set LOWRANK_DATA to it."
    )


class _NotCifar(pickle.UnpicklingError):
    """A pickle asked for a global that CIFAR-10's batches never hold."""


def _dtype(*args):
    dtype = np.dtype(*args)
    if dtype.hasobject:  # an object array would hold whatever the pickle builds
        raise _NotCifar(f"numpy.dtype {dtype} (Python objects)")
    return dtype


def _latin1(text, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as protocol-2 pickles of bytes call it (latin-1 only)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise _NotCifar(f"_codecs.encode(..., {encoding!r})")
    return codecs.encode(text, "latin1", errors)


def _numpy_global(module: str, name: str):
    """numpy's ``module.name`` (``numpy.core`` is numpy 2's ``numpy._core``)."""
    if module.startswith("numpy.core") and hasattr(np, "_core"):
        module = "numpy._core" + module[len("numpy.core") :]
    return getattr(importlib.import_module(module), name)


# Every global a CIFAR-10 python batch (a dict of bytes keys, a uint8 array, lists of ints and
# bytes) can ask for, however it was pickled: Python 2's protocol 2 (the published files),
# Python 3's protocol 2 (bytes through _codecs.encode) and protocols 4-5 (numpy's _frombuffer).
_CIFAR_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    *((f"numpy.{core}.multiarray", name) for core in ("core", "_core")
      for name in ("_reconstruct", "scalar")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
}  # fmt: skip


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10 batches only: any other global (a function that could run code, a
    class) is refused before it is imported."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise _NotCifar(f"{module}.{name}")
        if (module, name) == ("numpy", "dtype"):
            return _dtype
        if (module, name) == ("_codecs", "encode"):
            return _latin1
        return _numpy_global(module, name)


def unpickle_batch(blob: bytes, where: str) -> dict:
    """One CIFAR-10 batch from its pickled bytes (``where``: the file, for messages)."""
    try:
        return _CifarUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except _NotCifar as e:
        raise ValueError(
            f"{where}: not a CIFAR-10 batch: its pickle asks for {e}, which CIFAR-10's batches "
            "never hold (unpickling it could run code, so it was refused); replace the file "
            "with the one in the published cifar-10-python.tar.gz"
        ) from None
    except Exception as e:  # a corrupt pickle can fail anywhere in the unpickler
        raise ValueError(
            f"{where}: not a readable CIFAR-10 batch ({type(e).__name__}: {e}); replace it "
            "with the one in the published cifar-10-python.tar.gz (download it again)"
        ) from e


#: The largest CIFAR-10 python batch read: the real ones hold 30,730,000 bytes of pixels and
#: weigh 31,035,704 bytes pickled; a member above this is refused before it is expanded.
CIFAR_BATCH_BYTES = 32 * 2**20


def _check_batch_size(size: int, where: str) -> None:
    if size > CIFAR_BATCH_BYTES:
        raise ValueError(
            f"{where} holds {size:,} bytes, more than a CIFAR-10 batch ({CIFAR_BATCH_BYTES:,} at "
            "most): not CIFAR-10's python archive; download cifar-10-python.tar.gz again"
        )


def _cifar_batches(source: Path, names: list[str]) -> list[dict]:
    """The pickled batches ``names`` of the archive or folder ``source``, read with
    :class:`_CifarUnpickler` (numpy arrays and plain containers only) and checked: a dict with
    ``(N, 3072)`` uint8 ``data`` and ``N`` integer ``labels``."""
    blobs = {}
    try:
        if source.is_file():
            with tarfile.open(source, "r:gz") as tar:
                members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
                missing = [n for n in names if n not in members]
                if missing:
                    raise ValueError(f"{source}: the archive has no {missing} (is it CIFAR-10?)")
                for n in names:
                    where = f"{source} (member {members[n].name})"
                    _check_batch_size(members[n].size, where)
                    blobs[where] = tar.extractfile(members[n]).read(CIFAR_BATCH_BYTES + 1)
        else:
            for n in names:
                with open(source / n, "rb") as f:
                    blobs[str(source / n)] = f.read(CIFAR_BATCH_BYTES + 1)
        for where, blob in blobs.items():  # a size header can lie: what was read counts
            _check_batch_size(len(blob), where)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        raise ValueError(
            f"{source}: not a readable CIFAR-10 python archive ({type(e).__name__}: {e}); "
            "download cifar-10-python.tar.gz again"
        ) from e
    batches = []
    for where, blob in blobs.items():
        batch = unpickle_batch(blob, where)
        if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
            raise ValueError(f"{where}: no data and labels (is it a CIFAR-10 batch?)")
        pixels, labels = batch[b"data"], batch[b"labels"]
        if not isinstance(pixels, np.ndarray) or pixels.ndim != 2 or pixels.shape[1] != 3072:
            shape = getattr(pixels, "shape", type(pixels).__name__)
            raise ValueError(f"{where}: data must be (N, 3072) pixels, got {shape}")
        if pixels.dtype != np.uint8:
            raise ValueError(
                f"{where}: data must be uint8 pixels (0 .. 255) as in the published batches, "
                f"got {pixels.dtype}; replace the file"
            )
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(
                f"{where}: labels must be a list of integer classes, got "
                f"{labels.dtype} {labels.ravel()[:3].tolist()}...; replace the file"
            )
        if len(labels) != len(pixels):
            raise ValueError(
                f"{where}: {len(pixels)} images but {len(labels)} labels; replace the file"
            )
        batches.append({b"data": pixels, b"labels": labels})
    return batches


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
                labels = np.concatenate([b[b"labels"] for b in batches])
                labels = torch.from_numpy(labels.astype(np.int64))
                check_labels(labels, f"labels in {source}", K=10)
                return torch.from_numpy(images), labels
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
    K = check_labels(labels)
    size = check_count(size, "size")
    if size > len(labels):
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


def flip_labels(
    labels: torch.Tensor, rate: float, generator: torch.Generator, K: int | None = None
) -> torch.Tensor:
    """A copy of ``labels`` with ``round(rate * N)`` of them, chosen at random, replaced by a
    class drawn uniformly from the ``K - 1`` other classes (symmetric label noise: every wrong
    label is equally likely, none is flipped back to itself).

    Arguments:
        labels: ``(N,)`` int64 labels in ``0 .. K-1``.
        rate: the share of labels to flip, in [0, 1].
        generator: seeds which labels flip and to what.
        K: the number of classes (default: ``max + 1``).
    """
    K = check_labels(labels, K=K)
    if K < 2:
        raise ValueError("flipping a label needs at least 2 classes")
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must lie in [0, 1], got {rate}")
    flipped = labels.clone()
    rows = torch.randperm(len(labels), generator=generator)[: round(rate * len(labels))]
    # adding 1 .. K-1 modulo K lands on each other class with probability 1 / (K - 1)
    shift = torch.randint(1, K, (len(rows),), generator=generator)
    flipped[rows] = (labels[rows] + shift) % K
    return flipped


def to_model_range(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 images as a diffusion model's input: float32 in [-1, 1], ``(N, C, size, size)``.

    Arguments:
        images: ``(N, H, W)`` (one channel, as Fashion-MNIST) or ``(N, C, H, W)`` uint8.
        size: side after downsampling by area averaging (``adaptive_avg_pool2d``: 28 -> 16
            averages overlapping windows of 1.75 pixels); ``None`` keeps the native size.
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise TypeError(f"images must be a uint8 tensor, got {getattr(images, 'dtype', images)}")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W) or (N, C, H, W), got {tuple(images.shape)}")
    x = images.float() / 127.5 - 1
    if size is not None:
        size = check_count(size, "size")
        if size > min(images.shape[-2:]):
            raise ValueError(f"size must be at most the native {tuple(images.shape[-2:])}")
        x = torch.nn.functional.adaptive_avg_pool2d(x, size)
    return x.contiguous()


def overlay(
    images: torch.Tensor, labels: torch.Tensor, delta: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Images with class-agnostic detail added: row ``a`` becomes
    :math:`(I_a + \delta I_b) / (1 + \delta)`, where ``b`` is a row of *another* class, drawn
    once per row, uniformly among those rows, with ``seed``.

    The added image lies (approximately) in another class's subspace, with ``delta`` times the
    amplitude of the image's own: the :math:`\delta` term of the paper's Assumption 1, made by
    hand. The convex weights keep images in the range they came in (``[-1, 1]`` in, ``[-1, 1]``
    out), and the label stays ``a``'s. ``delta = 0`` returns the images unchanged.

    Arguments:
        images: ``(N, ...)`` floating-point images (the model's range, or any other).
        labels: ``(N,)`` class indices, at least two classes.
        delta: the overlay's amplitude relative to the image's own, in [0, 1) (at 1 the two
            classes weigh the same and the label is ambiguous).
        seed: seeds the partners (the transform's own seed: a data set's overlay does not
            change with the network trained on it).

    Returns:
        The overlaid images (float, ``images``' shape and dtype) and ``(N,)`` int64 indices of
        each row's partner ``b``.
    """
    if not isinstance(images, torch.Tensor) or not torch.is_floating_point(images):
        raise TypeError(
            f"images must be a floating-point tensor (e.g. to_model_range's output), got "
            f"{getattr(images, 'dtype', type(images).__name__)}"
        )
    K = check_labels(labels)
    if len(labels) != len(images):
        raise ValueError(f"images has {len(images)} rows but labels {len(labels)}")
    broken = torch.nonzero(~torch.isfinite(images.flatten(1)).all(1)).flatten()
    if len(broken):
        raise ValueError(
            f"images must be finite: rows {broken[:10].tolist()} hold NaN or inf, and would "
            "spread to every row that draws them as a partner"
        )
    if K < 2:
        raise ValueError("an overlay of another class needs at least 2 classes in labels")
    delta = check_real(delta, "delta", 0.0, None)
    if delta >= 1:
        raise ValueError(f"delta must lie in [0, 1) (at 1 the label is ambiguous), got {delta}")
    seed = check_count(seed, "seed", minimum=0)
    gen = torch.Generator().manual_seed(seed)
    partner = torch.empty(len(labels), dtype=torch.long)
    for k in range(K):
        rows = torch.nonzero(labels == k).flatten()
        others = torch.nonzero(labels != k).flatten()
        partner[rows] = others[torch.randint(len(others), (len(rows),), generator=gen)]
    if delta == 0:
        return images.clone(), partner
    return (images + delta * images[partner]) / (1 + delta), partner
