"""lowrank.measure.stats: paired differences, the unimodality test with paired errors and its
minimum detectable effect, the t quantile against scipy, with its bad-input table."""

import math
import statistics

import pytest
import torch
from scipy.stats import norm

from lowrank.measure import stats
from tests.bad_input_cases import check_case


def _curve(accuracy, M, seed=0):
    """(S, M) correctness whose levels share most items: item i is right at level s when a
    common uniform u_i < accuracy[s] (so the levels differ only on a few items)."""
    u = torch.rand(M, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.stack([u < a for a in accuracy])


def test_accuracy_interval_is_the_wilson_interval():
    interval = stats.accuracy_interval(90, 100)
    low, high = interval.low, interval.high
    assert interval.level == 0.95
    # Wilson, z = 1.95996: centre (0.9 + z^2/200) / (1 + z^2/100), known values 0.8256-0.9448
    assert low == pytest.approx(0.82564, abs=1e-4) and high == pytest.approx(0.94476, abs=1e-4)
    at_zero = stats.accuracy_interval(0, 50)
    low, high = at_zero.low, at_zero.high
    assert low == pytest.approx(0.0, abs=1e-12) and 0.05 < high < 0.08  # not a point at 0
    with pytest.raises(ValueError, match="correct must lie in"):
        stats.accuracy_interval(101, 100)


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
    shape = stats.curve_shape(values, stderr)
    assert shape.verdict == verdict, shape
    assert shape.peak == max(range(len(values)), key=values.__getitem__)


def test_curve_shape_margins_are_in_standard_errors():
    shape = stats.curve_shape([0.80, 0.83, 0.81], [0.01, 0.01, 0.01], z=2.0)
    assert shape.rise == pytest.approx(0.03 / math.sqrt(2 * 0.01**2))
    assert shape.fall == pytest.approx(0.02 / math.sqrt(2 * 0.01**2))
    assert shape.verdict == "increasing"  # 2.12 and 1.41 standard errors: only the rise > 2
    assert stats.curve_shape([0.80, 0.83, 0.81], [0.01] * 3, z=1.0).verdict == "unimodal"
    assert stats.curve_shape([0.80, 0.83, 0.81], [0.01] * 3, z=2.0).verdict != "unimodal"


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
    assert stats.curve_shape(values, stderr).verdict == shape


def test_seed_interval_is_the_t_interval():
    values = torch.tensor([[1.0, 10.0], [2.0, 10.0], [4.0, 13.0]])
    interval = stats.seed_interval(values)
    mean, half = interval.mean, interval.half_width
    assert interval.seeds == 3 and interval.level == 0.95
    assert mean.tolist() == pytest.approx([7 / 3, 11.0])
    s = values.double().std(0)
    assert half.tolist() == pytest.approx((4.302652730 * s / 3**0.5).tolist(), rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        stats.seed_interval(values[:1])


def test_curve_shape_at_a_peak_chosen_elsewhere():
    values, stderr = [0.50, 0.60, 0.62, 0.40], [0.01] * 4
    assert stats.curve_shape(values, stderr).peak == 2
    at_1 = stats.curve_shape(values, stderr, peak=1)
    assert at_1.peak == 1 and at_1.verdict == "unimodal"
    assert at_1.rise == pytest.approx(0.10 / math.hypot(0.01, 0.01))
    # a chosen peak below an end has a negative margin
    at_0 = stats.curve_shape([0.5, 0.7, 0.6], None, peak=0)
    assert at_0.rise == 0.0 and at_0.fall == -math.inf and at_0.verdict == "flat"
    with pytest.raises(ValueError, match="peak must be an index"):
        stats.curve_shape(values, stderr, peak=4)


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


def test_mde_of_a_decreasing_curve_is_set_by_its_rise():
    """A curve that falls far to its last level is held back by its rise alone."""
    shape = stats.curve_shape([0.80, 0.80, 0.40], [0.01, 0.01, 0.05], peak=1)
    assert shape.verdict == "decreasing"
    assert shape.mde == pytest.approx(3 * math.sqrt(2) * 0.01)  # not 3 * hypot(0.01, 0.05)
    assert shape.summary().startswith("decreasing: a rise to the peak below 4.24 points")
    # at 80% power the binding side's error times z + 0.8416 (scipy's normal quantile)
    assert shape.detectable() == pytest.approx((3 + norm.ppf(0.8)) * math.sqrt(2) * 0.01)
    assert shape.detectable(0.5) == pytest.approx(shape.mde, rel=1e-12)
    wide = stats.curve_shape([0.80, 0.80, 0.40], [0.01, 0.01, 0.05], z=2.0, peak=1)
    assert wide.detectable() == pytest.approx((2 + norm.ppf(0.8)) * math.sqrt(2) * 0.01)
    assert math.isinf(stats.curve_shape([0.9, 0.8, 0.7], [0.01] * 3).detectable())
    # either side on its own error: a unimodal verdict's mde names the larger (the fall here)
    both = stats.curve_shape([0.80, 0.95, 0.40], [0.01, 0.01, 0.05], peak=1)
    assert both.verdict == "unimodal"
    assert both.errors == pytest.approx((math.hypot(0.01, 0.01), math.hypot(0.01, 0.05)))
    k = 3 + norm.ppf(0.8)
    assert both.detectable(side="first") == pytest.approx(k * math.hypot(0.01, 0.01))
    assert both.detectable(side="last") == pytest.approx(k * math.hypot(0.01, 0.05))
    assert both.detectable() == both.detectable(side="last")
    with pytest.raises(ValueError, match="side must be"):
        both.detectable(side="rise")


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


def test_a_side_where_no_item_differs_has_the_error_of_one_item():
    """Every item right at every level: no discordant item, so the paired error would be 0 and
    the MDE 0 ("a bump below 0.00 points would not be seen"); the floor is one item's 1/M."""
    shape = stats.paired_curve_shape(torch.ones(3, 50), peak=1)
    assert shape.verdict == "flat" and shape.mde == pytest.approx(3 / 50)
    assert shape.rise == 0 and shape.fall == 0  # gaps of 0 stay 0 margins, not NaN
    # one item right at the peak only: a margin of one error, not an infinite one
    correct = torch.zeros(3, 50)
    correct[1, 0] = 1
    shape = stats.paired_curve_shape(correct, peak=1)
    assert shape.rise == pytest.approx(1.0) and shape.verdict == "flat"


BAD_INPUT = {
    "seed interval of NaN": (
        lambda t: stats.seed_interval(torch.tensor([1.0, float("nan")])),
        (ValueError, "values must be finite"),
    ),
    "seed interval of inf": (
        lambda t: stats.seed_interval(torch.tensor([1.0, float("inf")])),
        (ValueError, "values must be finite"),
    ),
    "seed interval of one seed": (
        lambda t: stats.seed_interval(torch.tensor([1.0])),
        (ValueError, "at least 2 seeds"),
    ),
    "seed interval of a scalar": (
        lambda t: stats.seed_interval(torch.tensor(1.0)),
        (ValueError, "at least 2 seeds"),
    ),
    "seed interval at level 1": (
        lambda t: stats.seed_interval(torch.tensor([1.0, 2.0]), level=1.0),
        (ValueError, "level must lie in (0, 1)"),
    ),
    "seed interval overflowing": (
        lambda t: stats.seed_interval(torch.tensor([1e308, -1e308], dtype=torch.float64)),
        (ValueError, "overflow"),
    ),
    "group interval of a 2-D group": (
        lambda t: stats.group_interval(torch.ones(2, 3), torch.ones(3)),
        (ValueError, "1-D groups"),
    ),
    "group interval overflowing": (
        lambda t: stats.group_interval([1e308, 1e308], [-1e308, -1e308]),
        (ValueError, "overflow"),
    ),
    "paired interval overflowing": (
        lambda t: stats.paired_interval([1e308, -1e308, 1e308], [-1e308, 1e308, 0.0]),
        (ValueError, "overflow"),
    ),
    "accuracy interval of a fraction": (
        lambda t: stats.accuracy_interval(torch.tensor(2.7), 10),
        (ValueError, "whole count"),
    ),
    "accuracy interval of an infinite count": (
        lambda t: stats.accuracy_interval(torch.tensor(float("inf")), 10),
        (ValueError, "whole count"),
    ),
    "accuracy interval of a whole float count": (
        lambda t: stats.accuracy_interval(torch.tensor(2.0), 10),
        lambda interval: interval == stats.accuracy_interval(2, 10),
    ),
    "paired shape on 2 items": (
        lambda t: stats.paired_curve_shape(torch.tensor([[0.0, 0], [1, 1], [0, 0]]), peak=1),
        (ValueError, "at least 20"),
    ),
}


@pytest.mark.parametrize("name", BAD_INPUT)
def test_bad_input(name, tmp_path):
    check_case(name, *BAD_INPUT[name], tmp_path)
