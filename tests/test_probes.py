"""Probes across sigma, accuracy intervals, the unimodality test, and Definition 1's SNR on given
features (the real-data recipe included)."""

import math

import pytest
import torch

import lowrank as lr
from lowrank import metrics, probes
from lowrank.mixtures import _random_orthonormal


def _subspace_features(N_per_class, p, d, s, tau, seed):
    """Classes in mutually orthogonal d-dim subspaces of R^p (fixed bases): h = U_k a + e,
    a ~ N(0, s^2 I_d), e ~ N(0, tau^2 I_p); ``seed`` draws a and e. Returns features, labels
    and the bases."""
    K = 3
    g = torch.Generator().manual_seed(seed)
    basis = _random_orthonormal(p, K * d, 0)
    bases = [basis[:, k * d : (k + 1) * d] for k in range(K)]
    labels = torch.arange(K).repeat_interleave(N_per_class)
    a = s * torch.randn(len(labels), d, generator=g, dtype=torch.float64)
    h = torch.stack([bases[k] @ a[i] for i, k in enumerate(labels.tolist())])
    h = h + tau * torch.randn(h.shape, generator=g, dtype=torch.float64)
    return h, labels, bases


def test_snr_matches_the_closed_form_on_subspace_features():
    """E||P_k h||^2 = d (s^2 + tau^2) and E||h - P_k h||^2 = (p - d) tau^2, for every class."""
    p, d, s, tau = 20, 3, 2.0, 0.5
    h, labels, bases = _subspace_features(4000, p, d, s, tau, seed=0)
    expected = d * (s**2 + tau**2) / ((p - d) * tau**2)  # 3 * 4.25 / 4.25 = 3
    value, se = metrics.snr(h, labels, bases)
    assert abs(value.item() - expected) < 4 * se.item(), (value, se, expected)
    ratios, ratio_se = metrics.snr(h, labels, bases, per_class=True)
    assert torch.all((ratios - expected).abs() < 4 * ratio_se)
    # the standard error is the spread of the estimate over independent replicates
    reps = torch.stack(
        [
            metrics.snr(*_subspace_features(4000, p, d, s, tau, seed=r)[:2], bases)[0]
            for r in range(1, 9)
        ]  # fmt: skip
    )
    # 8 replicates: their standard deviation is within about +-25% of the truth (chi with 7
    # degrees of freedom: 5th-95th percentiles 0.62-1.35 of it)
    assert 0.6 < reps.std().item() / se.item() < 1.4, (reps.std(), se)
    # weights: a weighted mean of the class ratios
    weighted, _ = metrics.snr(h, labels, bases, weights=torch.tensor([1.0, 0.0, 0.0]))
    assert weighted.item() == pytest.approx(ratios[0].item())


def test_real_data_snr_recovers_the_class_subspaces():
    """With well-separated low-rank classes the recipe's estimated top-d directions are the
    true ones, so its SNR equals Definition 1 with the true bases on the same normalized,
    centred features."""
    h, labels, bases = _subspace_features(3000, 20, 3, 3.0, 0.05, seed=1)
    value, se = metrics.real_data_snr(h, labels, rank=3)
    z = h / h.norm(dim=1, keepdim=True)
    z = z - z.mean(0)
    with_truth, _ = metrics.snr(z, labels, bases)
    assert abs(value.item() - with_truth.item()) < 0.01 * with_truth.item()
    assert value.item() > 100  # tau = 0.05: nearly all energy in the class subspace
    with pytest.raises(ValueError, match="rank must lie in"):
        metrics.real_data_snr(h, labels, rank=21)


def test_accuracy_interval_is_the_wilson_interval():
    low, high = probes.accuracy_interval(90, 100)
    # Wilson, z = 1.95996: centre (0.9 + z^2/200) / (1 + z^2/100), known values 0.8256-0.9448
    assert low == pytest.approx(0.82564, abs=1e-4) and high == pytest.approx(0.94476, abs=1e-4)
    low, high = probes.accuracy_interval(0, 50)
    assert low == pytest.approx(0.0, abs=1e-12) and 0.05 < high < 0.08  # not a point at 0
    with pytest.raises(ValueError, match="correct must lie in"):
        probes.accuracy_interval(101, 100)


@pytest.mark.parametrize(
    ("values", "verdict"),
    [
        ([0.80, 0.84, 0.86, 0.83, 0.70], "unimodal"),
        ([0.86, 0.85, 0.83, 0.78, 0.70], "decreasing"),
        ([0.80, 0.86, 0.87, 0.84, 0.70], "unimodal"),
        ([0.852, 0.86, 0.85, 0.80, 0.70], "decreasing"),  # peak 1.1 se above the start
        ([0.70, 0.75, 0.80, 0.82, 0.86], "increasing"),
        ([0.80, 0.805, 0.80, 0.801, 0.80], "flat"),
    ],
)
def test_curve_shape_on_synthetic_curves(values, verdict):
    stderr = [0.005] * len(values)  # difference of two points: 0.007 standard error
    shape = probes.curve_shape(values, stderr)
    assert shape.verdict == verdict, shape
    assert shape.peak == max(range(len(values)), key=values.__getitem__)


def test_curve_shape_margins_are_in_standard_errors():
    shape = probes.curve_shape([0.80, 0.83, 0.81], [0.01, 0.01, 0.01], z=2.0)
    assert shape.rise == pytest.approx(0.03 / math.sqrt(2 * 0.01**2))
    assert shape.fall == pytest.approx(0.02 / math.sqrt(2 * 0.01**2))
    assert shape.verdict == "increasing"  # 2.12 and 1.41 standard errors: only the rise > 2
    assert probes.curve_shape([0.80, 0.83, 0.81], [0.01] * 3, z=1.0).verdict == "unimodal"
    assert probes.curve_shape([0.80, 0.83, 0.81], [0.01] * 3, z=2.0).verdict != "unimodal"


@pytest.mark.parametrize(
    "values, stderr, shape",
    [
        ([1.0, 3.0, 2.0], None, "unimodal"),
        ([3.0, 2.0, 1.0], None, "decreasing"),
        ([1.0, 2.0, 3.0], None, "increasing"),
        ([1.0, 1.0, 1.0], None, "flat"),
        ([1.0, 1.2, 1.0], [0.1, 0.1, 0.1], "flat"),  # a rise of 1.4 standard errors
        ([1.0, 2.0, 1.0], [0.1, 0.1, 0.1], "unimodal"),
        # the chapter-4 probe: 42.4 -> 44.6 -> 33.6 with standard errors near 0.3
        ([42.4, 44.6, 33.6], [0.3, 0.3, 0.3], "unimodal"),
    ],
)
def test_curve_shape_with_exact_and_noisy_values(values, stderr, shape):
    assert probes.curve_shape(values, stderr).verdict == shape


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
        assert (low.item(), high.item()) == probes.accuracy_interval(round(a.item() * M), M)
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
            half = probes.t_quantile(0.975, 3) * acc.std() / 2  # t_{0.975, 3} = 3.182
            torch.testing.assert_close(curve.high[i] - curve.accuracy[i], half, rtol=1e-12, atol=0)
            torch.testing.assert_close(curve.accuracy[i] - curve.low[i], half, rtol=1e-12, atol=0)
        assert curve.accuracy[0] > curve.accuracy[1]
    with pytest.raises(ValueError, match=r"test_features\[1\] holds 3 test sets, test_labels 4"):
        probes.probe_across_sigma(
            sigmas, train, y_train, [per_level[0], per_level[1][:3]], y_tests
        )
    with pytest.raises(ValueError, match="at least 2"):
        probes.probe_across_sigma(sigmas, train, y_train, [p[:1] for p in per_level], y_tests[:1])


def _layers(gen, N, signal):
    """Features of two 'layers' at 3 noise levels: 'signal' carries the class in one-hot
    directions with the given strengths, 'noise' does not."""
    y = torch.arange(N) % 10
    onehot = torch.nn.functional.one_hot(y, 10).float()
    signal_f = torch.stack([s * onehot + torch.randn(N, 10, generator=gen) for s in signal])
    noise_f = torch.randn(len(signal), N, 10, generator=gen)
    return {"noise": noise_f, "signal": signal_f}, y  # the right answer is not the first key


def test_probe_layers_and_best_layer_on_validation():
    gen = torch.Generator().manual_seed(0)
    train, y = _layers(gen, 600, [4.0, 2.0, 0.0])
    test, y_test = _layers(gen, 300, [4.0, 2.0, 0.0])
    sigmas = [0.01, 0.1, 1.0]
    curves = probes.probe_layers(sigmas, train, y, test, y_test)
    one = probes.probe_across_sigma(sigmas, list(train["signal"]), y, list(test["signal"]), y_test)
    assert torch.equal(curves["signal"].accuracy, one.accuracy)
    assert curves["signal"].accuracy[0] > 0.9 and curves["noise"].accuracy.max() < 0.25
    name, validation = probes.best_layer(sigmas, train, y)
    assert name == "signal"
    # the validation curves use a fifth of the training rows, never the test rows
    assert validation["signal"].accuracy.shape == (3,)
    assert all(
        (c.accuracy * 120).round().sub(c.accuracy * 120).abs().max() < 1e-9
        for c in validation.values()
    )
    # the highest peak wins, not the highest mean: "late" is better on average, "sharp" peaks
    gen = torch.Generator().manual_seed(2)
    sharp, y2 = _layers(gen, 600, [5.0, 0.0, 0.0])
    late, _ = _layers(torch.Generator().manual_seed(3), 600, [1.5, 1.5, 1.5])
    chosen, curves_2 = probes.best_layer(
        sigmas, {"late": late["signal"], "sharp": sharp["signal"]}, y2
    )
    assert curves_2["late"].accuracy.mean() > curves_2["sharp"].accuracy.mean()
    assert chosen == "sharp"
    with pytest.raises(ValueError, match="validation must lie in"):
        probes.best_layer(sigmas, train, y, validation=1.0)


def test_best_level_is_best_layers_choice_along_the_grid():
    gen = torch.Generator().manual_seed(4)
    train, y = _layers(gen, 600, [0.0, 3.0, 1.0])  # the signal is strongest at the middle level
    level, curve = probes.best_level(train["signal"], y, seed=5)
    _, by_layer = probes.best_layer([0.01, 0.1, 1.0], {"signal": train["signal"]}, y, seed=5)
    assert level == 1 == int(by_layer["signal"].accuracy.argmax())
    assert torch.equal(curve.accuracy, by_layer["signal"].accuracy)  # the same split and probes
    assert torch.equal(curve.sigmas, torch.arange(3, dtype=torch.float64))
    _, named = probes.best_level(list(train["signal"]), y, seed=5, sigmas=[0.01, 0.1, 1.0])
    assert named.sigmas.tolist() == [0.01, 0.1, 1.0]
    with pytest.raises(ValueError, match="validation must lie in"):
        probes.best_level(train["signal"], y, validation=0.0)


def test_probe_subsets_uses_the_same_subsets_for_every_feature_set():
    gen = torch.Generator().manual_seed(1)
    train, y = _layers(gen, 400, [6.0, 0.0, 0.0])
    test, y_test = _layers(gen, 200, [6.0, 0.0, 0.0])
    acc = probes.probe_subsets(list(train["signal"]), y, list(test["signal"]), y_test, 20,
                               seeds=[0, 1, 2, 3])  # fmt: skip
    assert acc.shape == (4, 3)
    assert bool((acc[:, 0] > 0.9).all()) and bool((acc[:, 1:] < 0.3).all())
    again = probes.probe_subsets(list(train["signal"]), y, list(test["signal"]), y_test, 20,
                                 seeds=[0, 1, 2, 3])  # fmt: skip
    assert torch.equal(acc, again)
    # seed 0's subset, by hand
    keep = lr.data.balanced_subset(y, 20, torch.Generator().manual_seed(0))
    by_hand = probes.logistic_probe(train["signal"][1][keep], y[keep], test["signal"][1], y_test)
    assert acc[0, 1].item() == by_hand.item()


@pytest.mark.parametrize(
    "df, quantile", [(1, 12.706204736), (2, 4.302652730), (4, 2.776445105), (30, 2.042272456)]
)
def test_t_quantile_matches_tables(df, quantile):
    assert probes.t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-6)


def test_seed_interval_is_the_t_interval():
    values = torch.tensor([[1.0, 10.0], [2.0, 10.0], [4.0, 13.0]])
    mean, half = probes.seed_interval(values)
    assert mean.tolist() == pytest.approx([7 / 3, 11.0])
    s = values.double().std(0)
    assert half.tolist() == pytest.approx((4.302652730 * s / 3**0.5).tolist(), rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        probes.seed_interval(values[:1])


def test_curve_shape_at_a_peak_chosen_elsewhere():
    values, stderr = [0.50, 0.60, 0.62, 0.40], [0.01] * 4
    assert probes.curve_shape(values, stderr).peak == 2
    at_1 = probes.curve_shape(values, stderr, peak=1)
    assert at_1.peak == 1 and at_1.verdict == "unimodal"
    assert at_1.rise == pytest.approx(0.10 / math.hypot(0.01, 0.01))
    # a chosen peak below an end has a negative margin
    at_0 = probes.curve_shape([0.5, 0.7, 0.6], None, peak=0)
    assert at_0.rise == 0.0 and at_0.fall == -math.inf and at_0.verdict == "flat"
    with pytest.raises(ValueError, match="peak must be an index"):
        probes.curve_shape(values, stderr, peak=4)


def _noisy_views(levels, N, p, noise, seed):
    """One class signal seen at ``levels`` views, each with its own independent noise: the
    views' errors are independent, so averaging their probes' logits should beat each alone."""
    g = torch.Generator().manual_seed(seed)
    K = 4
    labels = torch.arange(N) % K
    means = 1.0 * torch.randn(K, p, generator=g, dtype=torch.float64)
    return [
        means[labels] + noise * torch.randn(N, p, generator=g, dtype=torch.float64)
        for _ in range(levels)
    ], labels


def test_logistic_logits_are_the_probes_decisions():
    views, labels = _noisy_views(1, 600, 6, 2.0, seed=0)
    test, test_labels = _noisy_views(1, 400, 6, 2.0, seed=0)  # same class means, new noise
    logits = probes.logistic_logits(views[0], labels, [test[0], test[0][:10]])
    assert logits[0].shape == (400, 4) and logits[1].shape == (10, 4)
    assert torch.allclose(logits[1], logits[0][:10])
    accuracy = probes.logistic_probe(views[0], labels, test[0], test_labels)
    assert accuracy.item() == (logits[0].argmax(1) == test_labels).double().mean().item()
    with pytest.raises(ValueError, match=r"test_features\[0\] must be"):
        probes.logistic_logits(views[0], labels, test[0][:, :3])


@pytest.mark.parametrize(
    "center, levels, width, window",
    [(4, 9, 2, [2, 3, 4, 5, 6]), (0, 9, 2, [0, 1, 2, 3, 4]), (1, 9, 2, [0, 1, 2, 3, 4]),
     (8, 9, 2, [4, 5, 6, 7, 8]), (3, 9, 0, [3]), (2, 5, 2, [0, 1, 2, 3, 4])],
)  # fmt: skip
def test_ensemble_window_keeps_its_size_inside_the_grid(center, levels, width, window):
    assert probes.ensemble_window(center, levels, width) == window


def test_ensemble_window_errors():
    with pytest.raises(ValueError, match="center must be an index"):
        probes.ensemble_window(9, 9)
    with pytest.raises(ValueError, match="does not fit"):
        probes.ensemble_window(1, 4, 2)


def test_ensemble_probe_averages_the_members_logits():
    train, labels = _noisy_views(5, 800, 8, 3.0, seed=1)
    test, test_labels = _noisy_views(5, 2000, 8, 3.0, seed=1)
    test = [t + 0 for t in test]
    single, vote = probes.ensemble_probe(train, labels, test, test_labels, [0, 2, 4])
    for j, i in enumerate([0, 2, 4]):  # each member alone is the plain probe
        assert single[j].item() == probes.logistic_probe(train[i], labels, test[i], test_labels)
    logits = [probes.logistic_logits(train[i], labels, test[i])[0] for i in (0, 2, 4)]
    by_hand = (torch.stack(logits).mean(0).argmax(1) == test_labels).double().mean()
    assert vote.item() == by_hand.item()
    # independent errors: the soft vote of five views beats the best view by many std errors
    single5, vote5 = probes.ensemble_probe(train, labels, test, test_labels, range(5))
    se = (single5.max() * (1 - single5.max()) / len(test_labels)).sqrt()
    assert vote5 - single5.max() > 5 * se, (single5, vote5)
    with pytest.raises(ValueError, match="members must be indices"):
        probes.ensemble_probe(train, labels, test, test_labels, [5])


def test_label_noise_sweep_chooses_on_noisy_validation_and_scores_clean_tests():
    g = torch.Generator().manual_seed(3)
    K, p = 4, 6
    means = torch.randn(K, p, generator=g, dtype=torch.float64)

    def views(N):  # view 3 is the clearest, so rate 0 must choose it
        labels = torch.arange(N) % K
        return [
            means[labels] + s * torch.randn(N, p, generator=g, dtype=torch.float64)
            for s in (4.0, 3.0, 2.0, 0.7, 2.0, 3.0, 4.0)
        ], labels

    (train, y), (test, y_test) = views(1600), views(1000)
    sweep = probes.label_noise_sweep(train, y, test, y_test, [0.0, 0.3], [5, 6])
    assert sweep.single.shape == sweep.ensemble.shape == (2, 2)
    # K = 4, 30% flipped: accuracy against the noisy labels is 0.1 + 0.6 x the clean one, so with
    # the flips spread over the validation rows the clearest view still wins (were every
    # validation label wrong, the clearest view would lose)
    assert sweep.center.tolist() == [[3, 3], [3, 3]]
    for r, rate in enumerate((0.0, 0.3)):
        for j, seed in enumerate((5, 6)):  # by hand, from the same flips
            noisy = lr.data.flip_labels(y, rate, torch.Generator().manual_seed(seed))
            c = int(sweep.center[r, j])
            window = probes.ensemble_window(c, 7)
            single, vote = probes.ensemble_probe(train, noisy, test, y_test, window)
            assert sweep.single[r, j] == single[window.index(c)] and sweep.ensemble[r, j] == vote
    # wrong labels cost accuracy, and the clean test labels are what it is scored on
    assert bool((sweep.single[1] < sweep.single[0]).all())
    assert bool((sweep.single[0] > 0.8).all())


def test_logistic_logits_minimize_the_regularized_cross_entropy():
    """The closed-form gradient fits the same model as autograd would: at the returned
    classifier the autograd gradient of the objective vanishes (a strongly convex problem, so
    that is the minimizer)."""
    views, labels = _noisy_views(1, 300, 5, 1.5, seed=4)
    X, decay = views[0], 0.05
    Z = (X - X.mean(0)) / X.std(0)
    Z1 = torch.cat([Z, torch.ones(len(Z), 1, dtype=torch.float64)], 1)
    # the logits on the training rows themselves recover the classifier A (Z1 has full rank)
    logits = probes.logistic_logits(X, labels, X, weight_decay=decay)[0]
    A = torch.linalg.lstsq(Z1, logits).solution.requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(Z1 @ A, labels) + 0.5 * decay * A[:-1].square().sum()
    (grad,) = torch.autograd.grad(loss, A)
    assert grad.abs().max().item() < 2e-5, grad.abs().max()  # L-BFGS stops near 4e-6


def test_label_noise_sweeps_validation_rows_are_flipped_at_the_rate():
    """The validation split and the flips are drawn apart: the held-out rows carry about
    ``rate`` wrong labels, like the rest (seeded alike, they would all be wrong)."""
    N, rate, seed = 2000, 0.4, 7
    labels = torch.arange(N) % 10
    noisy = lr.data.flip_labels(labels, rate, torch.Generator().manual_seed(seed))
    order = torch.randperm(N, generator=torch.Generator().manual_seed(
        seed + probes._SPLIT_SEED_OFFSET))  # fmt: skip
    held = order[: round(0.2 * N)]  # best_level's validation rows
    wrong = (noisy[held] != labels[held]).double().mean().item()
    assert abs(wrong - rate) < 4 * (rate * (1 - rate) / len(held)) ** 0.5, wrong


class _Blocks(torch.nn.Module):
    """Stands in for a denoiser: block "blind" sees only zeros, block "sees" the noisy input."""

    def __init__(self):
        super().__init__()
        self.unet = torch.nn.ModuleDict(
            {"blind": torch.nn.Identity(), "sees": torch.nn.Identity()}
        )

    def block_names(self):
        return ["blind", "sees"]

    def forward(self, x_t, sigma):
        self.unet["blind"](torch.zeros_like(x_t))
        return self.unet["sees"](x_t)


def test_probe_network_chooses_the_informative_block_and_tests_it():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(600) % 10
    # class k: a bump of height 1 on channel k, seen through unit noise per image
    x = torch.nn.functional.one_hot(labels, 10).double()[:, :, None, None]
    x = (x + 0.3 * torch.randn(x.shape, generator=gen, dtype=torch.float64)).float()
    sigmas = [0.01, 0.3, 1.0, 3.0]
    result = probes.probe_network(_Blocks(), x[:400], labels[:400], x[400:], labels[400:], sigmas)
    assert result.layer == "sees"
    # chance is 0.1; 320 rows fit the probe, so it stays below the Bayes accuracy (0.99)
    assert result.validation.accuracy.max() > 0.8 and result.curve.accuracy[0] > 0.8
    assert result.curve.accuracy[-1] < 0.5  # sigma = 3 drowns the bump
    assert result.shape.verdict == "decreasing" and result.shape.peak == int(
        result.validation.accuracy.argmax()
    )
    blocks = _Blocks()
    features = lr.features.features_across_sigma(
        blocks.unet, blocks, ["sees"], x, sigmas, progress=False
    )["sees"]
    manual = probes.probe_across_sigma(
        sigmas, list(features[:, :400]), labels[:400], list(features[:, 400:]), labels[400:]
    )
    torch.testing.assert_close(result.curve.accuracy, manual.accuracy)
    assert result.crossfit is None and not result.shape.paired
    # paired: the peak chosen by cross-fitting on all 400 training rows, paired errors
    paired = probes.probe_network(
        _Blocks(), x[:400], labels[:400], x[400:], labels[400:], sigmas, paired=True
    )
    peak, crossfit = probes.crossfit_level(features[:, :400], labels[:400], sigmas=sigmas)
    assert paired.shape.paired and paired.shape.peak == peak
    assert torch.equal(paired.crossfit.correct, crossfit.correct)
    expected = lr.stats.paired_curve_shape(manual.correct, peak)
    assert (paired.shape.verdict, paired.shape.rise) == (expected.verdict, expected.rise)


def test_real_data_features_normalize_rows_then_centre_on_the_training_mean():
    gen = torch.Generator().manual_seed(5)
    train = torch.randn(50, 6, generator=gen) + 3
    test = torch.randn(20, 6, generator=gen) - 1
    h_train, h_test = metrics.real_data_features(train, test)
    unit_train = train.double() / train.double().norm(dim=1, keepdim=True)
    unit_test = test.double() / test.double().norm(dim=1, keepdim=True)
    torch.testing.assert_close(h_train, unit_train - unit_train.mean(0))
    torch.testing.assert_close(h_test, unit_test - unit_train.mean(0))  # the training mean
    assert h_train.dtype == torch.float64 and h_train.mean(0).abs().max() < 1e-12
