"""Bad input across the public API: each case ends in a clear error (type and a fragment of the
message that names the argument or file) or in the right result.

Every case is ``(call, expected)``: ``call(tmp_path)`` runs the API; ``expected`` is
``(ExceptionType, "message fragment")`` or a function that checks the returned value.
"""

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_input_cases import check_case

from lowrank import data
from lowrank._checks import row_sigma
from lowrank.measure import probes, snr, stats
from lowrank.nets.train import (
    DAERecipe,
    Optimization,
    fit,
    load_checkpoint,
    save_checkpoint,
    train_dae,
)
from lowrank.theory import closed_forms
from lowrank.theory.denoisers import EmpiricalDenoiser, LowRankDAE, MixtureDenoiser
from lowrank.theory.mixtures import LowRankMixture, MoLRG

MIX = MoLRG(12, 3, 2, 0.3, seed=0)
NAN, INF = float("nan"), float("inf")


def _x(B=4, n=12, dtype=torch.float32):
    return torch.randn(B, n, generator=torch.Generator().manual_seed(0), dtype=dtype)


def _nan_basis():
    bases = [U.clone() for U in MIX.class_bases]
    bases[0][0, 0] = NAN
    return bases


def _idx_bytes(array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _fashion(tmp, images=b"", labels=b"", raw=False):
    """Write the test split's two files: gzipped unless ``raw``."""
    for name, payload in (("t10k-images-idx3-ubyte.gz", images), ("t10k-labels-idx1-ubyte.gz",
                                                                     labels)):  # fmt: skip
        if raw:
            (tmp / name).write_bytes(payload)
        else:
            with gzip.open(tmp / name, "wb") as f:
                f.write(payload)
    return tmp


def _good_images(N=3):
    return _idx_bytes(np.zeros((N, 28, 28)), 2051)


def _truncated_gzip(tmp):
    _fashion(tmp, _good_images(), _idx_bytes(np.zeros(3), 2049))
    path = tmp / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    return data.load_fashion_mnist("test", root=tmp, verify=False)


def _cifar_archive(tmp, names):
    archive = tmp / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in names:
            blob = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return archive


class _WritesAFile:
    """A pickle that runs code when loaded: it creates a file named ``pwned``."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def _malicious_checkpoint(tmp):
    path = tmp / "evil.pt"
    torch.save({"config": {}, "payload": _WritesAFile(tmp / "pwned")}, path)
    try:
        load_checkpoint(path, {})
    finally:
        assert not (tmp / "pwned").exists(), "loading the checkpoint ran its code"


def _trained(tmp, **kwargs):
    """Train a tiny DAE for 2 epochs with a checkpoint, then call train_dae again on it with
    ``kwargs`` changed."""
    x0 = MIX.sample(64, torch.Generator().manual_seed(0), dtype=torch.float32)[0]
    path = tmp / "dae.pt"
    train_dae(LowRankDAE(12, 3, 2, 0.3), x0, DAERecipe(2), checkpoint=path, progress=False)
    call = {"dae": LowRankDAE(12, 3, 2, 0.3), "x0": x0, "recipe": DAERecipe(2), "checkpoint": path}
    return train_dae(**(call | {"progress": False} | kwargs))


def _finished_run_is_not_redone(tmp):
    """A second call on a finished run trains nothing: same losses, same weights, same file."""
    x0 = MIX.sample(64, torch.Generator().manual_seed(0), dtype=torch.float32)[0]
    path, first = tmp / "dae.pt", LowRankDAE(12, 3, 2, 0.3)
    losses = train_dae(first, x0, DAERecipe(2), checkpoint=path, progress=False)
    written = path.stat().st_mtime_ns
    again = LowRankDAE(12, 3, 2, 0.3, generator=torch.Generator().manual_seed(9))
    return (
        train_dae(again, x0, DAERecipe(2), checkpoint=path, progress=False) == losses
        and torch.equal(again.raw_U, first.raw_U)
        and path.stat().st_mtime_ns == written
    )


def _random_bytes_checkpoint(tmp):
    path = tmp / "junk.pt"
    path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)))
    load_checkpoint(path, {})


def _truncated_checkpoint(tmp):
    path = tmp / "dae.pt"
    save_checkpoint({"config": {}, "w": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:50])
    load_checkpoint(path, {})


def _failed_save_keeps_old_file(tmp):
    path = tmp / "state.pt"
    save_checkpoint({"config": {"run": 1}}, path)
    with pytest.raises(Exception):  # noqa: B017  (a lambda cannot be pickled; any error will do)
        save_checkpoint({"config": {"run": 2}, "bad": lambda: 0}, path)
    return load_checkpoint(path, {"run": 1}), sorted(p.name for p in tmp.iterdir())


def _eye_bases():
    """Two orthonormal (12, 2) bases: coordinates 0-1 and 2-3."""
    eye = torch.eye(12, dtype=torch.float64)
    return [eye[:, :2], eye[:, 2:4]]


def _labels(*values):
    return torch.tensor(values)


CASES = {
    # mixtures: parameters
    "pi NaN": (
        lambda t: MoLRG(12, 3, 2, 0.3, pi=[NAN, 0.5, 0.5]),
        (ValueError, "pi must be finite"),
    ),
    "pi wrong length": (lambda t: MoLRG(12, 3, 2, 0.3, pi=[0.5, 0.5]), (ValueError, "3 entries")),
    "pi negative": (lambda t: MoLRG(12, 3, 2, 0.3, pi=[-0.1, 0.6, 0.5]), (ValueError, "positive")),
    "pi list kept in float64": (
        lambda t: MoLRG(12, 3, 2, 0.3, pi=[0.1, 0.2, 0.7]).pi,
        lambda pi: pi.dtype == torch.float64 and pi.tolist() == [0.1, 0.2, 0.7],
    ),
    "pi strings": (lambda t: MoLRG(12, 3, 2, 0.3, pi=["a", "b", "c"]), (TypeError, "pi must be")),
    "delta above 1": (lambda t: MoLRG(12, 3, 2, 1.5), (ValueError, "delta must lie in (0, 1)")),
    "delta NaN": (lambda t: MoLRG(12, 3, 2, NAN), (ValueError, "delta must lie in (0, 1)")),
    "K zero": (lambda t: MoLRG(12, 0, 2, 0.3), (ValueError, "K must be >= 1")),
    "d fractional": (lambda t: MoLRG(12, 3, 2.5, 0.3), (TypeError, "d must be an integer")),
    "n below K d": (lambda t: MoLRG(5, 3, 2, 0.3), (ValueError, "need n >= K * d")),
    "from_bases empty": (lambda t: MoLRG.from_bases([], 0.3), (ValueError, "bases is empty")),
    "basis with NaN": (lambda t: MoLRG.from_bases(_nan_basis(), 0.3), (ValueError, "finite")),
    "basis not orthonormal": (
        lambda t: MoLRG.from_bases([2 * U for U in MIX.class_bases], 0.3),
        (ValueError, "orthonormal columns"),
    ),
    "means inf": (
        lambda t: MoLRG.from_bases(MIX.class_bases, 0.3, means=torch.full((3, 12), INF)),
        (ValueError, "means must be finite"),
    ),
    "means wrong shape": (
        lambda t: MoLRG.from_bases(MIX.class_bases, 0.3, means=torch.zeros(3, 5)),
        (ValueError, "means must have shape (3, 12)"),
    ),
    "variances negative": (
        lambda t: LowRankMixture(None, None, MIX.class_bases, [[1, 1], [1, -1], [1, 1]]),
        (ValueError, "variances[1] must be 2 positive numbers"),
    ),
    "variances NaN": (
        lambda t: LowRankMixture(None, None, MIX.class_bases, [[1, 1], [1, NAN], [1, 1]]),
        (ValueError, "variances[1] must be finite"),
    ),
    "variances list kept in float64": (
        lambda t: LowRankMixture(None, None, MIX.class_bases, [[0.1, 1]] * 3).variances[0],
        lambda lam: lam.tolist() == [0.1, 1.0],
    ),
    "no components": (
        lambda t: LowRankMixture(None, None, [], []),
        (ValueError, "bases is empty"),
    ),
    "overlap angle zero": (lambda t: MoLRG.overlapping(12, 2, 0.3, 0), (ValueError, "angle_deg")),
    # mixtures: sampling
    "sample zero": (
        lambda t: MIX.sample(0),
        lambda out: (
            out[0].shape == (0, 12) and out[1].shape == (0,) and out[1].dtype == torch.long
        ),
    ),
    "sample negative": (lambda t: MIX.sample(-1), (ValueError, "N must be >= 0")),
    "sample fractional": (lambda t: MIX.sample(2.5), (TypeError, "N must be an integer")),
    # denoisers: inputs
    "mixture denoiser of a tensor": (
        lambda t: MixtureDenoiser(torch.eye(3)),
        (TypeError, "mix must be a LowRankMixture"),
    ),
    "x_t wrong width": (lambda t: MixtureDenoiser(MIX)(_x(n=11), 0.3), (ValueError, "(B, 12)")),
    "x_t integer": (
        lambda t: MixtureDenoiser(MIX)(torch.zeros(2, 12, dtype=torch.long), 0.3),
        (TypeError, "x_t must be floating point"),
    ),
    "x_t a list": (lambda t: MixtureDenoiser(MIX)([[0.0] * 12], 0.3), (TypeError, "torch.Tensor")),
    "sigma zero": (lambda t: MixtureDenoiser(MIX)(_x(), 0.0), (ValueError, "finite and > 0")),
    "sigma NaN": (lambda t: MixtureDenoiser(MIX)(_x(), NAN), (ValueError, "finite and > 0")),
    "sigma row negative": (
        lambda t: MixtureDenoiser(MIX)(_x(), torch.tensor([0.1, 0.2, -0.1, 0.3])),
        (ValueError, "finite and > 0"),
    ),
    "sigma row wrong length": (
        lambda t: MixtureDenoiser(MIX)(_x(), torch.ones(3)),
        (ValueError, "a float or a (4,) tensor"),
    ),
    "sigma integer tensor": (
        lambda t: MixtureDenoiser(MIX)(_x(), torch.ones(4, dtype=torch.long)),
        (TypeError, "sigma must be floating point"),
    ),
    "sigma^2 underflows in float32": (
        lambda t: MixtureDenoiser(MIX)(_x(), 1e-25),
        (ValueError, "sigma must lie in [3.3e-10, 4.3e+09] in torch.float32"),
    ),
    "sigma^2 underflows in float64": (
        lambda t: MixtureDenoiser(MIX)(_x(dtype=torch.float64), 1e-160),
        (ValueError, "sigma must lie in [1.2e-77"),
    ),
    "sigma^2 overflows in float32": (
        lambda t: LowRankDAE(12, 3, 2, 0.3)(_x(), 1e20),
        (ValueError, "float64 inputs allow"),
    ),
    "sigma not rounded in bfloat16": (
        lambda t: row_sigma(0.3, _x(dtype=torch.bfloat16)),
        lambda s: s.dtype == torch.float32 and s.shape == (4, 1) and s[0, 0] == torch.tensor(0.3),
    ),
    "sigma out of float32 range reported as such": (
        lambda t: row_sigma(1e-50, _x()),
        (ValueError, "sigma must lie in [3.3e-10"),
    ),
    "half-precision sigmas computed in float32": (
        lambda t: closed_forms.snr_approx(3, 5, 0.2, torch.tensor([0.3], dtype=torch.bfloat16)),
        lambda snr: (
            snr.dtype == torch.float32
            and abs(snr.item() - closed_forms.snr_approx(3, 5, 0.2, [0.30078125]).item()) < 1e-4
        ),
    ),
    "empirical denoiser in bfloat16": (
        lambda t: EmpiricalDenoiser(_x(10).bfloat16())(_x(3).bfloat16(), 0.5),
        lambda out: (
            out.dtype == torch.bfloat16
            and (
                out.float()
                - EmpiricalDenoiser(_x(10).bfloat16().float())(_x(3).bfloat16().float(), 0.5)
            )
            .abs()
            .max()
            < 0.02
        ),
    ),
    "small sigma not flushed in float16": (
        lambda t: row_sigma(1e-9, _x(dtype=torch.float16)),
        lambda s: s.dtype == torch.float32 and s.shape == (4, 1) and s[0, 0] == torch.tensor(1e-9),
    ),
    "DAE with K zero": (lambda t: LowRankDAE(12, 0, 2, 0.3), (ValueError, "K must be >= 1")),
    "DAE n below K d": (lambda t: LowRankDAE(5, 3, 2, 0.3), (ValueError, "need n >= K * d")),
    "DAE delta zero": (lambda t: LowRankDAE(12, 3, 2, 0.0), (ValueError, "delta must lie")),
    "DAE integer dtype": (
        lambda t: LowRankDAE(12, 3, 2, 0.3, dtype=torch.int64),
        (TypeError, "floating-point dtype"),
    ),
    "float64 input to float32 DAE": (
        lambda t: LowRankDAE(12, 3, 2, 0.3)(_x(dtype=torch.float64), 0.3),
        (TypeError, "dae.to(torch.float64)"),
    ),
    "empirical integer dtype": (
        lambda t: EmpiricalDenoiser(_x(), dtype=torch.int64),
        (TypeError, "floating-point dtype"),
    ),
    "empirical empty": (lambda t: EmpiricalDenoiser(_x(0)), (ValueError, "train_set is empty")),
    "empirical NaN": (
        lambda t: EmpiricalDenoiser(torch.full((3, 12), NAN)),
        (ValueError, "train_set must be finite"),
    ),
    "empirical chunk zero": (
        lambda t: EmpiricalDenoiser(_x(), chunk_size=0),
        (ValueError, "chunk_size must be >= 1"),
    ),
    # theory
    "snr_approx d zero": (
        lambda t: closed_forms.snr_approx(3, 0, 0.3, [1.0]),
        (ValueError, "d must be"),
    ),
    "snr_approx d negative": (
        lambda t: closed_forms.snr_approx(3, -2, 0.3, [1.0]),
        (ValueError, ">= 1"),
    ),
    "snr_approx K fractional": (
        lambda t: closed_forms.snr_approx(2.5, 2, 0.3, [1.0]),
        (TypeError, "K must be an integer"),
    ),
    "snr_approx one class": (
        lambda t: closed_forms.snr_approx(1, 2, 0.3, [1.0]),
        (ValueError, ">= 2"),
    ),
    "snr_approx sigma 1e200": (
        lambda t: closed_forms.snr_approx(3, 2, 0.3, [1e200]),
        (ValueError, "sigma must lie in"),
    ),
    "snr_approx no sigmas": (
        lambda t: closed_forms.snr_approx(3, 2, 0.3, []),
        (ValueError, "non-empty"),
    ),
    "snr_approx variant": (
        lambda t: closed_forms.snr_approx(3, 2, 0.3, [1.0], variant="printed"),
        (ValueError, "variant must be"),
    ),
    "two-block d zero": (
        lambda t: closed_forms.snr_two_block(3, 0, 0.3, [1.0]),
        (ValueError, "d must"),
    ),
    # metrics
    "snr_exact too few draws": (
        lambda t: snr.snr_exact(MIX, [0.3], 3),
        (ValueError, "num_samples must be at least 2 per class"),
    ),
    "probe negative label": (
        lambda t: probes.logistic_probe(_x(), _labels(0, 1, -1, 1), _x(), _labels(0, 1, 0, 1)),
        (ValueError, "train_labels must lie in 0 .. K-1"),
    ),
    "probe label 200": (
        lambda t: probes.logistic_probe(_x(), _labels(0, 1, 200, 1), _x(), _labels(0, 1, 0, 1)),
        (ValueError, "classes [2, 3, 4, 5, 6, 7, 8, 9, 10, 11] never occur"),
    ),
    "probe test label unseen": (
        lambda t: probes.logistic_probe(_x(), _labels(0, 1, 0, 1), _x(), _labels(0, 1, 2, 1)),
        (ValueError, "test_labels[0] must lie in 0 .. 1"),
    ),
    "probe float labels": (
        lambda t: probes.logistic_probe(_x(), torch.zeros(4), _x(), torch.zeros(4)),
        (TypeError, "train_labels must be integers"),
    ),
    "projection rank zero": (
        lambda t: probes.projection_classifier(_x(), _labels(0, 1, 0, 1), _x(), 0),
        (ValueError, "rank must be >= 1, got 0"),
    ),
    "snr weights not summing to 1": (
        lambda t: snr.snr(
            _x(dtype=torch.float64), _labels(0, 1, 0, 1), _eye_bases(), weights=[0.7, 0.7]
        ),  # fmt: skip
        (ValueError, "weights must be 2 non-negative numbers summing to 1"),
    ),
    "snr bases not orthonormal": (
        lambda t: snr.snr(_x(), _labels(0, 1, 0, 1), [3 * B for B in _eye_bases()]),
        (ValueError, "class_bases[0] must have orthonormal columns"),
    ),
    "snr NaN features": (
        lambda t: snr.snr(torch.full((4, 12), NAN), _labels(0, 1, 0, 1), _eye_bases()),
        (ValueError, "features must be finite"),
    ),
    "real-data snr at full rank": (
        lambda t: snr.real_data_snr(_x(8), _labels(0, 1, 0, 1, 0, 1, 0, 1), rank=12),
        (ValueError, "rank must lie in [1, 11]"),
    ),
    "real-data snr class too small": (
        lambda t: snr.real_data_snr(_x(8), _labels(0, 1, 0, 1, 0, 1, 0, 1), rank=4),
        (ValueError, "more than rank = 4 samples"),
    ),
    "accuracy fractional count": (
        lambda t: stats.accuracy_interval(0.5, 3),
        (TypeError, "correct must be an integer"),
    ),
    "accuracy interval at zero": (
        lambda t: stats.accuracy_interval(0, 7),
        lambda interval: interval.low == 0.0 and 0 < interval.high < 0.5,
    ),
    "curve with infinite stderr": (
        lambda t: stats.curve_shape([0.5, 0.6, 0.5], [0.1, INF, 0.1]),
        (ValueError, "stderr finite"),
    ),
    "curve exact with a tie at the end": (
        lambda t: stats.curve_shape([0.5, 1.0, 1.0], [0.0, 0.0, 0.0]),
        lambda shape: shape.verdict == "increasing" and shape.fall == 0.0,
    ),
    # data
    "explicit root missing": (
        lambda t: data.load_fashion_mnist("test", root=t / "nonexistent"),
        (FileNotFoundError, "does not exist"),
    ),
    "truncated gzip": (_truncated_gzip, (ValueError, "not a complete gzip file")),
    "not gzip": (
        lambda t: data.load_fashion_mnist("test", root=_fashion(t, b"plain", b"text", raw=True)),
        (ValueError, "t10k-images-idx3-ubyte.gz: not a complete gzip file"),
    ),
    "header cut mid-dims": (
        lambda t: data.load_fashion_mnist(
            "test", root=_fashion(t, _good_images()[:9]), verify=False
        ),
        (ValueError, "shorter than an IDX header"),
    ),
    "content not the published data": (
        lambda t: data.load_fashion_mnist(
            "test", root=_fashion(t, _good_images(), _idx_bytes(np.zeros(3), 2049))
        ),
        (ValueError, "differs from the published Fashion-MNIST"),
    ),
    "label 200 in IDX": (
        lambda t: data.load_fashion_mnist(
            "test",
            root=_fashion(t, _good_images(), _idx_bytes(np.array([0, 200, 1]), 2049)),
            verify=False,
        ),
        (ValueError, "must lie in 0 .. 9"),
    ),
    "cifar without data_batch_1": (
        lambda t: data.load_cifar10("train", root=_cifar_archive(t, ["test_batch"])),
        (ValueError, "the archive has no ['data_batch_1'"),
    ),
    "cifar not an archive": (
        lambda t: data.load_cifar10(
            "train", root=(t / "cifar-10-python.tar.gz").write_bytes(b"junk") and t
        ),
        (ValueError, "not a readable CIFAR-10 python archive"),
    ),
    "subset negative label": (
        lambda t: data.balanced_subset(_labels(0, 1, -3, 1), 2),
        (ValueError, "labels must lie in 0 .. K-1"),
    ),
    "subset fractional size": (
        lambda t: data.balanced_subset(_labels(0, 1, 0, 1), 2.5),
        (TypeError, "size must be an integer"),
    ),
    # checkpoints and training
    "malicious checkpoint": (_malicious_checkpoint, (ValueError, "refused to load")),
    "truncated checkpoint": (_truncated_checkpoint, (ValueError, "not a readable checkpoint")),
    "resume with another lr": (
        lambda t: _trained(t, recipe=DAERecipe(2, lr=1.0)),
        (ValueError, "lr: checkpoint 0.0005, this call 1.0"),
    ),
    "resume on other data": (
        lambda t: _trained(t, x0=torch.zeros(64, 12)),
        (ValueError, "x0: checkpoint"),
    ),
    "resume another model": (
        lambda t: _trained(t, dae=LowRankDAE(12, 2, 3, 0.3)),
        (ValueError, "model: checkpoint 'LowRankDAE(n=12, K=3, d=2"),
    ),
    "resume asking fewer epochs": (
        lambda t: _trained(t, recipe=DAERecipe(1)),
        (ValueError, "holds 2 epochs, more than the 1 asked for"),
    ),
    "resume a finished run": (_finished_run_is_not_redone, lambda same: same),
    "random bytes as checkpoint": (_random_bytes_checkpoint, (ValueError, "not a readable")),
    "checkpoint config not a mapping": (
        lambda t: save_checkpoint({"config": [1]}, t / "c.pt") or load_checkpoint(t / "c.pt", {}),
        (ValueError, "no stored configuration"),
    ),
    "checkpoint in a missing folder": (
        lambda t: save_checkpoint({"config": {}}, t / "nowhere" / "c.pt"),
        (FileNotFoundError, "does not exist"),
    ),
    "fit config with lr": (
        lambda t: fit(
            torch.nn.Linear(2, 1),
            lambda m, b, g: m(b).mean(),
            torch.zeros(4, 2),
            {"lr": 0.1},
            Optimization(1),
            progress=None,
        ),  # fmt: skip
        (ValueError, "config must not hold ['lr']"),
    ),
    "failed save keeps the old file": (
        _failed_save_keeps_old_file,
        lambda out: out[0]["config"] == {"run": 1} and out[1] == ["state.pt"],
    ),
    "train on NaN": (
        lambda t: train_dae(LowRankDAE(12, 3, 2, 0.3), torch.full((4, 12), NAN), DAERecipe(1)),
        (ValueError, "x0 must be finite"),
    ),
    "train empty": (
        lambda t: train_dae(LowRankDAE(12, 3, 2, 0.3), torch.zeros(0, 12), DAERecipe(1)),
        (ValueError, "x0 is empty"),
    ),
    "train negative epochs": (
        lambda t: train_dae(LowRankDAE(12, 3, 2, 0.3), _x(), DAERecipe(-1)),
        (ValueError, "epochs must be >= 0"),
    ),
    "train lr zero": (
        lambda t: train_dae(LowRankDAE(12, 3, 2, 0.3), _x(), DAERecipe(1, lr=0.0)),
        (ValueError, "lr must be a finite number > 0"),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path):
    check_case(name, *CASES[name], tmp_path)
