"""Bad input for the data loaders (:mod:`lowrank.data`): CIFAR-10 batches that would run code
when unpickled, that hold the wrong numbers of labels, pixels that are not bytes or labels that
are not classes, and a ``$LOWRANK_DATA`` that names no folder. The same table as
``tests/test_bad_inputs.py``: each case is ``(call, expected)``; ``call(tmp_path)`` runs the
API, ``expected`` is ``(ExceptionType, "message fragment")`` or a function that checks the
returned value. A new public function of the module gets rows here.
"""

import builtins
import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_input_cases import check_case

from lowrank import data


class _Touch:
    """A pickle that runs code when loaded: ``Path.touch`` creates the marker file."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


class _Mkdir:
    """The same through a builtin module function: ``os.mkdir`` makes the marker folder."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (os.mkdir, (self.target,))


class _Open:
    """And through ``builtins.open``, which creates the marker file it opens for writing."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (builtins.open, (self.target, "w"))


class _Python2Pickler(pickle._Pickler):
    """Pickles as Python 2 did for the published batches: protocol 2, every ``bytes`` and
    ``str`` as a Python 2 ``str`` (BINSTRING), ``numpy.core`` module names."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def _python2_pickle(obj) -> bytes:
    out = io.BytesIO()
    _Python2Pickler(out, protocol=2).dump(obj)
    return out.getvalue().replace(b"cnumpy._core.", b"cnumpy.core.")


def _batch(n=4, labels=None, pixels=None, seed=0):
    """A batch as the published files hold it: bytes keys, uint8 data, a list of int labels."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"testing batch 1 of 1",
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8) if pixels is None else pixels,
        b"labels": rng.integers(0, 10, n).tolist() if labels is None else labels,
        b"filenames": [f"image_{i}.png".encode() for i in range(n)],
    }


def _folder(tmp, blob, name="test_batch"):
    """A ``cifar-10-batches-py`` folder whose ``name`` holds ``blob``."""
    folder = tmp / "cifar-10-batches-py"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(blob)
    return folder


def _archive(tmp, blob, name="test_batch"):
    archive = tmp / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    return archive


def _test_split(tmp, batch, protocol=None, where=_folder):
    blob = _python2_pickle(batch) if protocol == "python2" else pickle.dumps(batch, protocol)
    return data.load_cifar10("test", root=where(tmp, blob))


def _malicious(tmp, payload, where=_folder):
    """A test_batch whose labels, when unpickled, create ``tmp / "pwned"``; the load must be
    refused and the marker must not exist."""
    marker = tmp / "pwned"
    try:
        _test_split(tmp, _batch(labels=payload(marker)), where=where)
    finally:
        assert not marker.exists(), "loading the batch ran its code"


def _payload_is_live(tmp, payload):
    """The same bytes through a plain ``pickle.loads``: the marker is created, so the refusal
    above is what keeps it away."""
    marker = tmp / "pwned"
    pickle.loads(pickle.dumps(_batch(labels=payload(marker))), encoding="bytes")
    return marker.exists()


def _object_array(tmp):
    pixels = np.empty((4, 3072), dtype=object)
    pixels[:] = 0
    return _test_split(tmp, _batch(pixels=pixels))


def _truncated(tmp):
    return data.load_cifar10("test", root=_folder(tmp, pickle.dumps(_batch())[:-40]))


def _fashion(tmp):
    """The test split of Fashion-MNIST, 3 blank images, in ``tmp``."""
    for name, magic, shape in (("t10k-images-idx3-ubyte.gz", 2051, (3, 28, 28)),
                               ("t10k-labels-idx1-ubyte.gz", 2049, (3,))):  # fmt: skip
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)
        with gzip.open(tmp / name, "wb") as f:
            f.write(header + bytes(int(np.prod(shape))))
    return tmp


def _with_data_env(value, call):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOWRANK_DATA", str(value))
        return call()


def _loads_like(batch, name="test_batch"):
    """A checker: the loaded split is ``batch``'s pixels and labels, as uint8 and int64."""

    def check(out):
        x, y = out
        return (
            x.dtype.is_floating_point is False
            and str(x.dtype) == "torch.uint8"
            and np.array_equal(x.reshape(len(x), -1).numpy(), batch[b"data"])
            and y.tolist() == list(batch[b"labels"])
            and str(y.dtype) == "torch.int64"
        )

    return check


GOOD = _batch()

CASES = {
    # a few hundred KiB of gzip that would expand to 40 MiB: refused by its size, unread
    "cifar archive member larger than a batch": (
        lambda t: data.load_cifar10("test", root=_archive(t, bytes(40 * 2**20))),
        (ValueError, "more than a CIFAR-10 batch"),
    ),
    "cifar folder file larger than a batch": (
        lambda t: data.load_cifar10("test", root=_folder(t, bytes(33 * 2**20))),
        (ValueError, "more than a CIFAR-10 batch"),
    ),
    "overlay of a NaN image": (
        lambda t: data.overlay(
            torch.cat([torch.full((1, 2, 2), float("nan")), torch.zeros(5, 2, 2)]),
            torch.tensor([0, 1, 0, 1, 0, 1]),
            0.5,
        ),
        (ValueError, "images must be finite"),
    ),
    # --- code in a pickle: refused, and the marker never made
    "test_batch that touches a file": (
        lambda t: _malicious(t, _Touch),
        (ValueError, "test_batch: not a CIFAR-10 batch: its pickle asks for pathlib"),
    ),
    "test_batch that makes a folder (os.mkdir)": (
        lambda t: _malicious(t, _Mkdir),
        (ValueError, "asks for posix.mkdir, which CIFAR-10's batches never hold"),
    ),
    "test_batch that opens a file (builtins.open)": (
        lambda t: _malicious(t, _Open),
        (ValueError, "asks for io.open"),
    ),
    "test_batch in the archive that touches a file": (
        lambda t: _malicious(t, _Touch, where=_archive),
        (ValueError, "(member cifar-10-batches-py/test_batch): not a CIFAR-10 batch"),
    ),
    "Path.touch payload is live under pickle.loads": (
        lambda t: _payload_is_live(t, _Touch),
        lambda made: made,
    ),
    "os.mkdir payload is live under pickle.loads": (
        lambda t: _payload_is_live(t, _Mkdir),
        lambda made: made,
    ),
    "builtins.open payload is live under pickle.loads": (
        lambda t: _payload_is_live(t, _Open),
        lambda made: made,
    ),
    "object array": (_object_array, (ValueError, "numpy.dtype object (Python objects)")),
    "truncated pickle": (_truncated, (ValueError, "test_batch: not a readable CIFAR-10 batch")),
    # --- legitimate batches, however they were pickled
    "a batch pickled by Python 2": (lambda t: _test_split(t, GOOD, "python2"), _loads_like(GOOD)),
    "a batch pickled with protocol 2": (lambda t: _test_split(t, GOOD, 2), _loads_like(GOOD)),
    "a batch pickled with protocol 5": (lambda t: _test_split(t, GOOD, 5), _loads_like(GOOD)),
    "a batch in the archive": (
        lambda t: _test_split(t, GOOD, where=_archive),
        _loads_like(GOOD),
    ),
    "numpy integer labels": (
        lambda t: _test_split(t, _batch(labels=list(np.arange(4))), 2),
        lambda out: out[1].tolist() == [0, 1, 2, 3],
    ),
    # --- batches that are not CIFAR-10's shape
    "10 images, 9 labels": (
        lambda t: _test_split(t, _batch(10, labels=list(range(9)))),
        (ValueError, "test_batch: 10 images but 9 labels"),
    ),
    "float pixels": (
        lambda t: _test_split(t, _batch(pixels=np.zeros((4, 3072)))),
        (
            ValueError,
            "data must be uint8 pixels (0 .. 255) as in the published batches, got float64",
        ),
    ),
    "int64 pixels": (
        lambda t: _test_split(t, _batch(pixels=np.zeros((4, 3072), np.int64))),
        (ValueError, "data must be uint8 pixels"),
    ),
    "pixels as a list": (
        lambda t: _test_split(t, _batch(pixels=[[0] * 3072] * 4)),
        (ValueError, "data must be (N, 3072) pixels, got list"),
    ),
    "label 0.5": (
        lambda t: _test_split(t, _batch(labels=[0, 0.5, 1, 2])),
        (ValueError, "labels must be a list of integer classes, got float64"),
    ),
    "label text": (
        lambda t: _test_split(t, _batch(labels=[b"cat", b"dog", b"cat", b"dog"])),
        (ValueError, "labels must be a list of integer classes"),
    ),
    "label 10": (
        lambda t: _test_split(t, _batch(labels=[0, 1, 2, 10])),
        (ValueError, "must lie in 0 .. 9"),
    ),
    "a list instead of a dict": (
        lambda t: data.load_cifar10("test", root=_folder(t, pickle.dumps([1, 2]))),
        (ValueError, "test_batch: no data and labels"),
    ),
    # --- $LOWRANK_DATA
    "LOWRANK_DATA names no folder (Fashion-MNIST)": (
        lambda t: _with_data_env(t / "nonexistent", lambda: data.load_fashion_mnist("test")),
        (FileNotFoundError, "nonexistent' does not exist: set it to an existing folder"),
    ),
    "LOWRANK_DATA names no folder (CIFAR-10)": (
        lambda t: _with_data_env(t / "nonexistent", lambda: data.load_cifar10("test")),
        (FileNotFoundError, "LOWRANK_DATA="),
    ),
    "LOWRANK_DATA names a folder": (
        lambda t: _with_data_env(
            _fashion(t), lambda: data.load_fashion_mnist("test", verify=False)
        ),
        lambda out: out[0].shape == (3, 28, 28),
    ),
    "root given: a bad LOWRANK_DATA is not read": (
        lambda t: _with_data_env(
            t / "nonexistent",
            lambda: data.load_fashion_mnist("test", root=_fashion(t), verify=False),  # fmt: skip
        ),
        lambda out: out[1].tolist() == [0, 0, 0],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path):
    check_case(name, *CASES[name], tmp_path)


@pytest.mark.parametrize("loader", ["restricted", "plain"])
def test_only_the_restricted_unpickler_keeps_the_payload_from_running(loader, tmp_path):
    """One malicious batch through both loaders: the package's refuses it and nothing is made;
    a plain ``pickle.loads`` (what the loader did before) runs it."""
    marker = tmp_path / "pwned"
    blob = pickle.dumps(_batch(labels=_Touch(marker)))
    if loader == "restricted":
        with pytest.raises(ValueError, match="not a CIFAR-10 batch"):
            data.unpickle_batch(blob, "test_batch")
        assert not marker.exists()
    else:
        pickle.loads(blob, encoding="bytes")
        assert marker.exists()
