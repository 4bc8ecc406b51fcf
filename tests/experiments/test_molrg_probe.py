"""The MoLRG probe curve against the accuracy a linear rule reaches on two separated clusters."""

from statistics import NormalDist

import pytest
import torch

from lowrank.experiments.molrg_probe import molrg_probe_curve, noisy_features
from lowrank.theory.denoisers import MixtureDenoiser
from lowrank.theory.mixtures import LowRankMixture, MoLRG
from tests.bad_input_cases import check_case


def test_two_shifted_gaussians_are_probed_at_the_linear_bayes_rate():
    """Classes N(+-mu e, I_2) in R^2 (full rank, no subspace to read): the optimal feature
    along e is increasing in x_sigma's (a tanh term besides the linear one), so a threshold on
    it is the best linear rule, right with probability
    Phi(mu / sqrt(1 + sigma^2)); 4 binomial errors of the 4000 test samples."""
    mu = 1.0
    eye = torch.eye(2, dtype=torch.float64)
    means = torch.tensor([[mu, 0.0], [-mu, 0.0]], dtype=torch.float64)
    mix = LowRankMixture(None, means, [eye, eye], [[1.0, 1.0], [1.0, 1.0]])
    sigmas = [0.1, 1.0, 3.0]
    curve = molrg_probe_curve(mix, sigmas, num_train=4000, num_test=4000, seed=1)
    for s, accuracy in zip(sigmas, curve.accuracy.tolist(), strict=True):
        rate = NormalDist().cdf(mu / (1 + s**2) ** 0.5)
        assert accuracy == pytest.approx(rate, abs=4 * (rate * (1 - rate) / 4000) ** 0.5)
    assert curve.correct.shape == (3, 4000)


def test_noisy_features_are_the_denoiser_features_of_a_float32_noise_draw():
    """The optimal denoiser's coordinates of x0 + sigma eps, eps drawn in float32 from the
    generator; at a tiny sigma the coordinates of x0 itself, projected on the union of the classes'
    subspaces: x0 = U a + delta U~ e gives back a's part through U^T x0 (a tiny posterior
    shrinkage aside)."""
    mix = MoLRG(n=12, K=2, d=2, delta=0.2, seed=3)
    x0, _ = mix.sample(50, torch.Generator().manual_seed(1))
    den = MixtureDenoiser(mix)
    h = noisy_features(den, x0, 0.4, torch.Generator().manual_seed(7))
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7))
    assert eps.dtype == torch.float32 and h.dtype == torch.float32
    torch.testing.assert_close(h, den.features(x0 + 0.4 * eps, 0.4).float())
    clean = noisy_features(den, x0, 1e-4, torch.Generator())
    torch.testing.assert_close(clean, (x0 @ mix.U).float(), atol=1e-3, rtol=1e-3)


_MIX_DENOISER = MixtureDenoiser(MoLRG(n=12, K=2, d=2, delta=0.2, seed=3))

BAD_INPUTS = {
    "noisy features of a non-denoiser": (
        lambda t: noisy_features(None, torch.zeros(2, 5), 0.1, torch.Generator()),
        (TypeError, "features"),
    ),
    "noisy features without a generator": (
        lambda t: noisy_features(_MIX_DENOISER, torch.zeros(2, 12), 0.1, None),
        (TypeError, "generator"),
    ),
    "noisy features of a 1-D x0": (
        lambda t: noisy_features(_MIX_DENOISER, torch.zeros(5), 0.1, torch.Generator()),
        (ValueError, "x0 must be a non-empty"),
    ),
    "noisy features at a negative sigma": (
        lambda t: noisy_features(_MIX_DENOISER, torch.zeros(2, 12), -0.1, torch.Generator()),
        (ValueError, "sigma"),
    ),
    "not a mixture": (
        lambda t: molrg_probe_curve("mix", [0.1, 1.0], num_train=10, num_test=10),
        (TypeError, "LowRankMixture"),
    ),
    "a test set smaller than two per class": (
        lambda t: molrg_probe_curve(
            LowRankMixture(None, None, [torch.eye(2, dtype=torch.float64)] * 2, [[1.0, 1.0]] * 2),
            [0.1, 1.0],
            num_train=10,
            num_test=3,
        ),
        (ValueError, "num_test"),
    ),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input(name, tmp_path):
    check_case(name, *BAD_INPUTS[name], tmp_path)
