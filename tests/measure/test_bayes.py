"""The Bayes accuracy against its closed form for two Gaussian classes, and the data-processing
inequality on a MoLRG."""

import math
from statistics import NormalDist

import pytest
import torch

from lowrank.measure.bayes import bayes_accuracy
from lowrank.theory.mixtures import LowRankMixture, MoLRG
from tests.bad_input_cases import check_case


def _two_means(mu: float, lam: float) -> LowRankMixture:
    """Classes N(+-mu u, lam u u^T) in R^3: along u they are N(+-mu, lam + sigma^2) after the
    noise, across u identical, so the Bayes accuracy is Phi(mu / sqrt(lam + sigma^2))."""
    u = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
    means = torch.tensor([[mu, 0.0, 0.0], [-mu, 0.0, 0.0]], dtype=torch.float64)
    return LowRankMixture(None, means, [u, u], [[lam], [lam]])


def test_bayes_accuracy_matches_the_closed_form_of_two_gaussians():
    mu, lam = 1.0, 0.5
    sigmas = torch.tensor([0.1, 0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    curve = bayes_accuracy(_two_means(mu, lam), sigmas, 20_000, torch.Generator().manual_seed(0))
    exact = torch.tensor([NormalDist().cdf(mu / math.sqrt(lam + s**2)) for s in sigmas.tolist()])
    z = ((curve.accuracy - exact.double()) / curve.stderr).abs()
    assert z.max() < 4, (curve.accuracy, exact)
    # the 0/1 record of the Bayes call estimates the same accuracy (binomial error, 4 of them)
    hits = curve.correct.double().mean(1)
    assert ((hits - exact.double()).abs() < 4 * (0.25 / 20_000) ** 0.5).all()
    # every step goes down, by far more than its paired error
    assert (curve.steps < 0).all() and curve.largest_rise < -10


def test_bayes_accuracy_never_rises_on_the_fig3_molrg():
    mix = MoLRG(n=15, K=3, d=5, delta=0.2, seed=0)
    sigmas = torch.logspace(-2, 1, 12, dtype=torch.float64)
    curve = bayes_accuracy(mix, sigmas, 5000, torch.Generator().manual_seed(1))
    # data processing: no step up beyond Monte Carlo error (3 paired standard errors)
    assert curve.largest_rise < 3
    # limits: near certainty at small sigma (the classes' subspaces barely overlap), chance
    # (1/3) plus a little at sigma = 10
    assert curve.accuracy[0] > 0.99 and abs(curve.accuracy[-1].item() - 1 / 3) < 0.02
    assert curve.correct.shape == (12, 5000)


BAD_INPUTS = {
    "decreasing sigmas": (
        lambda t: bayes_accuracy(MoLRG(n=4, K=2, d=2, delta=0.3), [0.5, 0.1], 10),
        (ValueError, "increasing"),
    ),
    "one level": (
        lambda t: bayes_accuracy(MoLRG(n=4, K=2, d=2, delta=0.3), [0.5], 10),
        (ValueError, "at least 2"),
    ),
    "one sample": (
        lambda t: bayes_accuracy(MoLRG(n=4, K=2, d=2, delta=0.3), [0.1, 0.5], 1),
        (ValueError, "num_samples"),
    ),
    "not a mixture": (
        lambda t: bayes_accuracy("molrg", [0.1, 0.5], 10),
        (TypeError, "LowRankMixture"),
    ),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input(name, tmp_path):
    check_case(name, *BAD_INPUTS[name], tmp_path)
