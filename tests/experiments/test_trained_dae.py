"""The paper's DAE trained from the K-subspaces start: near the optimal SNR where it can be,
and unable to hold overlapping subspaces, as its orthonormal U says."""

import pytest
import torch

from lowrank.experiments.trained_dae import trained_dae_snr
from lowrank.measure.distances import block_angles
from lowrank.measure.snr import snr_exact
from lowrank.theory.mixtures import MoLRG
from tests.bad_input_cases import check_case

SIGMAS = [0.01, 0.1, 0.3, 1.0]


def test_on_orthogonal_classes_the_trained_dae_is_near_the_optimal_snr():
    """Measured: the worst relative gap to the optimal SNR was 3.0-5.4% over seeds 0-2 at this
    budget (the start is already close to the truth); 10% allows the Monte Carlo of both
    curves (about 1.5% each) and the training noise."""
    mix = MoLRG(n=20, K=2, d=3, delta=0.2, seed=0)
    result = trained_dae_snr(mix, SIGMAS, d=3, num_train=3000, epochs=2, snr_samples=4000)
    optimal = snr_exact(mix, SIGMAS, 8000, torch.Generator().manual_seed(9)).value
    assert ((result.snr.value - optimal).abs() / optimal).max() < 0.10
    assert len(result.losses) == 2 and result.losses[1] <= result.losses[0] * 1.05


def test_its_blocks_stay_orthonormal_so_overlapping_classes_are_not_held():
    mix = MoLRG.overlapping(n=20, d=3, delta=0.2, angle_deg=30, seed=0)
    result = trained_dae_snr(
        mix, SIGMAS, d=3, num_train=2000, epochs=1, snr_samples=2000, per_class=True
    )
    U = result.dae.U.detach().double()
    assert torch.allclose(U.T @ U, torch.eye(6, dtype=torch.float64), atol=1e-5)
    # the classes are 30 degrees apart and the blocks 90: by the triangle inequality of the
    # largest principal angle, 90 <= a_0 + 30 + a_1, so a block stays 30 degrees from its class
    angles = block_angles(U, mix.class_bases, match=True)
    assert angles.max() >= 30 - 0.1
    assert result.snr.value.shape == (2, 4)


BAD_INPUTS = {
    "not a MoLRG": (
        lambda t: trained_dae_snr("mix", SIGMAS, d=2, num_train=10, epochs=1, snr_samples=10),
        (TypeError, "MoLRG"),
    ),
    "blocks wider than n allows": (
        lambda t: trained_dae_snr(
            MoLRG(n=6, K=2, d=2, delta=0.2), SIGMAS, d=4, num_train=10, epochs=1, snr_samples=10
        ),
        (ValueError, "lower d"),
    ),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input(name, tmp_path):
    check_case(name, *BAD_INPUTS[name], tmp_path)
