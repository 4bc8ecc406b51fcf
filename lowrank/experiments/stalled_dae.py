"""Why the paper's eq.-4 DAE stalls from a random start (chapter 4).

Trained from a random orthonormal ``U``, the DAE ends with blocks that hold whole directions of
several classes. Whether such a configuration is a saddle or a minimum is read off the loss
around it, always on one fixed sample of data, levels and noise, so that every configuration
compared sees the same draws (common random numbers):

* :func:`landscape_sample` -> :class:`LandscapeSample`: that sample, drawn as training draws it
  (a DDPM timestep uniform in ``1 .. T`` per row);
* :func:`swap_path_losses`: the loss along the rotation that moves one misplaced direction to
  the block where it belongs (:func:`lowrank.theory.landscape.swap_path`);
* :func:`curvature_reading`: the reading, in words, of the Hessian over every exchange
  (:func:`lowrank.theory.landscape.exchange_curvature`), its lowest direction checked on a
  second sample, since the lowest eigenvalue of a noisy Hessian is biased down.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from lowrank._checks import check_count, check_real
from lowrank.nets.train import ddpm_training_sigmas, denoising_loss
from lowrank.theory.denoisers import LowRankDAE
from lowrank.theory.landscape import ExchangeCurvature, regroup_bases, swap_path
from lowrank.theory.mixtures import MoLRG

__all__ = ["LandscapeSample", "landscape_sample", "swap_path_losses", "curvature_reading"]


def _check_mixture(mixture) -> None:
    if not isinstance(mixture, MoLRG):
        raise TypeError(f"mixture must be a MoLRG, got {type(mixture).__name__}")


class LandscapeSample(NamedTuple):
    """Rows the loss is averaged over: clean samples ``x0`` ``(N, n)``, their noise levels
    ``sigma`` ``(N,)`` and noise ``noise`` ``(N, n)``, float64. A tuple, so that
    ``exchange_curvature(blocks, delta, *two_samples)`` takes it as it is."""

    x0: torch.Tensor
    sigma: torch.Tensor
    noise: torch.Tensor


def landscape_sample(
    mixture: MoLRG, samples: int, generator: torch.Generator, timesteps: int = 500
) -> LandscapeSample:
    """``samples`` rows drawn as the DAE's training draws them: ``x0`` from ``mixture``, a
    timestep uniform in ``1 .. timesteps`` per row (its VE level from
    :func:`lowrank.nets.train.ddpm_training_sigmas`) and Gaussian noise, all from
    ``generator`` in that order."""
    _check_mixture(mixture)
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a seeded torch.Generator (the sample is reused), got {generator!r}"
        )
    samples = check_count(samples, "samples")
    timesteps = check_count(timesteps, "timesteps")
    x0, _ = mixture.sample(samples, generator)
    t = torch.randint(0, timesteps, (samples,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    sigma = ddpm_training_sigmas(timesteps, dtype=torch.float64)[t]
    return LandscapeSample(x0.to(torch.float64), sigma, noise)


def swap_path_losses(
    mixture: MoLRG,
    counts: Sequence[Sequence[int]],
    first: tuple[int, int],
    second: tuple[int, int],
    angles_deg: Sequence[float],
    sample: LandscapeSample,
) -> torch.Tensor:
    """``(A,)`` the DAE's denoising loss on ``sample`` at every angle of the rotation of column
    ``first = (block, column)`` into ``second`` (:func:`lowrank.theory.landscape.swap_path`),
    starting from the configuration whose block ``l`` holds ``counts[k][l]`` directions of class
    ``k`` (:func:`lowrank.theory.landscape.regroup_bases`); float64."""
    _check_mixture(mixture)
    if not isinstance(sample, LandscapeSample):
        raise TypeError(f"sample must be a LandscapeSample (landscape_sample), got {sample!r}")
    blocks = regroup_bases(mixture.class_bases, counts)
    losses = []
    for bases in swap_path(blocks, first, second, angles_deg):
        model = LowRankDAE.from_bases(bases, mixture.delta, torch.float64)
        with torch.no_grad():
            losses.append(denoising_loss(model, *sample).item())
    return torch.tensor(losses, dtype=torch.float64)


def curvature_reading(result: ExchangeCurvature, z: float = 3.0) -> str:
    """What :func:`lowrank.theory.landscape.exchange_curvature` says, in words: "no way down"
    when every curvature is positive; "a saddle" when the lowest direction's curvature on the
    second sample lies more than ``z`` of its standard errors below 0; "not resolved"
    otherwise (a negative lowest eigenvalue that the second sample does not confirm)."""
    if not isinstance(result, ExchangeCurvature):
        raise TypeError(f"result must be an ExchangeCurvature, got {type(result).__name__}")
    z = check_real(z, "z", 0.0, None, open_low=True)
    lowest, again = result.eigenvalues[0].item(), result.held_out
    if lowest > 0:
        return f"no way down: every exchange curvature is positive (lowest {lowest:+.3f})"
    error = result.held_out_stderr
    found = f"curvature {lowest:+.3f}, {again:+.3f} ± {error:.3f} on a second sample"
    if again < -z * error:
        return f"a saddle: {found}"
    return f"not resolved: {found}"
