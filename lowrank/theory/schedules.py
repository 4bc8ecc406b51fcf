r"""Noise levels used by the paper, and conversions between VP and VE parametrizations.

The theory works in the variance-exploding (VE) form :math:`x_t = x_0 + \sigma_t \epsilon`.
A variance-preserving (VP) model sees :math:`x_t^{VP} = \sqrt{\bar\alpha_t} x_0 +
\sqrt{1 - \bar\alpha_t} \epsilon`, which is the VE point scaled by
:math:`\sqrt{\bar\alpha_t} = 1 / \sqrt{1 + \sigma_t^2}`, so that

.. math:: \sigma_t = \sqrt{(1 - \bar\alpha_t) / \bar\alpha_t}.

Three grids appear in the paper (arXiv:2502.05743):

* the last nine of the 18 Karras/EDM sigmas (real data, Tables 4-6 and 9);
* a DDPM schedule with ``T = 500`` linear betas at 14 timesteps (MoLRG DAE, Fig. 3, Table 7);
* a DiT schedule with ``T = 1000`` linear betas (Table 8).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "karras_sigmas",
    "edm_probe_sigmas",
    "linear_alpha_bar",
    "ddpm_sigmas",
    "MOLRG_TIMESTEPS",
    "DIT_TIMESTEPS",
    "molrg_sigmas",
    "dit_sigmas",
    "sigma_from_alpha_bar",
    "alpha_bar_from_sigma",
    "vp_scale",
]

# Timesteps of the MoLRG DAE experiments (Fig. 3, Table 7) on a T = 500 DDPM schedule.
MOLRG_TIMESTEPS = (5, 10, 20, 40, 60, 80, 100, 120, 140, 160, 180, 240, 260, 280)
# Timesteps of the DiT probing experiment (Table 8) on a T = 1000 DDPM schedule.
DIT_TIMESTEPS = (1, 5, 10, 20, 30, 40, 60, 80, 100, 200, 300, 400, 500, 600)


def karras_sigmas(
    num_steps: int = 18,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r"""Karras et al. (2022, eq. 5) noise levels, descending from ``sigma_max`` to ``sigma_min``.

    :math:`\sigma_i = (\sigma_{max}^{1/\rho} + \tfrac{i}{N-1}(\sigma_{min}^{1/\rho} -
    \sigma_{max}^{1/\rho}))^\rho`, ``i = 0 .. N-1``.

    Returns:
        ``(num_steps,)`` tensor.
    """
    if num_steps < 2:
        raise ValueError(f"num_steps must be at least 2, got {num_steps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    ramp = torch.arange(num_steps, dtype=torch.float64) / (num_steps - 1)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return ((hi + ramp * (lo - hi)) ** rho).to(dtype)


def edm_probe_sigmas(start: float | None = None, dtype: torch.dtype = torch.float64):
    """The paper's real-data grid: the last nine Karras sigmas, ascending (0.002 .. 1.923).

    Arguments:
        start: drop the sigmas below this value (Tables 4 and 9 start at 0.008); ``None`` keeps
            all nine. Values are compared after rounding to three decimals, as the paper prints.

    Returns:
        ``(9,)`` tensor, or fewer with ``start``.
    """
    sigmas = karras_sigmas(dtype=torch.float64).flip(0)[:9]
    if start is not None:
        sigmas = sigmas[torch.round(sigmas * 1000) >= round(start * 1000)]
    return sigmas.to(dtype)


def linear_alpha_bar(
    T: int, beta_start: float = 1e-4, beta_end: float = 0.02, dtype=torch.float64
) -> torch.Tensor:
    r"""Cumulative products :math:`\bar\alpha` of a linear DDPM beta schedule (Ho et al., 2020).

    Returns:
        ``(T,)`` tensor whose entry ``i`` is :math:`\prod_{s \le i} (1 - \beta_s)` (0-based).
    """
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).to(dtype)


def ddpm_sigmas(
    timesteps: Sequence[int],
    T: int,
    one_based: bool,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """VE sigmas of a linear DDPM schedule at the given timesteps.

    Arguments:
        timesteps: integer timesteps.
        T: number of diffusion steps.
        one_based: ``True`` reads timestep ``t`` as the ``t``-th step (array entry ``t - 1``),
            ``False`` as array entry ``t`` (the convention of codebases indexing from 0).

    Returns:
        ``(len(timesteps),)`` tensor.
    """
    index = torch.as_tensor(list(timesteps), dtype=torch.long) - (1 if one_based else 0)
    if index.min() < 0 or index.max() >= T:
        raise ValueError(f"timesteps must lie in [{int(one_based)}, {T - 1 + int(one_based)}]")
    return sigma_from_alpha_bar(linear_alpha_bar(T, beta_start, beta_end)[index]).to(dtype)


def molrg_sigmas(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The 14 sigmas of the MoLRG DAE experiments (Fig. 3, Table 7): 0.030 .. 1.978.

    The paper's values come out when timestep ``t`` is the ``t``-th step of a T = 500 linear
    schedule (1-based), which the brief writes as ``abar_{t-1}`` of a 0-based array.
    """
    return ddpm_sigmas(MOLRG_TIMESTEPS, T=500, one_based=True, dtype=dtype)


def dit_sigmas(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The DiT probing grid (Table 8): T = 1000 linear schedule, DiT's 0-based timestep index."""
    return ddpm_sigmas(DIT_TIMESTEPS, T=1000, one_based=False, dtype=dtype)


def sigma_from_alpha_bar(alpha_bar: torch.Tensor) -> torch.Tensor:
    r""":math:`\sigma = \sqrt{(1 - \bar\alpha) / \bar\alpha}`."""
    alpha_bar = torch.as_tensor(alpha_bar)
    if torch.any((alpha_bar <= 0) | (alpha_bar > 1)):
        raise ValueError("alpha_bar must lie in (0, 1]")
    return torch.sqrt((1 - alpha_bar) / alpha_bar)


def alpha_bar_from_sigma(sigma: torch.Tensor) -> torch.Tensor:
    r""":math:`\bar\alpha = 1 / (1 + \sigma^2)`, the inverse of :func:`sigma_from_alpha_bar`."""
    sigma = torch.as_tensor(sigma)
    if torch.any(sigma < 0):
        raise ValueError("sigma must be non-negative")
    return 1 / (1 + sigma**2)


def vp_scale(sigma: torch.Tensor) -> torch.Tensor:
    r"""Scale :math:`1/\sqrt{1+\sigma^2}` taking a VE point ``x0 + sigma * eps`` to VP form."""
    return alpha_bar_from_sigma(sigma).sqrt()
