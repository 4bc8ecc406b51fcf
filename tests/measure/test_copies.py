"""Memorization and generalization scores against brute force and closed forms; the cached
classifier whose embedding they use."""

import math

import pytest
import torch

from lowrank.measure.copies import (
    copy_ratio,
    generalization_score,
    memorized_fraction,
    nearest_neighbours,
    similarity_threshold,
)


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
        neighbours = nearest_neighbours(queries, references, 3, metric, chunk_size=chunk)
        values, index = neighbours.values, neighbours.indices
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
