"""lowrank.theory.schedules: the noise grids against the paper's."""

import pytest
import torch

from lowrank.book import paper
from lowrank.theory import schedules as S


def test_edm_probe_grid_matches_paper():
    printed = paper.EDM_PROBE_SIGMAS
    assert torch.round(S.edm_probe_sigmas() * 1000).tolist() == [round(p * 1000) for p in printed]
    assert len(S.edm_probe_sigmas(start=0.008)) == 8


def test_karras_endpoints_and_order():
    s = S.karras_sigmas()
    assert s[0].item() == pytest.approx(80.0) and s[-1].item() == pytest.approx(0.002)
    assert torch.all(s[:-1] > s[1:])


def test_molrg_grid_matches_paper():
    printed = paper.MOLRG_SIGMAS
    assert torch.round(S.molrg_sigmas() * 1000).tolist() == [round(p * 1000) for p in printed]


def test_dit_grid_uses_zero_based_index():
    abar = S.linear_alpha_bar(1000)
    expected = ((1 - abar[list(S.DIT_TIMESTEPS)]) / abar[list(S.DIT_TIMESTEPS)]).sqrt()
    torch.testing.assert_close(S.dit_sigmas(), expected, rtol=1e-12, atol=0)


def test_linear_alpha_bar_first_values():
    abar = S.linear_alpha_bar(500)
    assert abar[0].item() == pytest.approx(1 - 1e-4, rel=1e-14)
    assert abar[1].item() == pytest.approx((1 - 1e-4) * (1 - (1e-4 + (0.02 - 1e-4) / 499)))


def test_vp_ve_round_trip():
    sigma = torch.tensor([1e-3, 0.5, 3.0, 80.0], dtype=torch.float64)
    torch.testing.assert_close(S.sigma_from_alpha_bar(S.alpha_bar_from_sigma(sigma)), sigma)
    torch.testing.assert_close(S.vp_scale(sigma), 1 / (1 + sigma**2).sqrt())


def test_bad_arguments():
    with pytest.raises(ValueError, match="timesteps"):
        S.ddpm_sigmas([0], T=500, one_based=True)
    with pytest.raises(ValueError, match="alpha_bar"):
        S.sigma_from_alpha_bar(torch.tensor([0.0]))
    with pytest.raises(ValueError, match="sigma_min"):
        S.karras_sigmas(sigma_min=1.0, sigma_max=0.5)
