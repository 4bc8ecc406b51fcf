"""lowrank.stats: paired differences, the unimodality test with paired errors and its minimum
detectable effect, against independent computations."""

import math
import statistics

import pytest
import torch

from lowrank import probes, stats


def test_paired_interval_against_an_independent_computation():
    a = [1, 1, 0, 1, 1, 0, 1, 1, 1, 0]
    b = [1, 0, 0, 1, 0, 0, 1, 1, 0, 0]
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean, sd = statistics.fmean(d), statistics.stdev(d)
    t_975_9 = 2.262157  # Student's t, 9 degrees of freedom, two-sided 95% (printed tables)
    out = stats.paired_interval(torch.tensor(a), torch.tensor(b))
    assert out.mean == pytest.approx(0.3, abs=1e-15) and out.n == 10
    assert out.stderr == pytest.approx(sd / math.sqrt(10), rel=1e-12)
    assert out.low == pytest.approx(mean - t_975_9 * sd / math.sqrt(10), rel=1e-5)
    assert out.high == pytest.approx(mean + t_975_9 * sd / math.sqrt(10), rel=1e-5)
    # the paired error is the independent one less the covariance the items share
    A, B = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    cov = torch.cov(torch.stack([A, B]))
    shared = math.sqrt((cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]).item() / 10)
    assert out.stderr == pytest.approx(shared, rel=1e-12)
    assert out.stderr < math.sqrt((cov[0, 0] + cov[1, 1]).item() / 10)


def test_paired_difference_z_is_the_mean_in_standard_errors():
    a = [1, 1, 0, 1, 1, 0, 1, 1, 1, 0]
    b = [1, 0, 0, 1, 0, 0, 1, 1, 0, 0]
    d = [x - y for x, y in zip(a, b, strict=True)]
    out = stats.paired_interval(torch.tensor(a), torch.tensor(b))
    assert out.z == pytest.approx(statistics.fmean(d) / (statistics.stdev(d) / math.sqrt(10)))
    assert stats.paired_interval(torch.tensor(b), torch.tensor(a)).z == pytest.approx(-out.z)
    # every differing item differs alike: an exact gap, infinitely many errors, with its sign
    same, better = torch.tensor([0.0, 0.0, 1.0, 1.0]), torch.tensor([0.0, 0.0, 1.0, 1.0]) + 0.5
    assert stats.paired_interval(better, same).z == math.inf
    assert stats.paired_interval(same, better).z == -math.inf
    assert stats.paired_interval(same, same).z == 0.0


def test_paired_interval_covers_the_truth_at_its_level():
    """Items of varying difficulty scored twice: 95% intervals cover the true difference in
    about 95% of 400 replicates (binomial 5th-95th percentiles: 92.8-97.0%)."""
    g = torch.Generator().manual_seed(0)
    truth, covered = 0.02, 0
    for _ in range(400):
        p = torch.rand(500, generator=g, dtype=torch.float64) * 0.9
        a = torch.rand(500, generator=g, dtype=torch.float64) < p + truth
        b = torch.rand(500, generator=g, dtype=torch.float64) < p
        out = stats.paired_interval(a, b)
        covered += out.low <= truth <= out.high
    assert 0.92 <= covered / 400 <= 0.975, covered


def _curve(accuracy, M, seed=0):
    """(S, M) correctness whose levels share most items: item i is right at level s when a
    common uniform u_i < accuracy[s] (so the levels differ only on a few items)."""
    u = torch.rand(M, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.stack([u < a for a in accuracy])


def test_paired_curve_shape_sees_a_bump_that_unpaired_errors_miss():
    c = _curve([0.80, 0.82, 0.80], 2000)
    paired = stats.paired_curve_shape(c, peak=1)
    acc = c.double().mean(1)
    unpaired = stats.curve_shape(acc, (acc * (1 - acc) / 2000).sqrt(), peak=1)
    assert paired.verdict == "unimodal" and unpaired.verdict == "flat"
    # the margin: 40 discordant items, all one way: mean 0.02, stderr sqrt(0.02 * 0.98 / 2000)
    gap = c[1].sum().item() - c[0].sum().item()
    assert paired.gap_first == pytest.approx(gap / 2000, abs=1e-15)
    se = statistics.stdev((c[1].double() - c[0].double()).tolist()) / math.sqrt(2000)
    assert paired.rise == pytest.approx(paired.gap_first / se, rel=1e-12)
    assert paired.mde == pytest.approx(3 * se, rel=1e-12)  # both ends differ alike here
    assert paired.paired and not unpaired.paired
    assert paired.mde < unpaired.mde / 3


def test_minimum_detectable_effect_is_the_threshold_of_the_verdict():
    """A bump just above the MDE at both ends is called unimodal; one just below is not."""
    shape = stats.curve_shape([0.80, 0.80, 0.80], [0.01, 0.01, 0.01], peak=1)
    assert shape.mde == pytest.approx(3 * math.sqrt(2) * 0.01)
    above = stats.curve_shape([0.80, 0.80 + 1.01 * shape.mde, 0.80], [0.01] * 3, peak=1)
    below = stats.curve_shape([0.80, 0.80 + 0.99 * shape.mde, 0.80], [0.01] * 3, peak=1)
    assert (above.verdict, below.verdict) == ("unimodal", "flat")
    at_end = stats.curve_shape([0.9, 0.8, 0.7], [0.01] * 3)
    assert at_end.verdict == "decreasing" and math.isinf(at_end.mde)
    assert "no bump can be seen" in at_end.summary()
    assert below.summary() == "flat: a bump above both ends below 4.24 points would not be seen"
    assert above.summary().startswith("unimodal: the peak stands 4.29 points above both ends")


def test_crossfit_level_scores_every_row_with_the_probe_that_did_not_see_it():
    g = torch.Generator().manual_seed(1)
    y = torch.arange(3).repeat(40)
    levels = [torch.randn(120, 5, generator=g, dtype=torch.float64) + s * torch.eye(3, 5)[y]
              for s in (0.5, 3.0, 1.0)]  # fmt: skip
    peak, curve = probes.crossfit_level(levels, y, seed=4)
    assert peak == 1 and curve.correct.shape == (3, 120)
    order = torch.randperm(120, generator=torch.Generator().manual_seed(4))
    A, B = order[:60], order[60:]
    for i, F in enumerate(levels):
        on_b = probes.logistic_logits(F[A], y[A], F[B])[0].argmax(1) == y[B]
        on_a = probes.logistic_logits(F[B], y[B], F[A])[0].argmax(1) == y[A]
        assert torch.equal(curve.correct[i, B], on_b) and torch.equal(curve.correct[i, A], on_a)
    assert torch.equal(curve.accuracy, curve.correct.double().mean(1))


def test_mde_of_a_decreasing_curve_is_set_by_its_rise():
    """A curve that falls far to its last level is held back by its rise alone."""
    shape = stats.curve_shape([0.80, 0.80, 0.40], [0.01, 0.01, 0.05], peak=1)
    assert shape.verdict == "decreasing"
    assert shape.mde == pytest.approx(3 * math.sqrt(2) * 0.01)  # not 3 * hypot(0.01, 0.05)
    assert shape.summary().startswith("decreasing: a rise to the peak below 4.24 points")


def test_group_interval_against_an_independent_computation():
    a, b = [1.2, 0.4, 0.9, 1.5], [0.1, -0.3, 0.5, 0.2]
    pooled = ((3 * statistics.variance(a) + 3 * statistics.variance(b)) / 6) ** 0.5
    se = pooled * math.sqrt(1 / 4 + 1 / 4)
    t_975_6 = 2.446912  # Student's t, 6 degrees of freedom, two-sided 95% (printed tables)
    out = stats.group_interval(torch.tensor(a, dtype=torch.float64), b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    assert out.mean == pytest.approx(diff, rel=1e-12) and (out.n_a, out.n_b) == (4, 4)
    assert out.stderr == pytest.approx(se, rel=1e-12)
    # equal sizes: the pooled error is Welch's
    welch = math.sqrt(statistics.variance(a) / 4 + statistics.variance(b) / 4)
    assert out.stderr == pytest.approx(welch, rel=1e-12)
    assert out.low == pytest.approx(diff - t_975_6 * se, rel=1e-5)
    assert out.high == pytest.approx(diff + t_975_6 * se, rel=1e-5)
    # one value against four: df = 3, the lone value's variance unknown but pooled
    one = stats.group_interval([2.0], b)
    assert one.stderr == pytest.approx(
        math.sqrt(3 * statistics.variance(b) / 3 * (1 + 1 / 4)), rel=1e-12
    )
    with pytest.raises(ValueError, match="three in all"):
        stats.group_interval([1.0], [2.0])
    with pytest.raises(ValueError, match="finite"):
        stats.group_interval([1.0, math.nan], [2.0])


def test_probe_blocks_tests_every_block_at_its_cross_fitted_peak():
    """Two blocks: one whose class signal peaks at the middle level, one whose signal falls.
    Each is judged at its own cross-fitted peak, with the paired test of its test curve."""
    g = torch.Generator().manual_seed(0)
    N, M, K = 400, 600, 4
    y_tr, y_te = torch.arange(N) % K, torch.arange(M) % K
    centres = torch.randn(K, 6, generator=g)

    def block(strengths, y):
        return torch.stack([s * centres[y] + torch.randn(len(y), 6, generator=g)
                            for s in strengths])  # fmt: skip

    sig = torch.tensor([0.01, 0.1, 1.0], dtype=torch.float64)
    bump, falls = (0.2, 1.0, 0.2), (1.0, 0.6, 0.2)
    train = {"bump": block(bump, y_tr), "falls": block(falls, y_tr)}
    test = {"bump": block(bump, y_te), "falls": block(falls, y_te)}
    out = probes.probe_blocks(sig, train, y_tr, test, y_te, seed=3)
    assert set(out) == {"bump", "falls"}
    for name, r in out.items():
        peak, crossfit = probes.crossfit_level(train[name], y_tr, seed=3, sigmas=sig)
        direct = probes.probe_across_sigma(sig, list(train[name]), y_tr, list(test[name]), y_te)
        assert r.shape.peak == peak and torch.equal(r.crossfit.correct, crossfit.correct)
        assert torch.equal(r.curve.correct, direct.correct)
        assert r.shape == stats.paired_curve_shape(direct.correct, peak)
    assert out["bump"].shape.verdict == "unimodal" and out["bump"].shape.peak == 1
    assert out["falls"].shape.peak == 0 and math.isinf(out["falls"].shape.mde)
    with pytest.raises(ValueError, match="name the same blocks"):
        probes.probe_blocks(sig, train, y_tr, {"bump": test["bump"]}, y_te)


def test_paired_curve_is_each_level_against_the_reference_by_hand():
    """Three levels on eight items: every row's mean, standard error and t interval computed
    with the standard library from the per-item differences."""
    scores = [[1, 0, 1, 1, 0, 1, 0, 1], [1, 1, 1, 1, 0, 1, 1, 1], [0, 0, 1, 0, 0, 1, 0, 0]]
    t_975_7 = 2.364624  # Student's t, 7 degrees of freedom, two-sided 95% (printed tables)
    out = stats.paired_curve(torch.tensor(scores), reference=1)
    for s, row in enumerate(scores):
        d = [x - y for x, y in zip(row, scores[1], strict=True)]
        mean = statistics.fmean(d)
        se = statistics.stdev(d) / math.sqrt(8) if s != 1 else 0.0
        assert out.mean[s].item() == pytest.approx(mean, abs=1e-15)
        assert out.stderr[s].item() == pytest.approx(se, rel=1e-12, abs=1e-15)
        assert out.low[s].item() == pytest.approx(mean - t_975_7 * se, rel=1e-5, abs=1e-12)
        assert out.high[s].item() == pytest.approx(mean + t_975_7 * se, rel=1e-5, abs=1e-12)
    assert out.mean.tolist()[1] == 0.0 and out.reference == 1 and out.level == 0.95
    with pytest.raises(ValueError, match="reference must be an index"):
        stats.paired_curve(torch.tensor(scores), reference=3)
