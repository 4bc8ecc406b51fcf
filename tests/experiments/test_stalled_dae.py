"""lowrank.experiments.stalled_dae: the landscape sample drawn as training draws it, the loss
along a swap path, the reading of the exchange Hessian."""

import math

import numpy as np
import pytest
import torch

from lowrank.experiments import stalled_dae
from lowrank.nets.train import denoising_loss
from lowrank.theory.denoisers import LowRankDAE
from lowrank.theory.landscape import ExchangeCurvature
from lowrank.theory.mixtures import MoLRG
from tests.bad_input_cases import check_case


def test_landscape_sample_draws_as_training_does():
    """x0, then a timestep per row, then the noise, from one generator; the level is the VE
    sigma of a linear DDPM schedule (betas 1e-4 .. 0.02 over 500 steps), by numpy."""
    mix = MoLRG(n=20, K=2, d=3, delta=0.2, seed=1)
    sample = stalled_dae.landscape_sample(mix, 400, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    x0, _ = mix.sample(400, gen)
    t = torch.randint(0, 500, (400,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    alpha_bar = np.cumprod(1 - np.linspace(1e-4, 0.02, 500))
    sigma = np.sqrt((1 - alpha_bar) / alpha_bar)[t.numpy()]
    assert torch.equal(sample.x0, x0) and torch.equal(sample.noise, noise)
    np.testing.assert_allclose(sample.sigma.numpy(), sigma, rtol=1e-12)
    assert sample.x0.dtype == sample.sigma.dtype == sample.noise.dtype == torch.float64
    x0_, sigma_, noise_ = sample  # a tuple, as exchange_curvature takes it
    assert x0_ is sample.x0 and sigma_ is sample.sigma and noise_ is sample.noise


def test_swap_path_losses_start_at_the_configuration_and_the_truth_is_lowest():
    """From the true blocks (every block one class), angle 0 is the true DAE's loss, built
    another way (LowRankDAE.from_mixture), and no angle of the swap does better; at 90 degrees
    two directions sit in the wrong blocks and the loss is higher by several percent."""
    mix = MoLRG(n=20, K=2, d=3, delta=0.2, seed=2)
    sample = stalled_dae.landscape_sample(mix, 3000, torch.Generator().manual_seed(0))
    angles = [0.0, 30.0, 60.0, 90.0]
    losses = stalled_dae.swap_path_losses(mix, [[3, 0], [0, 3]], (0, 0), (1, 0), angles, sample)
    truth = denoising_loss(LowRankDAE.from_mixture(mix, torch.float64), *sample).item()
    assert losses.shape == (4,) and losses.dtype == torch.float64
    assert losses[0].item() == pytest.approx(truth, rel=1e-12)
    assert bool((losses[1:] > losses[0]).all()) and losses[-1] > 1.02 * losses[0]  # 4.5% here
    # at 90 degrees the two columns have traded blocks (one with its sign flipped), by hand
    B0, B1 = (B.clone() for B in mix.class_bases)
    B0[:, 0], B1[:, 0] = mix.class_bases[1][:, 0], -mix.class_bases[0][:, 0]
    swapped = LowRankDAE.from_bases([B0, B1], 0.2, torch.float64)
    assert losses[-1].item() == pytest.approx(denoising_loss(swapped, *sample).item(), rel=1e-9)


def _curvature(lowest, held_out, stderr):
    return ExchangeCurvature([(0, 1)], torch.zeros(1, 1), torch.tensor([lowest, 1.0]),
                             held_out, stderr)  # fmt: skip


def test_curvature_reading_in_words():
    read = stalled_dae.curvature_reading
    assert read(_curvature(0.2, 0.1, 0.01)).startswith("no way down: every exchange curvature")
    assert read(_curvature(-0.2, -0.31, 0.1)) == (
        "a saddle: curvature -0.200, -0.310 ± 0.100 on a second sample"
    )
    assert read(_curvature(-0.2, -0.29, 0.1)).startswith("not resolved")  # 2.9 s.e.
    assert read(_curvature(-0.2, -0.29, 0.1), z=2).startswith("a saddle")


BAD_INPUTS = {
    "landscape of a non-MoLRG": (
        lambda t: stalled_dae.landscape_sample("mix", 10, torch.Generator()),
        (TypeError, "mixture must be a MoLRG"),
    ),
    "landscape without a generator": (
        lambda t: stalled_dae.landscape_sample(MoLRG(10, 2, 2, 0.2), 10, None),
        (TypeError, "generator"),
    ),
    "landscape of no timesteps": (
        lambda t: stalled_dae.landscape_sample(MoLRG(10, 2, 2, 0.2), 10, torch.Generator(), 0),
        (ValueError, "timesteps"),
    ),
    "swap on a non-MoLRG": (
        lambda t: stalled_dae.swap_path_losses(
            "mix", [[2, 0], [0, 2]], (0, 0), (1, 0), [0.0], None
        ),  # fmt: skip
        (TypeError, "mixture must be a MoLRG"),
    ),
    "landscape of no samples": (
        lambda t: stalled_dae.landscape_sample(MoLRG(10, 2, 2, 0.2), 0, torch.Generator()),
        (ValueError, "samples"),
    ),
    "swap on a bare tuple": (
        lambda t: stalled_dae.swap_path_losses(
            MoLRG(10, 2, 2, 0.2),
            [[2, 0], [0, 2]],
            (0, 0),
            (1, 0),
            [0.0],
            (torch.zeros(3, 10), torch.ones(3), torch.zeros(3, 10)),
        ),  # fmt: skip
        (TypeError, "LandscapeSample"),
    ),
    "reading of a non-result": (
        lambda t: stalled_dae.curvature_reading({"eigenvalues": [1.0]}),
        (TypeError, "ExchangeCurvature"),
    ),
    "reading at z = nan": (
        lambda t: stalled_dae.curvature_reading(_curvature(-1, -1, 0.1), z=math.nan),
        (ValueError, "z"),
    ),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input(name, tmp_path):
    check_case(name, *BAD_INPUTS[name], tmp_path)
