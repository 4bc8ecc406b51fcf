"""Memorization and generalization scores against brute force and closed forms; the cached
classifier whose embedding they use."""

import pytest
import torch

from lowrank.data import to_model_range
from lowrank.experiments import size_sweep
from lowrank.measure.copies import (
    copy_ratio,
)
from lowrank.measure.distances import frechet_bootstrap
from lowrank.measure.stats import paired_curve_shape
from lowrank.nets.classifier import ClassifierRun, embed, load_classifier
from lowrank.theory.denoisers import EmpiricalDenoiser


class _Memorizer(torch.nn.Module):
    """The optimal denoiser of a finite training set (it reproduces training images), with a
    hookable ``network`` and a DDPM-like range of noise levels, as ``assess`` expects."""

    def __init__(self, train: torch.Tensor):
        super().__init__()
        self.shape = train.shape[1:]
        self.empirical = EmpiricalDenoiser(train.flatten(1).double())
        self.network = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1))

    def sigma_range(self):
        return 0.01, 80.0

    def forward(self, x, sigma):
        self.network(x / (1 + torch.as_tensor(sigma).view(-1, 1, 1, 1) ** 2).sqrt())  # features
        return self.empirical(x.flatten(1), sigma).view(-1, *self.shape).to(x.dtype)


def test_assess_finds_that_a_memorizer_copies(tiny_fashion, tmp_path):
    images, labels = tiny_fashion
    x = to_model_range(images)
    classifier = load_classifier(ClassifierRun(size=8, width=8, epochs=2, batch_size=50),
                                 cache=tmp_path, progress=False).classifier  # fmt: skip
    train, heldout = x[:20], x[100:160]
    yardstick = size_sweep.Yardstick(
        classifier, reference=embed(classifier, x[160:]), heldout=embed(classifier, heldout),
        test=(x[160:], labels[160:]), seeds=list(range(12)),
    )  # fmt: skip
    result = size_sweep.assess(
        _Memorizer(train), train,
        {"other": (x[20:100], labels[20:100]), "own": (train, labels[:20])}, yardstick,
        sigmas=[0.01, 0.1, 1.0], layer="0",
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


def test_stopping_rules():
    stop = size_sweep.stopping_checkpoint
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
    from lowrank.nets.cache import load_unet

    monkeypatch.setenv("LOWRANK_CACHE", str(tmp_path))
    common = dict(size=8, channels=(8, 16), epochs=1, batch_size=16, epoch_images=40)
    sizes = dict(classifier_epochs=1, samples=4, probe_fixed_images=60, probe_own_images=10,
                 probe_test_images=30)  # fmt: skip
    budget = size_sweep.SweepBudget(**sizes, reference_images=50, calibration_images=60)
    sweep = size_sweep.size_sweep([20, 10], common, budget)
    assert list(sweep.runs) == [10, 20] and sweep.runs[10].train_images == 10
    assert sweep.reference.shape == (50, 128) and sweep.heldout.shape == (60, 128)
    assert len(sweep.seeds) == len(set(sweep.seeds)) == 4
    assert torch.bincount(sweep.fixed[1]).tolist() == [6] * 10  # class-balanced
    x10, y10 = sweep.subset(10)
    assert torch.equal(sweep.own_probe_set(10)[0], x10)  # a small subset: all of it
    x20, _ = sweep.subset(20)
    own, _ = sweep.own_probe_set(20)
    assert len(own) == 10 and all(any(torch.equal(o, x) for x in x20) for o in own)
    net = load_unet(sweep.runs[10], progress=False).denoiser
    layer = sweep.choose_layer(net, [0.01, 0.1, 1.0])
    assert layer in net.block_names()
    result = sweep.assess(net, 10, [0.01, 0.1, 1.0], layer, steps=4)
    assert result.samples.shape == (4, 1, 8, 8) and set(result.curves) == {"fixed", "own"}
    torch.testing.assert_close(result.copy_ratios, copy_ratio(result.samples, x10))
    # the Frechet bootstrap resamples the same sample rows as distances.frechet_bootstrap with
    # the sweep's seed, in the classifier's embedding
    boot = sweep.frechet_bootstrap(result, resamples=30)
    direct = frechet_bootstrap(sweep.reference, embed(sweep.classifier, result.samples), 30,
                               seed=sweep.seed)  # fmt: skip
    torch.testing.assert_close(boot, direct, rtol=0, atol=0)
    assert boot.shape == (30,) and bool((boot > 0).all())
    with pytest.raises(TypeError, match="assessment must be an Assessment"):
        sweep.frechet_bootstrap(result.samples)
    with pytest.raises(ValueError, match="reference_images \\+ calibration_images"):
        size_sweep.size_sweep(
            [10], common,
            size_sweep.SweepBudget(**sizes, reference_images=150, calibration_images=60),
        )  # fmt: skip
    for reference, calibration in ((-1, 60), (1, 60), (50, 0)):
        with pytest.raises(ValueError, match="budget.(reference|calibration)_images must be >="):
            size_sweep.size_sweep(
                [10], common,
                size_sweep.SweepBudget(**sizes, reference_images=reference,
                                       calibration_images=calibration),
            )  # fmt: skip
