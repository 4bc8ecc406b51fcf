import gzip
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from lowrank import data


def _write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28))
    labels = np.array([0, 3, 9, 1, 1, 2, 5])
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, 2051)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels, 2049)
    x, y = data.load_fashion_mnist("test", root=tmp_path, verify=False)
    assert x.dtype == torch.uint8 and x.shape == (7, 28, 28)
    np.testing.assert_array_equal(x.numpy(), images)
    assert y.tolist() == labels.tolist() and y.dtype == torch.int64


def test_fashion_mnist_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_DEBIAN", tmp_path / "nowhere")
    monkeypatch.delenv("LOWRANK_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        data.load_fashion_mnist("train", root=tmp_path)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((2, 28, 28)), 2049)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(2), 2049)
    with pytest.raises(ValueError, match="magic"):
        data.load_fashion_mnist("train", root=tmp_path, verify=False)
    with pytest.raises(ValueError, match="split"):
        data.load_fashion_mnist("valid")


@pytest.mark.skipif(not data.FASHION_MNIST_DEBIAN.exists(), reason="make setup installs it")
def test_fashion_mnist_from_the_debian_package():
    x, y = data.load_fashion_mnist("train")
    assert x.shape == (60000, 28, 28)
    assert torch.bincount(y).tolist() == [6000] * 10
    assert data.load_fashion_mnist("test")[0].shape == (10000, 28, 28)


def _fake_cifar(tmp_path, n_per_batch=4):
    rng = np.random.default_rng(1)
    archive = tmp_path / "cifar-10-python.tar.gz"
    batches = {}
    with tarfile.open(archive, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            batch = {b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                     b"labels": rng.integers(0, 10, n_per_batch).tolist()}  # fmt: skip
            batches[name] = batch
            raw = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return archive, batches


def test_cifar10_from_archive_and_folder(tmp_path):
    archive, batches = _fake_cifar(tmp_path)
    x, y = data.load_cifar10("train", root=archive)
    assert x.shape == (20, 3, 32, 32) and y.shape == (20,)
    np.testing.assert_array_equal(x[:4].reshape(4, -1).numpy(), batches["data_batch_1"][b"data"])
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    xt, yt = data.load_cifar10("test", root=tmp_path / "unpacked")
    assert yt.tolist() == batches["test_batch"][b"labels"] and xt.shape == (4, 3, 32, 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="LOWRANK_DATA"):
        data.load_cifar10("train", root=tmp_path / "empty")


def test_balanced_subset_sizes_and_seed():
    labels = torch.arange(1000) % 10
    idx = data.balanced_subset(labels, 256, torch.Generator().manual_seed(0))
    counts = torch.bincount(labels[idx], minlength=10)
    assert len(idx) == 256 and len(idx.unique()) == 256
    assert counts.min() == 25 and counts.max() == 26 and counts.sum() == 256
    again = data.balanced_subset(labels, 256, torch.Generator().manual_seed(0))
    assert torch.equal(idx, again)
    with pytest.raises(ValueError, match="size"):
        data.balanced_subset(labels, 0)
    with pytest.raises(ValueError, match="examples"):
        data.balanced_subset(torch.tensor([0, 0, 0, 1]), 4)


def test_to_model_range_scales_and_pools():
    from lowrank.data import to_model_range

    images = torch.tensor([[[0, 255], [51, 204]]], dtype=torch.uint8)  # (1, 2, 2)
    x = to_model_range(images)
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    assert x.flatten().tolist() == pytest.approx([-1.0, 1.0, -0.6, 0.6], abs=1e-6)
    pooled = to_model_range(images, size=1)
    assert pooled.item() == pytest.approx(x.mean().item(), abs=1e-7)
    rgb = torch.randint(0, 256, (3, 3, 4, 4), dtype=torch.uint8)
    assert to_model_range(rgb, 2).shape == (3, 3, 2, 2)
    with pytest.raises(TypeError, match="uint8"):
        to_model_range(images.float())
    with pytest.raises(ValueError, match="at most the native"):
        to_model_range(images, size=3)


def test_flip_labels_flips_the_share_asked_to_other_classes_uniformly():
    K, N = 10, 20_000
    labels = torch.arange(N) % K
    for rate in (0.0, 0.2, 0.8, 1.0):
        flipped = data.flip_labels(labels, rate, torch.Generator().manual_seed(1))
        changed = flipped != labels
        # exactly round(rate N) rows change and none is "flipped" to its own class
        assert int(changed.sum()) == round(rate * N)
    flipped = data.flip_labels(labels, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(flipped, data.flip_labels(labels, 0.5, torch.Generator().manual_seed(1)))
    # every wrong class equally likely: offsets 1 .. K-1 each about 1/(K-1) of the flips
    offsets = ((flipped - labels) % K)[flipped != labels]
    counts = torch.bincount(offsets, minlength=K).double()
    expected = len(offsets) / (K - 1)
    assert float(((counts[1:] - expected).abs() / expected**0.5).max()) < 4  # binomial z
    # and the flipped rows are spread over the classes, not taken from a few
    per_class = torch.bincount(labels[flipped != labels], minlength=K).double()
    assert float(per_class.min()) > 0.8 * len(offsets) / K
    with pytest.raises(ValueError, match="rate must lie in"):
        data.flip_labels(labels, 1.5, torch.Generator())
    with pytest.raises(ValueError, match="at least 2 classes"):
        data.flip_labels(torch.zeros(5, dtype=torch.long), 0.5, torch.Generator())


def test_overlay_adds_a_seeded_image_of_another_class():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(300, 1, 4, 4, generator=gen, dtype=torch.float64) * 2 - 1
    y = torch.arange(300) % 3
    out, partner = data.overlay(x, y, 0.5, seed=7)
    # independent computation: row by row, from the returned partners
    for a in range(len(x)):
        b = int(partner[a])
        assert y[b] != y[a]
        expected = (x[a] + 0.5 * x[b]) / 1.5
        torch.testing.assert_close(out[a], expected, rtol=0, atol=1e-15)
    assert out.abs().max() <= 1 and out.dtype == x.dtype
    # partners are uniform over the other classes' rows: each other class about half the time
    share = (y[partner[y == 0]] == 1).double().mean().item()
    assert abs(share - 0.5) < 0.15
    again, same = data.overlay(x, y, 0.25, seed=7)
    assert torch.equal(same, partner)  # the partners depend on the seed only
    assert not torch.equal(data.overlay(x, y, 0.5, seed=8)[1], partner)
    plain, _ = data.overlay(x, y, 0.0, seed=7)
    assert torch.equal(plain, x) and plain is not x


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"delta": 1.0}, ValueError, r"delta must lie in \[0, 1\)"),
        ({"delta": -0.1}, ValueError, "delta must lie in"),
        ({"delta": float("nan")}, ValueError, "delta must be finite"),
        ({"labels": torch.zeros(6, dtype=torch.long)}, ValueError, "at least 2 classes"),
        ({"labels": torch.arange(5) % 2}, ValueError, "images has 6 rows but labels 5"),
        ({"images": torch.zeros(6, 2, dtype=torch.uint8)}, TypeError, "floating-point"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_overlay_refuses_bad_input(kwargs, error, fragment):
    args = {"images": torch.zeros(6, 2), "labels": torch.arange(6) % 2, "delta": 0.5, **kwargs}
    with pytest.raises(error, match=fragment):
        data.overlay(**args)
