"""lowrank.measure.levels: the layer and the level chosen on training features only."""

import pytest
import torch

from lowrank.measure import levels, probes
from tests.bad_input_cases import check_case


def test_probe_layers_and_best_layer_on_validation(layer_features):
    gen = torch.Generator().manual_seed(0)
    train, y = layer_features(gen, 600, [4.0, 2.0, 0.0])
    test, y_test = layer_features(gen, 300, [4.0, 2.0, 0.0])
    sigmas = [0.01, 0.1, 1.0]
    curves = probes.probe_layers(sigmas, train, y, test, y_test)
    one = probes.probe_across_sigma(sigmas, list(train["signal"]), y, list(test["signal"]), y_test)
    assert torch.equal(curves["signal"].accuracy, one.accuracy)
    assert curves["signal"].accuracy[0] > 0.9 and curves["noise"].accuracy.max() < 0.25
    choice = levels.best_layer(sigmas, train, y)
    name, validation = choice.name, choice.curves
    assert name == "signal"
    # the validation curves use a fifth of the training rows, never the test rows
    assert validation["signal"].accuracy.shape == (3,)
    assert all(
        (c.accuracy * 120).round().sub(c.accuracy * 120).abs().max() < 1e-9
        for c in validation.values()
    )
    # the highest peak wins, not the highest mean: "late" is better on average, "sharp" peaks
    gen = torch.Generator().manual_seed(2)
    sharp, y2 = layer_features(gen, 600, [5.0, 0.0, 0.0])
    late, _ = layer_features(torch.Generator().manual_seed(3), 600, [1.5, 1.5, 1.5])
    choice_2 = levels.best_layer(sigmas, {"late": late["signal"], "sharp": sharp["signal"]}, y2)
    chosen, curves_2 = choice_2.name, choice_2.curves
    assert curves_2["late"].accuracy.mean() > curves_2["sharp"].accuracy.mean()
    assert chosen == "sharp"
    with pytest.raises(ValueError, match="validation must lie in"):
        levels.best_layer(sigmas, train, y, validation=1.0)


def test_best_level_is_best_layers_choice_along_the_grid(layer_features):
    gen = torch.Generator().manual_seed(4)
    train, y = layer_features(
        gen, 600, [0.0, 3.0, 1.0]
    )  # the signal is strongest at the middle level
    level_choice = levels.best_level(train["signal"], y, seed=5)
    level, curve = level_choice.index, level_choice.curve
    by_layer = levels.best_layer([0.01, 0.1, 1.0], {"signal": train["signal"]}, y, seed=5).curves
    assert level == 1 == int(by_layer["signal"].accuracy.argmax())
    assert torch.equal(curve.accuracy, by_layer["signal"].accuracy)  # the same split and probes
    assert torch.equal(curve.sigmas, torch.arange(3, dtype=torch.float64))
    named = levels.best_level(list(train["signal"]), y, seed=5, sigmas=[0.01, 0.1, 1.0]).curve
    assert named.sigmas.tolist() == [0.01, 0.1, 1.0]
    with pytest.raises(ValueError, match="validation must lie in"):
        levels.best_level(train["signal"], y, validation=0.0)


def test_crossfit_level_scores_every_row_with_the_probe_that_did_not_see_it():
    g = torch.Generator().manual_seed(1)
    y = torch.arange(3).repeat(40)
    per_level = [torch.randn(120, 5, generator=g, dtype=torch.float64) + s * torch.eye(3, 5)[y]
                 for s in (0.5, 3.0, 1.0)]  # fmt: skip
    peak_choice = levels.crossfit_level(per_level, y, seed=4)
    peak, curve = peak_choice.index, peak_choice.curve
    assert peak == 1 and curve.correct.shape == (3, 120)
    order = torch.randperm(120, generator=torch.Generator().manual_seed(4))
    A, B = order[:60], order[60:]
    for i, F in enumerate(per_level):
        on_b = probes.logistic_logits(F[A], y[A], F[B])[0].argmax(1) == y[B]
        on_a = probes.logistic_logits(F[B], y[B], F[A])[0].argmax(1) == y[A]
        assert torch.equal(curve.correct[i, B], on_b) and torch.equal(curve.correct[i, A], on_a)
    assert torch.equal(curve.accuracy, curve.correct.double().mean(1))
    # the projection classifier, cross-fitted the same way, by hand on the same halves
    projected = levels.crossfit_level(per_level, y, seed=4, method="projection", rank=2).curve
    for i, F in enumerate(per_level):
        on_b = probes.projection_classifier(F[A], y[A], F[B], 2) == y[B]
        on_a = probes.projection_classifier(F[B], y[B], F[A], 2) == y[A]
        assert torch.equal(projected.correct[i, B], on_b)
        assert torch.equal(projected.correct[i, A], on_a)
    assert not torch.equal(projected.correct, curve.correct)  # another classifier


def _three_classes(N=60, p=4, levels=3):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(N // 3)
    return [torch.randn(N, p, generator=g, dtype=torch.float64) + s * torch.eye(3, p)[y]
            for s in (0.5, 3.0, 1.0)[:levels]], y  # fmt: skip


BAD_INPUT = {
    "crossfit with sigmas of the wrong length": (
        lambda t: levels.crossfit_level(*_three_classes(), sigmas=[0.1, 0.2]),
        (ValueError, "sigmas has 2 levels but train_features has 3"),
    ),
    "crossfit with an unknown method": (
        lambda t: levels.crossfit_level(*_three_classes(), method="knn"),
        (ValueError, "method must be 'logistic' or 'projection'"),
    ),
    "crossfit on a descending grid": (
        lambda t: levels.crossfit_level(*_three_classes(), sigmas=[1.0, 0.5, 0.1]),
        (ValueError, "sigmas must increase strictly"),
    ),
}


@pytest.mark.parametrize("name", BAD_INPUT)
def test_bad_input(name, tmp_path):
    check_case(name, *BAD_INPUT[name], tmp_path)


def _blocks(seed, N, strengths):
    """``{name: (3, N, 4)}`` features of blocks whose class signal has the given strength."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(3).repeat(N // 3)
    means = torch.eye(3, 4, dtype=torch.float64)[y]
    return {
        name: torch.stack(
            [s * means + torch.randn(N, 4, generator=g, dtype=torch.float64) for _ in range(3)]
        )  # fmt: skip
        for name, s in strengths.items()
    }, y


def test_block_per_sigma_envelope_is_the_per_level_maximum_of_crossfit_curves():
    features, y = _blocks(0, 150, {"a": 1.0, "b": 1.2, "c": 0.8})
    result = levels.block_per_sigma([0.01, 0.1, 1.0], features, y, seed=3)
    curves = {n: levels.crossfit_level(F, y, seed=3).curve.accuracy for n, F in features.items()}
    stacked = torch.stack(list(curves.values()))
    torch.testing.assert_close(result.envelope, stacked.max(0).values, rtol=0, atol=0)
    assert result.blocks == [list(curves)[i] for i in stacked.argmax(0).tolist()]
    assert result.sigmas.tolist() == [0.01, 0.1, 1.0]


def test_block_per_sigma_inflation_is_zero_for_a_clear_winner_and_positive_for_noise():
    clear, y = _blocks(1, 150, {"signal": 6.0, "noise": 0.0})
    result = levels.block_per_sigma([0.1, 0.2, 0.3], clear, y)
    assert result.blocks == ["signal"] * 3
    # one block wins on both halves: naive and honest are the same two numbers, swapped
    assert result.inflation.abs().max().item() < 1e-12
    noise, y = _blocks(2, 90, {f"n{i}": 0.0 for i in range(8)})
    result = levels.block_per_sigma([0.1, 0.2, 0.3], noise, y)
    # eight blocks of pure noise: the best of eight flatters itself; the choice is worth chance
    assert result.inflation.mean().item() > 0.03
    assert abs(result.honest.mean().item() - 1 / 3) < 0.1


def test_block_per_sigma_names_bad_inputs():
    features, y = _blocks(0, 30, {"a": 1.0})
    with pytest.raises(ValueError, match="at least one block"):
        levels.block_per_sigma([0.1, 0.2, 0.3], {}, y)
    with pytest.raises(ValueError, match=r"train_features\['a'\] must be \(S, N, p\)"):
        levels.block_per_sigma([0.1, 0.2], features, y)
    with pytest.raises(ValueError, match="sigmas must increase strictly"):
        levels.block_per_sigma([0.3, 0.2, 0.1], features, y)


def test_block_per_sigma_from_crossfit_curves_equals_fitting_again():
    features, y = _blocks(5, 120, {"a": 0.4, "b": 0.5, "c": 0.3})
    sigmas = [0.01, 0.1, 1.0]
    fitted = levels.block_per_sigma(sigmas, features, y, seed=2)
    crossfits = {n: levels.crossfit_level(F, y, seed=2, sigmas=sigmas).curve
                 for n, F in features.items()}  # fmt: skip
    reused = levels.block_per_sigma_from_crossfit(crossfits, y, seed=2)
    for field in ("envelope", "honest", "inflation", "sigmas"):
        torch.testing.assert_close(getattr(reused, field), getattr(fitted, field), rtol=0, atol=0)
    assert reused.blocks == fitted.blocks
    assert fitted.inflation.abs().max() > 0  # three close blocks: a choice that can mislead
    # curves cross-fitted with other halves are another experiment: their result differs
    other = {n: levels.crossfit_level(F, y, seed=7, sigmas=sigmas).curve
             for n, F in features.items()}  # fmt: skip
    mixed = levels.block_per_sigma_from_crossfit(other, y, seed=2)
    assert not torch.equal(mixed.honest, fitted.honest)
    with pytest.raises(ValueError, match=r"crossfits\['a'\] must keep its \(S, N\)"):
        levels.block_per_sigma_from_crossfit(crossfits, y[:60], seed=2)
