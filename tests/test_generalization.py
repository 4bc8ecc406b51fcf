"""Memorization and generalization scores against brute force and closed forms; the cached
classifier whose embedding they use."""

import math

import pytest
import torch

import lowrank.generalization as gz
from lowrank.data import to_model_range
from lowrank.generalization import (
    ClassifierRun,
    copy_ratio,
    frechet_distance,
    generalization_score,
    load_classifier,
    memorized_fraction,
    nearest_neighbours,
    similarity_threshold,
)
from lowrank.stats import paired_curve_shape


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_nearest_neighbours_match_brute_force(metric):
    gen = torch.Generator().manual_seed(0)
    queries = torch.randn(7, 2, 3, 3, generator=gen, dtype=torch.float64)
    references = torch.randn(50, 2, 3, 3, generator=gen, dtype=torch.float64)
    q, r = queries.flatten(1), references.flatten(1)
    if metric == "l2":
        full = torch.cdist(q, r) / math.sqrt(q.shape[1])
    else:
        full = (q / q.norm(dim=1, keepdim=True)) @ (r / r.norm(dim=1, keepdim=True)).T
    expected, where = full.topk(3, dim=1, largest=metric == "cosine")
    for chunk in (4, 50, 1000):  # streamed over chunks smaller than, equal to, larger than N
        values, index = nearest_neighbours(queries, references, 3, metric, chunk_size=chunk)
        assert torch.equal(index, where)
        torch.testing.assert_close(values, expected, rtol=1e-12, atol=1e-12)


def test_copies_are_found_and_counted():
    gen = torch.Generator().manual_seed(1)
    train = torch.rand(40, 1, 4, 4, generator=gen) * 2 - 1
    copies = train[:6] + 1e-3 * torch.randn(6, 1, 4, 4, generator=gen)  # near-exact copies
    blends = 0.5 * (train[6:10] + train[10:14])  # halfway between two: d1 / d2 = 1
    samples = torch.cat([copies, blends])
    ratio = copy_ratio(samples, train)
    d = torch.cdist(samples.flatten(1).double(), train.flatten(1).double()).sort(1).values
    torch.testing.assert_close(ratio, d[:, 0] / d[:, 1], rtol=1e-10, atol=1e-12)
    assert bool((ratio[:6] < 0.05).all()) and bool((ratio[6:] > 0.9).all())
    assert memorized_fraction(samples, train) == pytest.approx(6 / 10)
    with pytest.raises(ValueError, match="at least 2 distinct training images"):
        copy_ratio(samples, train[:1])


def _with_covariance(x: torch.Tensor, mean: torch.Tensor, variances: torch.Tensor):
    """Rows whose sample mean and unbiased covariance are exactly ``mean`` and
    ``diag(variances)`` (whitened, then scaled)."""
    x = x - x.mean(0)
    chol = torch.linalg.cholesky(x.T @ x / (len(x) - 1))
    white = torch.linalg.solve_triangular(chol, x.T, upper=False).T
    return white * variances.sqrt() + mean


def test_frechet_distance_matches_the_closed_form_of_two_gaussians():
    # commuting covariances: ||mu_a - mu_b||^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    gen = torch.Generator().manual_seed(2)
    p = 6
    var_a, var_b = torch.arange(1.0, p + 1).double(), torch.linspace(0.5, 3, p).double()
    mean_b = torch.linspace(-1, 1, p).double()
    a = _with_covariance(torch.randn(3000, p, generator=gen).double(), torch.zeros(p), var_a)
    b = _with_covariance(torch.randn(2000, p, generator=gen).double(), mean_b, var_b)
    exact = (mean_b.square().sum() + (var_a.sqrt() - var_b.sqrt()).square().sum()).item()
    assert frechet_distance(a, b) == pytest.approx(exact, rel=1e-6)  # measured: 3e-8
    # a rotation of both sets leaves the distance unchanged (non-diagonal covariances)
    rotation = torch.linalg.qr(torch.randn(p, p, generator=gen, dtype=torch.float64)).Q
    assert frechet_distance(a @ rotation, b @ rotation) == pytest.approx(exact, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)


def test_generalization_score_against_its_calibration():
    gen = torch.Generator().manual_seed(3)
    train = torch.randn(200, 8, generator=gen, dtype=torch.float64)
    heldout = torch.randn(100, 8, generator=gen, dtype=torch.float64)
    threshold = similarity_threshold(heldout, train, 0.9)
    unit = torch.nn.functional.normalize
    cos = unit(heldout, dim=1) @ unit(train, dim=1).T
    assert threshold == pytest.approx(torch.quantile(cos.max(1).values, 0.9).item(), rel=1e-12)
    # the held-out images themselves: 90% at or below (91 of 100 with interpolation)
    assert generalization_score(heldout, train, threshold) in (0.90, 0.91)
    assert generalization_score(train[:30] * 2.0, train, threshold) == 0  # copies (rescaled)


@pytest.fixture
def tiny_fashion(monkeypatch):
    """200 random 8x8 'Fashion-MNIST' images whose class is their brightness."""
    gen = torch.Generator().manual_seed(4)
    labels = torch.arange(200) % 10
    noise = torch.randint(0, 40, (200, 8, 8), generator=gen)
    images = (labels[:, None, None] * 20 + noise).to(torch.uint8)
    monkeypatch.setattr(
        gz.datasets, "load_fashion_mnist", lambda split, root=None: (images, labels)
    )
    return images, labels


def test_the_classifier_trains_once_into_the_cache_and_learns(tiny_fashion, tmp_path):
    run = ClassifierRun(size=8, width=8, epochs=30, batch_size=50, lr=3e-3)
    model, record = load_classifier(run, cache=tmp_path, progress=False)
    assert record["test_accuracy"] > 0.8  # brightness classes are easy; chance is 0.1
    again, same = load_classifier(run, cache=tmp_path, progress=False)
    assert same == record
    for p, q in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    emb = gz.embed(model, torch.zeros(3, 1, 8, 8))
    assert emb.shape == (3, 32) and emb.dtype == torch.float64
    assert (tmp_path / f"classifier-fashion-mnist-8px-{run.key()}" / "model.safetensors").exists()


class _Memorizer(torch.nn.Module):
    """The optimal denoiser of a finite training set (it reproduces training images), with a
    hookable ``unet`` block and a DDPM-like range of noise levels, as ``assess`` expects."""

    def __init__(self, train: torch.Tensor):
        super().__init__()
        from lowrank.denoisers import EmpiricalDenoiser

        self.shape = train.shape[1:]
        self.empirical = EmpiricalDenoiser(train.flatten(1).double())
        self.unet = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1))
        self.register_buffer("log_sigmas", torch.tensor([0.01, 80.0]).log())

    def forward(self, x, sigma):
        self.unet(x / (1 + torch.as_tensor(sigma).view(-1, 1, 1, 1) ** 2).sqrt())  # features
        return self.empirical(x.flatten(1), sigma).view(-1, *self.shape).to(x.dtype)


def test_assess_finds_that_a_memorizer_copies(tiny_fashion, tmp_path):
    images, labels = tiny_fashion
    x = to_model_range(images)
    classifier, _ = load_classifier(ClassifierRun(size=8, width=8, epochs=2, batch_size=50),
                                    cache=tmp_path, progress=False)  # fmt: skip
    train, heldout = x[:20], x[100:160]
    result = gz.assess(
        _Memorizer(train), train, classifier,
        reference=gz.embed(classifier, x[160:]), heldout=gz.embed(classifier, heldout),
        probe_sets={"other": (x[20:100], labels[20:100]), "own": (train, labels[:20])},
        test=(x[160:], labels[160:]), sigmas=[0.01, 0.1, 1.0], layer="0", seeds=range(12),
    )  # fmt: skip
    assert result.samples.shape == (12, 1, 8, 8)
    assert result.memorized == 1.0 and result.generalization == 0.0  # every sample a copy
    assert bool((result.copy_ratios < 1e-3).all())
    torch.testing.assert_close(result.samples, train[result.nearest], atol=1e-3, rtol=0)
    torch.testing.assert_close(result.copy_ratios, copy_ratio(result.samples, train))
    assert list(result.curves) == ["other", "own"] and result.frechet > 0
    # the level is cross-fitted on the first probe set, every one of its images validating once
    assert result.validation.correct.shape == (3, 80)
    assert result.peak == int(result.validation.accuracy.argmax())
    assert result.validation.sigmas.tolist() == pytest.approx([0.01, 0.1, 1.0])
    # the shapes are paired_curve_shape of each test curve's per-image correctness at that level
    for name, curve in result.curves.items():
        assert curve.accuracy.shape == (3,) and curve.correct.shape == (3, len(labels) - 160)
        assert result.shapes[name] == paired_curve_shape(curve.correct, result.peak)


def test_rank_correlation_matches_spearmans_formula_and_handles_ties():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(30, generator=gen, dtype=torch.float64)
    y = x + 0.8 * torch.randn(30, generator=gen, dtype=torch.float64)
    rank = lambda v: v.argsort().argsort().double()  # noqa: E731 (no ties here)
    d = rank(x) - rank(y)
    formula = 1 - 6 * d.square().sum().item() / (30 * (30**2 - 1))
    rho, low, high = gz.rank_correlation(x, y, resamples=500)
    assert rho == pytest.approx(formula, abs=1e-12)
    assert low < rho < high and -1 <= low and high <= 1
    # monotone maps leave it unchanged; reversing one side flips its sign
    assert gz.rank_correlation(x.exp(), y**3)[0] == pytest.approx(rho, abs=1e-12)
    assert gz.rank_correlation(x, -y)[0] == pytest.approx(-rho, abs=1e-12)
    # ties: average ranks, as scipy.stats.spearmanr (hand-computed: ranks 1, 2.5, 2.5, 4)
    tied = gz.rank_correlation([1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0], resamples=10)[0]
    a = torch.tensor([1, 2.5, 2.5, 4], dtype=torch.float64)
    b = torch.tensor([1.0, 2, 3, 4], dtype=torch.float64)
    a, b = a - a.mean(), b - b.mean()
    assert tied == pytest.approx(((a * b).sum() / (a.norm() * b.norm())).item(), abs=1e-12)


def test_stopping_rules():
    stop = gz.stopping_checkpoint
    accuracy = [0.5, 0.7, 0.8, 0.75, 0.6]
    verdicts = ["flat", "unimodal", "unimodal", "decreasing", "unimodal"]
    assert stop(verdicts, accuracy) == 2  # the last unimodal before the turn, not the late one
    assert stop(verdicts, accuracy, "best-peak") == 2
    assert stop(["unimodal", "flat", "unimodal"], [0.1, 0.2, 0.3]) == 2  # never turns
    assert stop(["decreasing", "flat"], [0.1, 0.2]) is None  # no unimodal curve: no signal
    assert stop(["decreasing", "unimodal"], [0.3, 0.2], "best-peak") == 0
    with pytest.raises(ValueError, match="rule must be"):
        stop(verdicts, accuracy, "patience")


def test_size_sweep_builds_what_every_network_is_assessed_with(
    tiny_fashion, tmp_path, monkeypatch
):
    from lowrank.models import load_unet

    monkeypatch.setenv("LOWRANK_CACHE", str(tmp_path))
    common = dict(size=8, channels=(8, 16), epochs=1, batch_size=16, epoch_images=40)
    sizes = dict(classifier_epochs=1, samples=4, probe_fixed_images=60, probe_own_images=10,
                 probe_test_images=30)  # fmt: skip
    sweep = gz.size_sweep([20, 10], common, **sizes, reference_images=50, calibration_images=60)
    assert list(sweep.runs) == [10, 20] and sweep.runs[10].train_images == 10
    assert sweep.reference.shape == (50, 128) and sweep.heldout.shape == (60, 128)
    assert len(sweep.seeds) == len(set(sweep.seeds)) == 4
    assert torch.bincount(sweep.fixed[1]).tolist() == [6] * 10  # class-balanced
    x10, y10 = sweep.subset(10)
    assert torch.equal(sweep.own_probe_set(10)[0], x10)  # a small subset: all of it
    x20, _ = sweep.subset(20)
    own, _ = sweep.own_probe_set(20)
    assert len(own) == 10 and all(any(torch.equal(o, x) for x in x20) for o in own)
    net, _ = load_unet(sweep.runs[10], progress=False)
    layer = sweep.choose_layer(net, [0.01, 0.1, 1.0])
    assert layer in net.block_names()
    result = sweep.assess(net, 10, [0.01, 0.1, 1.0], layer, steps=4)
    assert result.samples.shape == (4, 1, 8, 8) and set(result.curves) == {"fixed", "own"}
    torch.testing.assert_close(result.copy_ratios, copy_ratio(result.samples, x10))
    with pytest.raises(ValueError, match="reference_images \\+ calibration_images"):
        gz.size_sweep([10], common, **sizes, reference_images=150, calibration_images=60)
