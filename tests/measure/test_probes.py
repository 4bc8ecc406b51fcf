"""lowrank.measure.probes: the logistic and projection probes and their curves over noise levels,
against independent computations."""

import numpy as np
import pytest
import torch

from lowrank import data
from lowrank.measure import probes, stats, student_t
from lowrank.measure.probes import logistic_probe, projection_classifier
from lowrank.theory.mixtures import MoLRG


def test_logistic_probe_separates_and_reports_per_test_set():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(600, 4, generator=g)
    y = (X[:, 0] + 0.1 * X[:, 1] > 0).long()
    Xt = torch.randn(400, 4, generator=g)
    yt = (Xt[:, 0] + 0.1 * Xt[:, 1] > 0).long()
    acc = logistic_probe(X, y, [Xt, Xt[:200]], [yt, 1 - yt[:200]])
    assert acc.shape == (2,) and acc[0] > 0.97 and acc[1] < 0.03


def test_projection_classifier_uses_class_subspaces():
    mix = MoLRG(30, 3, 2, 0.1, seed=1)
    x0, y = mix.sample(3000, torch.Generator().manual_seed(0))
    pred = projection_classifier(x0[:2000], y[:2000], x0[2000:], rank=2)
    assert (pred == y[2000:]).double().mean() > 0.95
    with pytest.raises(ValueError, match="rank"):
        projection_classifier(x0, y, x0, rank=0)


def test_probe_across_sigma_orders_noise_levels():
    """Noisier copies of separable features probe worse, and each interval holds its value."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat(600)
    clean = torch.randn(1200, 5, generator=g) + 1.5 * labels[:, None]
    sigmas = [0.1, 1.0, 3.0]
    noisy = [clean + s * torch.randn(clean.shape, generator=g) for s in sigmas]
    curve = probes.probe_across_sigma(sigmas, [x[:600] for x in noisy], labels[:600],
                                      [x[600:] for x in noisy], labels[600:])  # fmt: skip
    assert curve.accuracy[0] > curve.accuracy[1] > curve.accuracy[2] > 0.5
    M = 600  # the intervals are the Wilson intervals of each accuracy on the 600 test images
    for a, low, high in zip(curve.accuracy, curve.low, curve.high, strict=True):
        wilson = stats.accuracy_interval(round(a.item() * M), M)
        assert (low.item(), high.item()) == (wilson.low, wilson.high)
    proj = probes.probe_across_sigma(sigmas, [x[:600] for x in noisy], labels[:600],
                                     [x[600:] for x in noisy], labels[600:], "projection",
                                     rank=1)  # fmt: skip
    assert proj.accuracy.shape == (3,) and proj.accuracy[0] > 0.5
    with pytest.raises(ValueError, match="one train and one test feature set per sigma"):
        probes.probe_across_sigma(sigmas, noisy[:2], labels, noisy, labels)


def test_probe_across_sigma_over_several_test_sets():
    """With T test sets the curve is the mean of the per-set accuracies of one probe per level,
    its error their standard error and its interval Student's t over the sets; the projection
    classifier scores every set with the same class subspaces."""
    g = torch.Generator().manual_seed(1)
    sigmas = [0.2, 2.0]

    def draw(N):
        y = torch.arange(3).repeat(N // 3)
        x = torch.randn(
            N, 6, generator=g, dtype=torch.float64
        ) + 1.2 * torch.nn.functional.one_hot(y, 6)
        return [x + s * torch.randn(x.shape, generator=g, dtype=torch.float64) for s in sigmas], y

    train, y_train = draw(300)
    tests = [draw(150) for _ in range(4)]
    per_level = [[t[0][i] for t in tests] for i in range(len(sigmas))]
    y_tests = [y for _, y in tests]
    for method in ("logistic", "projection"):
        curve = probes.probe_across_sigma(
            sigmas, train, y_train, per_level, y_tests, method, rank=2
        )
        for i in range(len(sigmas)):
            if method == "logistic":
                acc = probes.logistic_probe(train[i], y_train, per_level[i], y_tests)
            else:
                acc = torch.stack(
                    [
                        (probes.projection_classifier(train[i], y_train, h, 2) == y)
                        .double()
                        .mean()
                        for h, y in zip(per_level[i], y_tests, strict=True)
                    ]
                )
            assert acc.std() > 0  # the sets differ, so the interval is not a point
            torch.testing.assert_close(curve.accuracy[i], acc.mean(), rtol=0, atol=1e-15)
            torch.testing.assert_close(curve.stderr[i], acc.std() / 2, rtol=1e-12, atol=0)
            half = student_t.t_quantile(0.975, 3) * acc.std() / 2  # t_{0.975, 3} = 3.182
            torch.testing.assert_close(curve.high[i] - curve.accuracy[i], half, rtol=1e-12, atol=0)
            torch.testing.assert_close(curve.accuracy[i] - curve.low[i], half, rtol=1e-12, atol=0)
        assert curve.accuracy[0] > curve.accuracy[1]
    with pytest.raises(ValueError, match=r"test_features\[1\] holds 3 test sets, test_labels 4"):
        probes.probe_across_sigma(
            sigmas, train, y_train, [per_level[0], per_level[1][:3]], y_tests
        )
    with pytest.raises(ValueError, match="at least 2"):
        probes.probe_across_sigma(sigmas, train, y_train, [p[:1] for p in per_level], y_tests[:1])


def test_probe_subsets_uses_the_same_subsets_for_every_feature_set(layer_features):
    gen = torch.Generator().manual_seed(1)
    train, y = layer_features(gen, 400, [6.0, 0.0, 0.0])
    test, y_test = layer_features(gen, 200, [6.0, 0.0, 0.0])
    acc = probes.probe_subsets(list(train["signal"]), y, list(test["signal"]), y_test, 20,
                               seeds=[0, 1, 2, 3])  # fmt: skip
    assert acc.shape == (4, 3)
    assert bool((acc[:, 0] > 0.9).all()) and bool((acc[:, 1:] < 0.3).all())
    again = probes.probe_subsets(list(train["signal"]), y, list(test["signal"]), y_test, 20,
                                 seeds=[0, 1, 2, 3])  # fmt: skip
    assert torch.equal(acc, again)
    # seed 0's subset, by hand
    keep = data.balanced_subset(y, 20, torch.Generator().manual_seed(0))
    by_hand = probes.logistic_probe(train["signal"][1][keep], y[keep], test["signal"][1], y_test)
    assert acc[0, 1].item() == by_hand.item()


def test_subset_correctness_marks_the_items_each_subsets_probe_gets_right(layer_features):
    gen = torch.Generator().manual_seed(2)
    train, y = layer_features(gen, 400, [2.0, 0.5, 0.0])
    test, y_test = layer_features(gen, 150, [2.0, 0.5, 0.0])
    correct = probes.subset_correctness(list(train["signal"]), y, list(test["signal"]), y_test,
                                        30, seeds=[5, 6])  # fmt: skip
    assert correct.shape == (2, 3, 150) and correct.dtype == torch.bool
    # seed 6's subset at level 0, by hand: the probe's own decisions on each test item
    keep = data.balanced_subset(y, 30, torch.Generator().manual_seed(6))
    z = probes.logistic_logits(train["signal"][0][keep], y[keep], test["signal"][0])[0]
    assert torch.equal(correct[1, 0], z.argmax(1) == y_test)
    assert 0 < int(correct[1, 0].sum()) < 150  # neither all right nor all wrong: a real check
    acc = probes.probe_subsets(list(train["signal"]), y, list(test["signal"]), y_test, 30,
                               seeds=[5, 6])  # fmt: skip
    torch.testing.assert_close(acc, correct.double().mean(-1), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"test_features\[0\] has 150 rows, test_labels 149"):
        probes.subset_correctness(list(train["signal"]), y, list(test["signal"]), y_test[:149],
                                  30, seeds=[5])  # fmt: skip


def test_logistic_logits_are_the_probes_decisions(noisy_views):
    views, labels = noisy_views(1, 600, 6, 2.0, seed=0)
    test, test_labels = noisy_views(1, 400, 6, 2.0, seed=0)  # same class means, new noise
    logits = probes.logistic_logits(views[0], labels, [test[0], test[0][:10]])
    assert logits[0].shape == (400, 4) and logits[1].shape == (10, 4)
    assert torch.allclose(logits[1], logits[0][:10])
    accuracy = probes.logistic_probe(views[0], labels, test[0], test_labels)
    assert accuracy.item() == (logits[0].argmax(1) == test_labels).double().mean().item()
    with pytest.raises(ValueError, match=r"test_features\[0\] must be"):
        probes.logistic_logits(views[0], labels, test[0][:, :3])


def test_logistic_logits_minimize_the_regularized_cross_entropy(noisy_views):
    """The closed-form gradient fits the same model as autograd would: at the returned
    classifier the autograd gradient of the objective vanishes (a strongly convex problem, so
    that is the minimizer)."""
    views, labels = noisy_views(1, 300, 5, 1.5, seed=4)
    X, decay = views[0], 0.05
    Z = (X - X.mean(0)) / X.std(0)
    Z1 = torch.cat([Z, torch.ones(len(Z), 1, dtype=torch.float64)], 1)
    # the logits on the training rows themselves recover the classifier A (Z1 has full rank)
    logits = probes.logistic_logits(X, labels, X, weight_decay=decay)[0]
    A = torch.linalg.lstsq(Z1, logits).solution.requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(Z1 @ A, labels) + 0.5 * decay * A[:-1].square().sum()
    (grad,) = torch.autograd.grad(loss, A)
    assert grad.abs().max().item() < 2e-5, grad.abs().max()  # L-BFGS stops near 4e-6


def test_features_near_1e200_are_standardized_not_zeroed():
    """Squares of 1e200 overflow float64: the probe standardizes in units of each column's
    largest magnitude there, and scores as it does on the same features at scale 1."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(40)
    X = torch.randn(120, 4, generator=g, dtype=torch.float64) + 4 * torch.eye(3, 4)[y]
    plain = logistic_probe(X[:90], y[:90], X[90:], y[90:])
    huge = logistic_probe(1e200 * X[:90], y[:90], 1e200 * X[90:], y[90:])
    assert plain > 0.9 and huge == pytest.approx(plain)


def test_standardize_near_1e200_matches_it_at_scale_1():
    """The probe's overflow fallback serves standardize too: features scaled by 1e200 come out
    as the same standardized values, not inf or nan."""
    g = torch.Generator().manual_seed(1)
    X = torch.randn(60, 4, generator=g, dtype=torch.float64)
    plain = probes.standardize(X[:40], X[40:])
    huge = probes.standardize(1e200 * X[:40], 1e200 * X[40:])
    torch.testing.assert_close(huge, plain, rtol=1e-12, atol=1e-12)


def test_standardize_uses_the_training_statistics_as_numpy_does():
    """Test rows centred and scaled by the training columns' mean and sample deviation (ddof
    1), in float64; a constant training column is divided by 1e-12, not by 0."""
    gen = np.random.default_rng(4)
    train = gen.normal(3.0, 2.0, (50, 3)).astype(np.float32)
    train[:, 2] = 5.0
    test = gen.normal(0.0, 1.0, (7, 3)).astype(np.float32)
    ours = probes.standardize(torch.from_numpy(train), torch.from_numpy(test))
    x, y = train.astype(np.float64), test.astype(np.float64)
    expected = (y - x.mean(0)) / np.maximum(x.std(0, ddof=1), 1e-12)
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"test_features must be \(M, 3\)"):
        probes.standardize(torch.from_numpy(train), torch.zeros(2, 4))
