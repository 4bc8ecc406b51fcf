"""Power, detectable effects, families of tests and the exact permutation test, each against an
independent reference (scipy, or a hand enumeration)."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from lowrank.measure import inference, stats
from tests.bad_input_cases import check_case


def test_power_and_detectable_effect_are_the_normal_formulas():
    for effect, se, z in [(1.48, 0.5, 3.0), (0.3, 0.3, 3.0), (2.0, 1.0, 1.96), (-1.0, 0.4, 3.0)]:
        assert inference.power(effect, se, z) == pytest.approx(
            scipy_stats.norm.sf(z - effect / se), rel=1e-12, abs=1e-300
        )
    # the conventional MDE: 80% power at z = 3 is (3 + 0.8416) s.e.
    assert inference.detectable_effect(0.5) == pytest.approx(
        (3 + scipy_stats.norm.ppf(0.8)) * 0.5, rel=1e-12
    )
    assert inference.detectable_effect(0.5, power=0.5) == pytest.approx(1.5, rel=1e-12)
    # the two are inverse: the detectable effect at power p has power p
    for p in (0.2, 0.5, 0.8, 0.95):
        d = inference.detectable_effect(0.7, z=3.0, power=p)
        assert inference.power(d, 0.7, 3.0) == pytest.approx(p, rel=1e-9)


def test_gap_verdict_names_the_leader_and_the_gap_found_at_80_percent_power():
    def gap(mean, stderr):
        half = 2 * stderr
        return stats.PairedDifference(mean, stderr, mean - half, mean + half, 500, 0.95)

    assert inference.gap_verdict(gap(0.031, 0.01), "A", "B") == "A ahead"
    assert inference.gap_verdict(gap(-0.031, 0.01), "A", "B") == "B ahead"
    short = inference.gap_verdict(gap(-0.009, 0.0035), "A", "B")
    found = 100 * (3 + scipy_stats.norm.ppf(0.8)) * 0.0035  # 1.34 points
    assert short == (
        f"not told apart at 3 paired SE: B by 0.90 points (2.6 SE); a true gap of {found:.2f} "
        "points is found with 80% power"
    )
    assert inference.gap_verdict(gap(0.025, 0.01), "A", "B", z=2.0) == "A ahead"
    assert "no item differs" in inference.gap_verdict(gap(0.0, 0.0), "A", "B")
    assert inference.gap_verdict(gap(0.0, 0.01), "A", "B").startswith(
        "not told apart at 3 paired SE: no gap; a true gap of"
    )
    with pytest.raises(TypeError, match="stats.PairedDifference"):
        inference.gap_verdict(0.5, "A", "B")
    with pytest.raises(TypeError, match="second must be a non-empty string"):
        inference.gap_verdict(gap(0.01, 0.01), "A", None)
    for bad in ({"z": 0.0}, {"scale": -100.0}, {"scale": math.inf}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            inference.gap_verdict(gap(0.01, 0.01), "A", "B", **bad)


def test_bonferroni_and_the_familywise_rate():
    assert inference.bonferroni_level(0.95, 5) == pytest.approx(0.99)
    # the figure: the one-sided z = 3 tail over 100 independent curves
    tail = scipy_stats.norm.sf(3.0)
    assert inference.familywise_rate(tail, 100) == pytest.approx(1 - (1 - tail) ** 100, rel=1e-12)
    assert 0.12 < inference.familywise_rate(tail, 100) < 0.13
    assert inference.familywise_rate(0.0, 10) == 0.0 and inference.familywise_rate(1.0, 3) == 1.0


def test_holm_matches_a_hand_worked_family():
    """p = (0.01, 0.04, 0.03, 0.005), m = 4: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 gives
    0.02, 0.03, 0.06, 0.04; the running maximum makes the last 0.06."""
    adjusted = inference.holm([0.01, 0.04, 0.03, 0.005])
    torch.testing.assert_close(
        adjusted, torch.tensor([0.03, 0.06, 0.06, 0.02], dtype=torch.float64), rtol=0, atol=1e-15
    )
    assert inference.holm([0.5, 0.9]).tolist() == [1.0, 1.0]  # capped at 1
    # never below Bonferroni's rejections: every p * m <= alpha is also rejected by Holm
    p = torch.rand(20, generator=torch.Generator().manual_seed(0), dtype=torch.float64) / 10
    assert bool((inference.holm(p) <= (p * 20).clamp(max=1)).all())


@pytest.mark.parametrize("seed", range(3))
def test_permutation_test_enumerates_every_split_as_scipy_does(seed):
    gen = np.random.default_rng(seed)
    a, b = gen.normal(0.8, 1, 4), gen.normal(0, 1, 4)
    if seed == 2:
        a[:2] = b[:2] = 0.0  # zero-inflated, with ties
    ours = inference.permutation_test(a, b)
    exact = scipy_stats.permutation_test(
        (a, b), lambda x, y: np.mean(x) - np.mean(y), permutation_type="independent",
        n_resamples=np.inf, alternative="two-sided",
    )  # fmt: skip
    assert ours.splits == 70 and ours.difference == pytest.approx(a.mean() - b.mean())
    assert ours.p_value == pytest.approx(exact.pvalue, abs=1e-12)
    # and against a hand enumeration of the 70 splits
    pooled = np.concatenate([a, b])
    count = 0
    for group in itertools.combinations(range(8), 4):
        rest = [i for i in range(8) if i not in group]
        d = pooled[list(group)].mean() - pooled[rest].mean()
        count += abs(d) >= abs(a.mean() - b.mean()) - 1e-12
    assert ours.p_value == count / 70


def test_a_complete_separation_of_4_and_4_has_the_smallest_p():
    result = inference.permutation_test([5.0, 6, 7, 8], [1.0, 2, 3, 4])
    assert result.p_value == pytest.approx(2 / 70)  # the split itself and its mirror


def test_group_family_is_permutation_holm_and_bonferroni_t_by_scipy():
    """Three members, 4 + 4 values each: the exact p of each by scipy, Holm's adjustment by hand
    (sorted, times m - i, running maximum), and each t interval by scipy at 1 - 0.05/3."""
    gen = np.random.default_rng(7)
    a = {"big": gen.normal(3, 1, 4), "none": gen.normal(0, 1, 4), "zeros": np.zeros(4)}
    b = {"big": gen.normal(0, 1, 4), "none": gen.normal(0, 1, 4), "zeros": np.eye(4)[3]}
    family = inference.group_family(a, b)
    raw = {}
    for name in a:
        raw[name] = scipy_stats.permutation_test(
            (a[name], b[name]), lambda x, y: np.mean(x) - np.mean(y),
            permutation_type="independent", n_resamples=np.inf, alternative="two-sided",
        ).pvalue  # fmt: skip
        assert family[name].test.p_value == pytest.approx(raw[name], abs=1e-12)
        t = scipy_stats.ttest_ind(a[name], b[name]).confidence_interval(1 - 0.05 / 3)
        assert (family[name].interval.low, family[name].interval.high) == pytest.approx(
            (t.low, t.high), abs=1e-12
        )
    order = sorted(raw, key=raw.get)
    running = 0.0
    for i, name in enumerate(order):
        running = max(running, min(1.0, (3 - i) * raw[name]))
        assert family[name].p_holm == pytest.approx(running, abs=1e-12)
    # 4 + 4 over three members: the smallest Holm p is 3 * 2/70 > 0.05, so nothing is shown
    assert family["big"].test.p_value == pytest.approx(2 / 70)
    assert all(f.direction == "no change shown" for f in family.values())
    # alone, a complete separation is shown, with its sign
    alone = inference.group_family({"big": a["big"]}, {"big": b["big"]})["big"]
    assert alone.p_holm == pytest.approx(2 / 70) and alone.direction == "grew"
    flipped = inference.group_family({"big": b["big"]}, {"big": a["big"]})["big"]
    assert flipped.direction == "shrank"


def test_group_family_holm_rejects_what_bonferroni_would_not():
    """5 + 5 networks (252 splits), three blocks: "big" separates completely (p = 2/252),
    "mid" has p = 6/252 = 0.024, whose Bonferroni p (3 p = 0.071) misses 0.05 while Holm's
    (2 p = 0.048) meets it; "none" overlaps. A stricter family level keeps only what its
    adjusted p allows."""
    b = [0.0, 1.0, 2.0, 3.0, 4.0]
    a = {"big": [10.0, 11, 12, 13, 14], "mid": [5.0, 6, 7, 8, 2.5], "none": [0.5, 1.5, 2, 3, 4]}
    family = inference.group_family(a, dict.fromkeys(a, b))
    assert family["big"].test.p_value == pytest.approx(2 / 252)
    assert family["mid"].test.p_value == pytest.approx(6 / 252)
    assert family["big"].p_holm == pytest.approx(3 * 2 / 252)
    assert family["mid"].p_holm == pytest.approx(2 * 6 / 252)  # Bonferroni: 3 * 6/252 > 0.05
    assert [f.direction for f in family.values()] == ["grew", "grew", "no change shown"]
    mirrored = inference.group_family(dict.fromkeys(a, b), a)
    assert [f.direction for f in mirrored.values()] == ["shrank", "shrank", "no change shown"]
    strict = inference.group_family(a, dict.fromkeys(a, b), level=0.99)
    assert [f.direction for f in strict.values()] == ["no change shown"] * 3  # 0.024 > 0.01
    assert strict["big"].interval.level == pytest.approx(1 - 0.01 / 3)


def _reference_paired(correct: np.ndarray, peak: int):
    """The rise's paired s.e. (floored at one discordant item) and the largest upper end of the
    95% t intervals of a level minus the first, by numpy and scipy alone."""
    m = correct.shape[1]
    d = correct - correct[0]
    se = d.std(axis=1, ddof=1) / np.sqrt(m)
    t = scipy_stats.t.ppf(0.975, m - 1)
    return max(se[peak], 1 / m), float((d.mean(axis=1) + t * se).max())


@pytest.mark.parametrize("peak", [4, 0, 8])
def test_rise_check_against_numpy_and_scipy(peak):
    """An interior, a first-level and a last-level peak: the bound always; the rise found at 80%
    power and the power against 1.48 points only where a rise was tested."""
    g = np.random.default_rng(peak)
    rates = 0.80 + 0.01 * np.sin(np.linspace(0, np.pi, 9))  # a bump of one point, mid-grid
    correct = (g.random((9, 2_000)) < rates[:, None]).astype(float)
    shape = stats.paired_curve_shape(torch.from_numpy(correct), peak)
    check = inference.rise_check(torch.from_numpy(correct), shape, 0.0148)
    se, bound = _reference_paired(correct, peak)
    assert check.bound == pytest.approx(bound, rel=1e-3)  # the t quantile: torch's vs scipy's
    assert check.bound >= 0
    if peak == 0:
        assert not check.tested and check.reading == inference.UNTESTED
        assert math.isnan(check.detectable) and math.isnan(check.power)
        return
    assert check.tested and check.reading == shape.verdict
    assert check.detectable == pytest.approx((3 + scipy_stats.norm.ppf(0.8)) * se, rel=1e-9)
    assert check.power == pytest.approx(scipy_stats.norm.sf(3 - 0.0148 / se), rel=1e-9)
    assert math.isfinite(check.detectable)  # also at the last level, where shape.mde is inf


def test_rise_check_bound_is_the_largest_rise_a_curve_shows():
    """Items that all improve by one at level 2 of 3: the rise bound is at least that whole
    point, and the rise's s.e. is floored at one discordant item of 20."""
    correct = torch.zeros(3, 20, dtype=torch.float64)
    correct[1, :10] = 1  # level 1: half the items right, the others not
    correct[2] = 1  # level 2: every item right, a rise of the whole scale
    shape = stats.paired_curve_shape(correct, 2)
    check = inference.rise_check(correct, shape, 0.5)
    assert check.bound == pytest.approx(1.0)  # no spread: the interval is the point itself
    assert check.detectable == pytest.approx((3 + scipy_stats.norm.ppf(0.8)) / 20)


BAD_INPUTS = {
    "power with zero stderr": (lambda t: inference.power(1.0, 0.0), (ValueError, "stderr")),
    "power with NaN effect": (lambda t: inference.power(math.nan, 1.0), (ValueError, "effect")),
    "detectable effect at power 1": (
        lambda t: inference.detectable_effect(1.0, power=1.0),
        (ValueError, "power must lie in"),
    ),
    "bonferroni over 0 tests": (
        lambda t: inference.bonferroni_level(0.95, 0),
        (ValueError, "tests"),
    ),
    "holm of a p above 1": (lambda t: inference.holm([0.2, 1.5]), (ValueError, "p_values")),
    "holm of nothing": (lambda t: inference.holm([]), (ValueError, "at least one")),
    "familywise rate above 1": (
        lambda t: inference.familywise_rate(1.5, 3),
        (ValueError, "per_test"),
    ),
    "rise check of an unpaired shape": (
        lambda t: inference.rise_check(
            torch.ones(3, 30), stats.curve_shape([0.1, 0.2, 0.1], [0.01] * 3), 0.01
        ),
        (TypeError, "paired"),
    ),
    "rise check with a zero effect": (
        lambda t: inference.rise_check(
            torch.ones(3, 30), stats.paired_curve_shape(torch.ones(3, 30), 1), 0.0
        ),
        (ValueError, "effect"),
    ),
    "rise check of another curve": (
        lambda t: inference.rise_check(
            torch.ones(3, 30), stats.paired_curve_shape(torch.ones(5, 30), 4), 0.01
        ),
        (ValueError, "shape's peak 4"),
    ),
    "rise check of another curve's shape": (
        lambda t: inference.rise_check(
            torch.tensor([[1.0] * 30, [0.0] * 15 + [1.0] * 15, [1.0] * 30]),
            stats.paired_curve_shape(torch.ones(3, 30), 1),
            0.01,
        ),
        (ValueError, "not correct's rise"),
    ),
    "permutation test of one value": (
        lambda t: inference.permutation_test([1.0], [2.0, 3.0]),
        (ValueError, "at least 2 values"),
    ),
    "permutation test too large": (
        lambda t: inference.permutation_test(torch.zeros(15), torch.zeros(15)),
        (ValueError, "MAX_SPLITS"),
    ),
    "group family, names differ": (
        lambda t: inference.group_family({"x": [1.0, 2.0]}, {"y": [1.0, 2.0]}),
        (ValueError, "same members"),
    ),
    "group family, empty": (
        lambda t: inference.group_family({}, {}),
        (ValueError, "at least one"),
    ),
    "permutation test with NaN": (
        lambda t: inference.permutation_test([1.0, math.nan], [2.0, 3.0]),
        (ValueError, "finite"),
    ),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input(name, tmp_path):
    check_case(name, *BAD_INPUTS[name], tmp_path)


def test_unequal_groups_and_a_tiny_scale_by_hand():
    """3 + 5 values: the |difference| rule over all 56 splits, counted by hand; the same data
    scaled by 1e-15 give the same p (the rounding tolerance is relative)."""
    a, b = [2.0, 3.5, 4.0], [1.0, 0.5, 2.5, 1.5, 0.0]
    pooled = a + b
    observed = sum(a) / 3 - sum(b) / 5
    count = 0
    for group in itertools.combinations(range(8), 3):
        rest = [pooled[i] for i in range(8) if i not in group]
        d = sum(pooled[i] for i in group) / 3 - sum(rest) / 5
        count += abs(d) >= abs(observed) - 1e-12
    result = inference.permutation_test(a, b)
    assert result.splits == 56 and result.p_value == count / 56 < 0.1
    tiny = inference.permutation_test([1e-15 * v for v in a], [1e-15 * v for v in b])
    assert tiny.p_value == result.p_value
