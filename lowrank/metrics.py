r"""Signal-to-noise ratio of denoiser features (Definition 1 of the paper).

.. math::
    \mathrm{SNR}(\sigma) = E_k\Big[\frac{E\|U_k U_k^\top \hat x\|^2}
                                       {E\|\hat x - U_k U_k^\top \hat x\|^2}\Big],

inner expectations over :math:`x_t = x_0 + \sigma\epsilon` with :math:`x_0` of class ``k``,
outer over :math:`k \sim \pi`. It is the energy the denoiser puts on the true class's subspace
against the energy it puts elsewhere. Each class ratio is a ratio of means; its standard error
comes from the delta method, :math:`\operatorname{Var}(\bar N/\bar D) \approx
\operatorname{Var}(N - R D) / (M \bar D^2)`.

:func:`snr_exact` evaluates the optimal denoiser of a mixture entirely in the ``m`` union
coordinates (``W^T \epsilon \sim \mathcal N(0, I_m)``, and the rest of the noise never reaches
the posterior mean), so its cost does not depend on ``n``. :func:`snr_estimate` does the same
for any denoiser in the ambient space.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ._checks import as_sigmas
from .denoisers import MixtureDenoiser
from .mixtures import LowRankMixture

__all__ = ["snr_exact", "snr_estimate"]

# Rows per chunk: bounds memory to a few hundred MB for K * m up to about 1000.
_CHUNK = 1 << 15


def _class_counts(num_samples: int, K: int) -> int:
    if num_samples < 2 * K:
        raise ValueError(f"num_samples must be at least 2 per class ({2 * K}), got {num_samples}")
    return num_samples // K


def _ratio_of_means(num: torch.Tensor, den: torch.Tensor) -> tuple[float, float]:
    """Ratio of means ``mean(num) / mean(den)`` and its delta-method variance."""
    R = num.mean() / den.mean()
    var = (num - R * den).var() / (num.numel() * den.mean().square())
    return R.item(), var.item()


def _snr_over_classes(
    mix: LowRankMixture,
    sigmas: torch.Tensor,
    num_samples: int,
    class_energies: Callable[[int, float, int], tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified estimate: ``num_samples // K`` draws per class, weighted by ``pi``."""
    per_class = _class_counts(num_samples, mix.K)
    snr = torch.zeros(len(sigmas), dtype=torch.float64)
    var = torch.zeros(len(sigmas), dtype=torch.float64)
    for i, sigma in enumerate(sigmas.tolist()):
        for k in range(mix.K):
            num, den = [], []
            for start in range(0, per_class, _CHUNK):
                a, b = class_energies(k, sigma, min(_CHUNK, per_class - start))
                num.append(a)
                den.append(b)
            R, v = _ratio_of_means(torch.cat(num), torch.cat(den))
            snr[i] += mix.pi[k] * R
            var[i] += mix.pi[k] ** 2 * v
    return snr.to(sigmas.dtype), var.sqrt().to(sigmas.dtype)


def _split_energy(proj: torch.Tensor, full: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy of ``proj`` (the decoded block) and of ``full - proj``, per row."""
    return proj.square().sum(-1), (full - proj).square().sum(-1)


def snr_exact(
    mix: LowRankMixture,
    sigmas: Sequence[float] | torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SNR (Definition 1) of the optimal denoiser of ``mix``, by Monte Carlo in coefficient space.

    Computed in float64 in the ``m`` union coordinates; the cost does not depend on ``n``.

    Arguments:
        mix: the mixture; its ``class_bases`` are the ``U_k`` Definition 1 decodes with.
        sigmas: noise levels (> 0).
        num_samples: draws per sigma, split evenly over the classes.
        generator: random source (CPU).

    Returns:
        ``(snr, stderr)``: two ``(len(sigmas),)`` tensors in ``sigmas``' dtype (float64 for a
        sequence).
    """
    sig = as_sigmas(sigmas)
    den = MixtureDenoiser(mix)

    def class_energies(k: int, sigma: float, M: int):
        y = torch.full((M,), k, dtype=torch.long)
        z0 = mix.sample_coordinates(y, generator)
        z = z0 + sigma * torch.randn(M, mix.m, generator=generator, dtype=torch.float64)
        h, _ = den.posterior_coordinates(z, sigma)
        B = mix.class_coords[k]  # (m, d_k): U_k in coordinates
        return _split_energy((h @ B) @ B.T, h)

    return _snr_over_classes(mix, sig, num_samples, class_energies)


def snr_estimate(
    denoiser: Callable[[torch.Tensor, float], torch.Tensor],
    mix: LowRankMixture,
    sigmas: Sequence[float] | torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SNR (Definition 1) of any denoiser ``denoiser(x_t, sigma) -> x_hat`` on data from ``mix``.

    Samples ``x_t = x0 + sigma * eps`` in the ambient space, denoises, and decodes with the true
    class bases ``mix.class_bases``.

    Arguments:
        denoiser: callable taking ``(B, n)`` inputs and a float sigma.
        mix: the data distribution and the true class bases.
        sigmas: noise levels (> 0).
        num_samples: draws per sigma, split evenly over the classes.
        generator: random source (CPU).
        dtype: dtype the denoiser is fed; defaults to ``denoiser.dtype`` when it has one, else
            float64.
        device: device the denoiser runs on (default CPU).

    Returns:
        ``(snr, stderr)``: two ``(len(sigmas),)`` tensors in ``sigmas``' dtype.
    """
    sig = as_sigmas(sigmas)
    dtype = dtype or getattr(denoiser, "dtype", torch.float64)

    def class_energies(k: int, sigma: float, M: int):
        y = torch.full((M,), k, dtype=torch.long)
        x0 = mix.sample_coordinates(y, generator) @ mix.W.T
        x_t = x0 + sigma * torch.randn(M, mix.n, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            x_hat = denoiser(x_t.to(device=device, dtype=dtype), sigma)
        x_hat = x_hat.to(device="cpu", dtype=torch.float64)
        U = mix.class_bases[k]
        return _split_energy((x_hat @ U) @ U.T, x_hat)

    return _snr_over_classes(mix, sig, num_samples, class_energies)
