r"""Deterministic sampling of a denoiser (:class:`lowrank.theory.denoisers.Denoiser`): Euler's and
Heun's methods on the probability-flow ODE.

In the book's variance-exploding convention :math:`x_\sigma = x_0 + \sigma\epsilon`, the
probability-flow ODE of Karras et al. (2022, eq. 1 with :math:`s = 1`, :math:`\sigma(t) = t`) is

.. math:: \frac{dx}{d\sigma} = \frac{x - \hat x(x, \sigma)}{\sigma},

with :math:`\hat x` the denoiser (the posterior mean). :func:`heun_sample` integrates it from
:math:`\sigma_{max}` down to :math:`\sigma_{min}` on Karras et al.'s levels (eq. 5, ``rho = 7``)
with their Algorithm 1 without churn: an Euler step, then the trapezoidal (Heun) correction.
Their last step goes to :math:`\sigma = 0`, where only Euler is defined; here every level is
above zero, so every step is corrected, and a final call of the denoiser at
:math:`\sigma_{min}` returns its estimate of :math:`x_0`. ``steps`` levels cost
``2 steps - 1`` network evaluations.

:func:`euler_sample` takes the same levels without the correction (``steps`` evaluations and a
final one), its noise drawn in one batch from a caller's generator: the sampler of chapter 5's
figure of samples.

Sample ``i`` of :func:`heun_sample` starts from :math:`\sigma_{max}\,\epsilon_i`,
:math:`\epsilon_i` drawn from a generator seeded with ``seeds[i]`` alone: the ODE is
deterministic, so a sample depends on its seed only, not on which other samples share its batch
(up to the floating-point effects of batch size on the network, about 1e-6). Two networks fed
the same seeds get the same starting noise, which makes their samples comparable one by one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.std import tqdm

from lowrank._checks import check_count
from lowrank.theory.denoisers import Denoiser
from lowrank.theory.schedules import karras_sigmas

__all__ = ["initial_noise", "euler_sample", "heun_sample"]


def initial_noise(
    seeds: Sequence[int], shape: Sequence[int], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``(len(seeds), *shape)`` standard normal noise, row ``i`` from a CPU generator seeded
    with ``seeds[i]`` alone."""
    if len(seeds) == 0:
        raise ValueError("seeds is empty: pass one seed per sample")
    rows = [torch.randn(tuple(shape), generator=torch.Generator().manual_seed(int(s)),
                        dtype=dtype) for s in seeds]  # fmt: skip
    return torch.stack(rows)


def _ends(sigma_range) -> tuple[float, float]:
    """``(sigma_min, sigma_max)`` of a noise range, checked."""
    try:
        sigma_min, sigma_max = (float(s) for s in sigma_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"sigma_range must be (sigma_min, sigma_max), two numbers, got {sigma_range!r}"
        ) from None
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    return sigma_min, sigma_max


@torch.no_grad()
def euler_sample(
    denoiser: Denoiser,
    num: int,
    generator: torch.Generator,
    shape: Sequence[int],
    sigma_range: tuple[float, float],
    *,
    steps: int = 40,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    r"""``(num, *shape)`` samples by Euler steps of the probability-flow ODE
    :math:`dx/d\sigma = (x - \hat x(x, \sigma)) / \sigma` (Karras et al. 2022, Alg. 1 without
    the Heun correction) on ``steps`` Karras levels from ``sigma_max`` down to ``sigma_min``
    (``sigma_range``, e.g. a network's ``sigma_range()``), then one denoising step at
    ``sigma_min``. The starting noise is one ``(num, *shape)`` draw from ``generator`` (CPU,
    float32), moved to ``device``; the samples stay there."""
    num, steps = check_count(num, "num"), check_count(steps, "steps", minimum=2)
    sigma_min, sigma_max = _ends(sigma_range)
    levels = karras_sigmas(steps, sigma_min, sigma_max).tolist()
    x = sigma_max * torch.randn((num, *shape), generator=generator).to(device)
    for sigma, following in zip(levels[:-1], levels[1:], strict=True):
        x = x + (following - sigma) * (x - denoiser(x, _levels(x, sigma))) / sigma
    return denoiser(x, _levels(x, levels[-1]))


@torch.no_grad()
def heun_sample(
    denoiser: Denoiser,
    seeds: Sequence[int],
    shape: Sequence[int],
    sigma_range: tuple[float, float],
    *,
    steps: int = 18,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> torch.Tensor:
    r"""Samples of ``denoiser`` by Heun's method on the probability-flow ODE (see the module).

    Arguments:
        denoiser: ``denoiser(x, sigma)`` -> :math:`\hat x`, with ``x`` ``(B, *shape)`` and
            ``sigma`` ``(B,)`` (a :class:`lowrank.nets.unet.UNetDenoiser`, a mixture's denoiser).
        seeds: one seed per sample.
        shape: the shape of one sample, e.g. ``(1, 16, 16)``.
        sigma_range: ``(sigma_min, sigma_max)``, the ends of the noise levels (for a DDPM
            network, the smallest and the largest level of its schedule: its
            ``sigma_range()``).
        steps: Karras levels from ``sigma_max`` to ``sigma_min`` (18 in EDM for CIFAR-10).
        batch_size: samples integrated together.
        device: where the samples are integrated (the denoiser's device).
        progress: a progress bar over batches.

    Returns:
        ``(len(seeds), *shape)`` float32 samples on the CPU.
    """
    if len(seeds) == 0:
        raise ValueError("seeds is empty: pass one seed per sample")
    steps = check_count(steps, "steps", minimum=2)
    batch_size = check_count(batch_size, "batch_size")
    sigma_min, sigma_max = _ends(sigma_range)
    levels = karras_sigmas(steps, sigma_min, sigma_max).tolist()
    out = []
    chunks = range(0, len(seeds), batch_size)
    for start in tqdm(chunks, desc="sampling", disable=not progress):
        x = sigma_max * initial_noise(seeds[start : start + batch_size], shape).to(device)
        for sigma, following in zip(levels[:-1], levels[1:], strict=True):
            d = _slope(denoiser, x, sigma)
            euler = x + (following - sigma) * d
            x = x + (following - sigma) * 0.5 * (d + _slope(denoiser, euler, following))
        out.append(denoiser(x, _levels(x, levels[-1])).float().cpu())
    return torch.cat(out)


def _levels(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.full((len(x),), sigma, device=x.device)


def _slope(denoiser, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The probability-flow ODE's ``dx / dsigma`` at ``(x, sigma)``."""
    return (x - denoiser(x, _levels(x, sigma))) / sigma
