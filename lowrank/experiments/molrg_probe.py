"""Probes on the features of MoLRG denoisers (chapter 4).

* :func:`noisy_features`: a denoiser's features of one noisy copy of the samples;
* :func:`molrg_probe_curve`: the linear probe on the optimal denoiser's features of a mixture
  across noise levels (Table 7 and the search for its ``K``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lowrank._checks import as_sigmas, check_count, check_real
from lowrank.measure.probes import ProbeCurve, probe_across_sigma
from lowrank.theory.denoisers import MixtureDenoiser
from lowrank.theory.mixtures import LowRankMixture

__all__ = ["noisy_features", "molrg_probe_curve"]


@torch.no_grad()
def noisy_features(
    denoiser, x0: torch.Tensor, sigma: float, generator: torch.Generator
) -> torch.Tensor:
    """``(N, p)`` float32 features ``denoiser.features(x0 + sigma eps, sigma)`` of one noise
    draw ``eps`` from ``generator``. The noise is drawn in float32 (the default dtype) whatever
    ``x0``'s dtype, so a float64 denoiser (the optimal one) and a float32 one (the trained DAE)
    read draws of one precision; the sum is in ``x0``'s dtype."""
    if not callable(getattr(denoiser, "features", None)):
        raise TypeError(f"denoiser must have a features(x_t, sigma) method, got {denoiser!r:.80}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a seeded torch.Generator, got {generator!r}")
    if not isinstance(x0, torch.Tensor) or x0.ndim != 2 or len(x0) == 0:
        raise ValueError(f"x0 must be a non-empty (N, n) tensor, got {x0!r:.80}")
    sigma = check_real(sigma, "sigma", 0.0, None, open_low=True)
    noisy = x0 + sigma * torch.randn(x0.shape, generator=generator)
    return denoiser.features(noisy, sigma).float()


def molrg_probe_curve(
    mix: LowRankMixture,
    sigmas: Sequence[float] | torch.Tensor,
    *,
    num_train: int,
    num_test: int,
    seed: int = 0,
) -> ProbeCurve:
    """The logistic probe on ``h`` (the optimal denoiser's union coordinates) at every level of
    ``sigmas``: trained on ``num_train`` samples, tested on ``num_test`` others, each sample with
    one fresh noise draw per level (float64 features, so the cost does not depend on ``n``)."""
    if not isinstance(mix, LowRankMixture):
        raise TypeError(f"mix must be a LowRankMixture, got {type(mix).__name__}")
    sig = as_sigmas(sigmas, torch.float64)
    gen = torch.Generator().manual_seed(check_count(seed, "seed", minimum=0))
    den = MixtureDenoiser(mix)
    sets = []
    for size, name in ((num_train, "num_train"), (num_test, "num_test")):
        y = mix.sample_labels(check_count(size, name, minimum=2 * mix.K), gen)
        sets.append((mix.sample_coordinates(y, gen), y))

    def features(z0: torch.Tensor, sigma: float) -> torch.Tensor:
        noise = torch.randn(z0.shape, generator=gen, dtype=torch.float64)
        return den.posterior_coordinates(z0 + sigma * noise, sigma).coordinates

    (z_train, y_train), (z_test, y_test) = sets
    levels = sig.tolist()
    train = [features(z_train, s) for s in levels]
    test = [features(z_test, s) for s in levels]
    return probe_across_sigma(sig, train, y_train, test, y_test)
