"""Probes across sigma, accuracy intervals, the unimodality test, and Definition 1's SNR on given
features (the real-data recipe included)."""

import math

import pytest
import torch
from scipy import stats as scipy_stats

from lowrank import data
from lowrank.experiments import label_noise
from lowrank.measure import ensembles


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
    sweep = label_noise.label_noise_sweep((train, y), (test, y_test), [0.0, 0.3], [5, 6])
    assert sweep.single.shape == sweep.ensemble.shape == (2, 2)
    # K = 4, 30% flipped: accuracy against the noisy labels is 0.1 + 0.6 x the clean one, so with
    # the flips spread over the validation rows the clearest view still wins (were every
    # validation label wrong, the clearest view would lose)
    assert sweep.center.tolist() == [[3, 3], [3, 3]]
    for r, rate in enumerate((0.0, 0.3)):
        for j, seed in enumerate((5, 6)):  # by hand, from the same flips
            noisy = data.flip_labels(y, rate, torch.Generator().manual_seed(seed))
            c = int(sweep.center[r, j])
            window = ensembles.ensemble_window(c, 7)
            accuracy = ensembles.ensemble_probe(train, noisy, test, y_test, window)
            single, vote = accuracy.single, accuracy.vote
            assert sweep.single[r, j] == single[window.index(c)] and sweep.ensemble[r, j] == vote
            assert torch.equal(sweep.ensemble_correct[r, j], accuracy.vote_correct)
    # wrong labels cost accuracy, and the clean test labels are what it is scored on
    assert bool((sweep.single[1] < sweep.single[0]).all())
    assert bool((sweep.single[0] > 0.8).all())
    # the gain at each rate, paired on the test items (each item's correctness averaged over
    # the flips), by hand: the mean and standard error of the per-item differences
    for r, gain in enumerate(sweep.paired_gain()):
        d = sweep.ensemble_correct[r].mean(0) - sweep.single_correct[r].mean(0)
        assert gain.n == len(y_test) and gain.level == 0.95
        assert math.isclose(gain.mean, d.mean().item(), rel_tol=1e-12, abs_tol=1e-15)
        assert math.isclose(gain.stderr, (d.std() / len(d) ** 0.5).item(), rel_tol=1e-12)
        assert gain.low < gain.mean < gain.high
    wider = sweep.paired_gain(0.99)[1]
    assert wider.low < sweep.paired_gain()[1].low and wider.mean == sweep.paired_gain()[1].mean
    # the change of the gain from 0 to 0.3, paired on the items, by scipy's paired t interval
    per_item = (sweep.ensemble_correct - sweep.single_correct).mean(1).numpy()
    change = sweep.gain_change(0.0, 0.3)
    reference = scipy_stats.ttest_rel(per_item[1], per_item[0]).confidence_interval(0.95)
    assert math.isclose(change.mean, (per_item[1] - per_item[0]).mean(), abs_tol=1e-15)
    assert math.isclose(change.low, reference.low, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(change.high, reference.high, rel_tol=1e-9, abs_tol=1e-12)
    assert sweep.gain_change(0.3, 0.0).mean == -change.mean
    with pytest.raises(ValueError, match="to_rate = 0.5 is not a rate of the sweep"):
        sweep.gain_change(0.0, 0.5)
    with pytest.raises(ValueError, match="from_rate = 0.1 is not a rate of the sweep"):
        sweep.gain_change(0.1, 0.3)


def test_label_noise_sweeps_validation_rows_are_flipped_at_the_rate():
    """The validation split and the flips are drawn apart: the held-out rows carry about
    ``rate`` wrong labels, like the rest (seeded alike, they would all be wrong)."""
    N, rate, seed = 2000, 0.4, 7
    labels = torch.arange(N) % 10
    noisy = data.flip_labels(labels, rate, torch.Generator().manual_seed(seed))
    order = torch.randperm(N, generator=torch.Generator().manual_seed(
        seed + label_noise.SPLIT_SEED_OFFSET))  # fmt: skip
    held = order[: round(0.2 * N)]  # best_level's validation rows
    wrong = (noisy[held] != labels[held]).double().mean().item()
    assert abs(wrong - rate) < 4 * (rate * (1 - rate) / len(held)) ** 0.5, wrong
