"""The paper's own denoiser on its appendix tables (chapter 4, Tables 4-6): :func:`trained_dae_snr`
trains the eq.-4 DAE as printed (equal block widths, uniform-prior softmax, no ``log pi``
term) from the K-subspaces start on samples of a mixture, then measures its SNR (Definition 1,
decoded with the mixture's true class bases).

The paper compares its tables with this trained DAE; the book's first comparison used the
*optimal* denoiser instead. Two of the DAE's constraints can matter where the optimal one has
none: its blocks are orthonormal to each other (it cannot hold two overlapping subspaces), and
its weights ignore the class prior (Table 6) and give every class the same width (Table 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lowrank._checks import check_count
from lowrank.measure.snr import SNREstimate, snr_estimate
from lowrank.nets.train import DAERecipe, train_dae
from lowrank.theory.clustering import k_subspaces
from lowrank.theory.denoisers import LowRankDAE
from lowrank.theory.mixtures import MoLRG

__all__ = ["TrainedDAE", "trained_dae_snr"]


@dataclass(frozen=True)
class TrainedDAE:
    """Result of :func:`trained_dae_snr`.

    Attributes:
        dae: the trained model (float32).
        losses: the mean training loss of every epoch.
        snr: its SNR, ``(S,)``, or ``(K, S)`` class ratios with ``per_class``.
    """

    dae: LowRankDAE
    losses: list[float]
    snr: SNREstimate


def trained_dae_snr(
    mix: MoLRG,
    sigmas: Sequence[float] | torch.Tensor,
    *,
    d: int,
    num_train: int,
    epochs: int,
    snr_samples: int,
    per_class: bool = False,
    seed: int = 0,
) -> TrainedDAE:
    """Train the eq.-4 DAE with blocks of width ``d`` on ``num_train`` samples of ``mix`` (the
    paper's recipe: Adam 5e-4, batches of 128, DDPM T = 500, ``epochs`` passes) from the best
    of 10 K-subspaces restarts, and measure its SNR on ``sigmas`` with ``snr_samples`` draws
    per level (``per_class``: each class's ratio, as Tables 5 and 6 print)."""
    if not isinstance(mix, MoLRG):
        raise TypeError(f"mix must be a MoLRG, got {type(mix).__name__}")
    d = check_count(d, "d")
    if mix.K * d > mix.n:
        raise ValueError(f"K d = {mix.K * d} blocks do not fit n = {mix.n} dimensions: lower d")
    gen = torch.Generator().manual_seed(check_count(seed, "seed", minimum=0))
    x, _ = mix.sample(check_count(num_train, "num_train", minimum=mix.K * d), gen)
    start = k_subspaces(x, mix.K, d, restarts=10, generator=gen)
    dae = LowRankDAE.from_bases(start.bases, mix.delta)
    losses = train_dae(dae, x.float(), DAERecipe(check_count(epochs, "epochs")), generator=gen,
                       progress=False)  # fmt: skip
    snr = snr_estimate(dae, mix, sigmas, snr_samples, gen, per_class=per_class)
    return TrainedDAE(dae, losses, snr)
