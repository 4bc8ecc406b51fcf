"""lowrank.measure.ensembles: the window of voting levels and the soft vote, against the plain
probe and a hand-made vote."""

import pytest
import torch

from lowrank.measure import ensembles, probes


@pytest.mark.parametrize(
    "center, levels, width, window",
    [(4, 9, 2, [2, 3, 4, 5, 6]), (0, 9, 2, [0, 1, 2, 3, 4]), (1, 9, 2, [0, 1, 2, 3, 4]),
     (8, 9, 2, [4, 5, 6, 7, 8]), (3, 9, 0, [3]), (2, 5, 2, [0, 1, 2, 3, 4])],
)  # fmt: skip
def test_ensemble_window_keeps_its_size_inside_the_grid(center, levels, width, window):
    assert ensembles.ensemble_window(center, levels, width) == window


def test_ensemble_window_errors():
    with pytest.raises(ValueError, match="center must be an index"):
        ensembles.ensemble_window(9, 9)
    with pytest.raises(ValueError, match="does not fit"):
        ensembles.ensemble_window(1, 4, 2)


def test_ensemble_probe_averages_the_members_logits(noisy_views):
    train, labels = noisy_views(5, 800, 8, 3.0, seed=1)
    test, test_labels = noisy_views(5, 2000, 8, 3.0, seed=1)
    accuracy = ensembles.ensemble_probe(train, labels, test, test_labels, [0, 2, 4])
    single, vote = accuracy.single, accuracy.vote
    for j, i in enumerate([0, 2, 4]):  # each member alone is the plain probe
        assert single[j].item() == probes.logistic_probe(train[i], labels, test[i], test_labels)
    logits = [probes.logistic_logits(train[i], labels, test[i])[0] for i in (0, 2, 4)]
    by_hand = (torch.stack(logits).mean(0).argmax(1) == test_labels).double()
    assert vote.item() == by_hand.mean().item()
    # the items each member and the vote get right, for paired differences on the same items
    assert torch.equal(accuracy.vote_correct, by_hand)
    for j, z in enumerate(logits):
        assert torch.equal(accuracy.single_correct[j], (z.argmax(1) == test_labels).double())
    # independent errors: the soft vote of five views beats the best view by many std errors
    accuracy5 = ensembles.ensemble_probe(train, labels, test, test_labels, range(5))
    single5, vote5 = accuracy5.single, accuracy5.vote
    se = (single5.max() * (1 - single5.max()) / len(test_labels)).sqrt()
    assert vote5 - single5.max() > 5 * se, (single5, vote5)
    with pytest.raises(ValueError, match="members must be indices"):
        ensembles.ensemble_probe(train, labels, test, test_labels, [5])
