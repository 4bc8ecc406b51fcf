"""The samplers: Heun exact on Gaussian data up to its second-order error, deterministic per
seed whatever the batch; Euler exact where the flow is linear in sigma."""

import math

import pytest
import torch

from lowrank.theory.sampling import euler_sample, heun_sample, initial_noise


def gaussian_denoiser(c: float):
    """Posterior mean of x0 ~ N(0, c^2 I) from x0 + sigma eps: shrink by c^2 / (c^2 + sigma^2)."""
    return lambda x, sigma: x * (c**2 / (c**2 + sigma.to(x) ** 2)).view(-1, *[1] * (x.ndim - 1))


def test_heun_follows_the_exact_flow_of_gaussian_data():
    # the probability-flow ODE of N(0, c^2 I) data scales x by sqrt(c^2 + sigma^2) along the way,
    # and the final denoising step shrinks by c^2 / (c^2 + sigma_min^2)
    c, lo, hi = 0.5, 0.01, 80.0
    seeds = [3, 4, 5]
    den = gaussian_denoiser(c)
    start = hi * initial_noise(seeds, (2, 4, 4)).double()
    at_lo = start * math.sqrt(c**2 + lo**2) / math.sqrt(c**2 + hi**2)
    exact = at_lo * c**2 / (c**2 + lo**2)
    errors = {}
    for steps in (10, 20, 40):
        got = heun_sample(den, seeds, (2, 4, 4), (lo, hi), steps=steps, progress=False).double()
        errors[steps] = ((got - exact).abs().max() / exact.abs().max()).item()
    print(errors)  # measured: 0.185, 0.037, 0.0084 (Euler's error halves per halving)
    assert errors[40] < 0.015
    assert errors[20] / errors[40] > 3  # second order: about 4 per halving


def test_a_sample_depends_on_its_seed_only():
    den = gaussian_denoiser(0.7)
    together = heun_sample(den, [11, 12, 13, 14], (1, 3, 3), (0.01, 10.0), steps=8,
                           batch_size=3, progress=False)  # fmt: skip
    alone = heun_sample(den, [13], (1, 3, 3), (0.01, 10.0), steps=8, progress=False)
    assert torch.equal(together[2], alone[0])
    assert not torch.equal(together[0], together[1])
    own = torch.randn((1, 3, 3), generator=torch.Generator().manual_seed(13))
    assert torch.equal(initial_noise([13], (1, 3, 3))[0], own)


def test_bad_arguments_are_named():
    den = gaussian_denoiser(1.0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        heun_sample(den, [0], (1, 2, 2), (1.0, 0.5), progress=False)
    with pytest.raises(ValueError, match="sigma_range must be"):
        heun_sample(den, [0], (1, 2, 2), 0.5, progress=False)
    with pytest.raises(ValueError, match="seeds is empty"):
        heun_sample(den, [], (1, 2, 2), (0.1, 1.0), progress=False)


def test_euler_follows_the_probability_flow_ode_exactly_for_a_constant_denoiser():
    calls = []

    def constant(x_t, sigma):  # x_hat = 0.25 whatever the input; records what it was called with
        calls.append((sigma.clone(), x_t.clone()))
        return torch.full_like(x_t, 0.25)

    sigma_min, sigma_max = 0.01, 80.0
    out = euler_sample(constant, 3, torch.Generator().manual_seed(1), (1, 8, 8),
                       (sigma_min, sigma_max), steps=6)  # fmt: skip
    assert out.shape == (3, 1, 8, 8) and bool((out == 0.25).all())
    assert all(torch.equal(s, s[:1].expand(3)) for s, _ in calls)  # one level for every row
    levels = [float(s[0]) for s, _ in calls]
    assert len(levels) == 6
    assert levels[0] == pytest.approx(sigma_max) and levels[-1] == pytest.approx(sigma_min)
    # dx/dsigma = (x - c) / sigma: Euler is exact, x - c scales with sigma
    x0 = calls[0][1]
    noise = torch.randn((3, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(x0, sigma_max * noise)
    for s, x in calls[1:]:
        torch.testing.assert_close(x - 0.25, (x0 - 0.25) * float(s[0]) / sigma_max, rtol=1e-4,
                                   atol=1e-4)  # fmt: skip
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        euler_sample(constant, 3, torch.Generator(), (1, 8, 8), (1.0, 0.5))
