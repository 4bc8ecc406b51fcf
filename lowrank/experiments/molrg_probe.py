"""The linear probe on the optimal denoiser's features of a mixture across noise levels
(chapter 4, Table 7 and the search for its ``K``): :func:`molrg_probe_curve`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lowrank._checks import as_sigmas, check_count
from lowrank.measure.probes import ProbeCurve, probe_across_sigma
from lowrank.theory.denoisers import MixtureDenoiser
from lowrank.theory.mixtures import LowRankMixture

__all__ = ["molrg_probe_curve"]


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
