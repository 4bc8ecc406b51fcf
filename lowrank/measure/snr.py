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
for any denoiser in the ambient space. :func:`theorem1_ratios` splits Theorem 1's error into its
two replacements, the own block's and the other blocks'.

:func:`real_data_snr` is the same ratio for real images, with class subspaces fitted to features
(:func:`real_data_features`). Principal angles and distributional distances live in
:mod:`lowrank.measure.distances`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from lowrank._checks import (
    as_float64,
    as_sigmas,
    check_count,
    check_labels,
    check_orthonormal,
    check_real,
)
from lowrank.theory import closed_forms
from lowrank.theory.denoisers import MixtureDenoiser
from lowrank.theory.mixtures import LowRankMixture, MoLRG

__all__ = [
    "SNREstimate",
    "snr",
    "real_data_features",
    "real_data_snr",
    "snr_exact",
    "snr_estimate",
    "Theorem1Ratios",
    "theorem1_ratios",
]


@dataclass(frozen=True)
class SNREstimate:
    """An SNR estimate and its standard error (the delta method's, for a ratio of means).

    Attributes:
        value: the SNR: a scalar, ``(S,)`` over noise levels, or the class ratios ``(K, ...)``
            when ``per_class`` was asked.
        stderr: its standard error, the same shape.
    """

    value: torch.Tensor
    stderr: torch.Tensor


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
    per_class_result: bool,
) -> SNREstimate:
    """Stratified estimate: ``num_samples // K`` draws per class, weighted by ``pi`` unless
    ``per_class_result`` asks for the ``(K, S)`` class ratios."""
    per_class = _class_counts(num_samples, mix.K)
    snr = torch.zeros(mix.K, len(sigmas), dtype=torch.float64)
    var = torch.zeros(mix.K, len(sigmas), dtype=torch.float64)
    for i, sigma in enumerate(sigmas.tolist()):
        for k in range(mix.K):
            num, den = [], []
            for start in range(0, per_class, _CHUNK):
                a, b = class_energies(k, sigma, min(_CHUNK, per_class - start))
                num.append(a)
                den.append(b)
            snr[k, i], var[k, i] = _ratio_of_means(torch.cat(num), torch.cat(den))
    if per_class_result:
        return SNREstimate(snr.to(sigmas.dtype), var.sqrt().to(sigmas.dtype))
    total = _over_classes(snr, var, mix.pi)  # E_k over k ~ pi
    return SNREstimate(total.value.to(sigmas.dtype), total.stderr.to(sigmas.dtype))


def _over_classes(
    ratios: torch.Tensor, variances: torch.Tensor, weights: torch.Tensor
) -> SNREstimate:
    """Weighted mean of the class ratios ``(K, ...)`` and its standard error (independent
    classes)."""
    return SNREstimate(weights @ ratios, (weights.square() @ variances).sqrt())


def _split_energy(proj: torch.Tensor, full: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy of ``proj`` (the decoded block) and of ``full - proj``, per row."""
    return proj.square().sum(-1), (full - proj).square().sum(-1)


def snr(
    features: torch.Tensor,
    labels: torch.Tensor,
    class_bases: Sequence[torch.Tensor],
    weights: torch.Tensor | None = None,
    per_class: bool = False,
) -> SNREstimate:
    r"""SNR of Definition 1 on given features: for each class ``k`` the ratio of the mean energy
    of its samples' features in ``span U_k`` to the mean energy outside it, then the
    ``weights``-weighted mean of the class ratios.

    Arguments:
        features: ``(N, p)`` features ``h`` (for a low-rank denoiser, its output ``x_hat`` or its
            coefficients; for a network, pooled activations).
        labels: ``(N,)`` classes in ``0 .. K-1``, each present at least twice.
        class_bases: ``K`` orthonormal ``(p, r_k)`` bases ``U_k``.
        weights: ``(K,)`` class weights (the paper's :math:`E_k` over ``k ~ pi``); default the
            class frequencies in ``labels``.
        per_class: return the ``(K,)`` class ratios instead of their weighted mean.

    Returns:
        Value and standard error, float64 scalars (``(K,)`` with ``per_class``).
    """
    K = check_labels(labels, "labels", K=len(class_bases))
    if features.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"features must be (N, p) with N = {labels.shape[0]} rows, got {tuple(features.shape)}"
        )
    h = features.detach().to(torch.float64)
    counts = torch.bincount(labels, minlength=K)
    if bool((counts < 2).any()):
        raise ValueError(f"every class needs at least 2 samples, got counts {counts.tolist()}")
    if not bool(torch.all(torch.isfinite(h))):
        raise ValueError("features must be finite (they contain NaN or inf)")
    ratios, variances = torch.zeros(K, dtype=torch.float64), torch.zeros(K, dtype=torch.float64)
    for k, U in enumerate(class_bases):
        U = check_orthonormal(U, f"class_bases[{k}]")
        if U.shape[0] != h.shape[1]:
            raise ValueError(f"class_bases[{k}] must have {h.shape[1]} rows (the feature width)")
        rows = h[labels == k]
        ratios[k], variances[k] = _ratio_of_means(*_split_energy((rows @ U) @ U.T, rows))
    if per_class:
        return SNREstimate(ratios, variances.sqrt())
    w = counts.double() / counts.sum() if weights is None else as_float64(weights, "weights")
    if w.shape != (K,) or bool((w < 0).any()) or abs(w.sum().item() - 1) > 1e-9:
        raise ValueError(f"weights must be {K} non-negative numbers summing to 1, got {w}")
    return _over_classes(ratios, variances, w)


def real_data_features(
    train_features: torch.Tensor, *other_features: torch.Tensor
) -> list[torch.Tensor]:
    """The paper's preprocessing of a network's features for the SNR (Section 5), in float64:
    every row divided by its norm, then all centred with the mean of the normalized
    **training** rows. Returns the training features first, then each of ``other_features``
    (a test split) under the same centring."""
    tiny = torch.finfo(torch.float64).tiny
    rows = [F.detach().to(torch.float64) for F in (train_features, *other_features)]
    rows = [F / F.norm(dim=1, keepdim=True).clamp_min(tiny) for F in rows]
    mean = rows[0].mean(0)
    return [F - mean for F in rows]


def real_data_snr(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    rank: int = 5,
) -> SNREstimate:
    """The paper's SNR recipe for a network's features (Section 5): divide every feature vector
    by its norm, centre with the mean over the training split, take each class's top-``rank``
    right singular vectors as ``U_k``, and evaluate Definition 1 (:func:`snr`) on the same
    training features.

    What it measures: the share of each class's energy in its own top-``rank`` directions
    against the rest, i.e. how low-rank each class is, not how separated the classes are
    (two classes sharing one subspace score as high as two orthogonal ones).

    Arguments:
        train_features: ``(N, p)`` features of the training split.
        train_labels: ``(N,)`` labels in ``0 .. K-1``.
        rank: principal directions per class (the paper: 5).

    Returns:
        As :func:`snr`; the standard error treats the bases as fixed,
        although they are fitted on the same features (an optimistic error bar).
    """
    K = check_labels(train_labels, "train_labels")
    if train_features.ndim != 2 or train_features.shape[0] != train_labels.shape[0]:
        raise ValueError("train_features must be (N, p) with one row per label")
    p = train_features.shape[1]
    if not 1 <= rank < p:  # at rank p nothing is left outside: the ratio is rounding error
        raise ValueError(f"rank must lie in [1, {p - 1}] (below the feature width), got {rank}")
    counts = torch.bincount(train_labels, minlength=K)
    if bool((counts <= rank).any()):
        raise ValueError(
            f"every class needs more than rank = {rank} samples to have energy outside its "
            f"top-{rank} directions, got counts {counts.tolist()}"
        )
    (h,) = real_data_features(train_features)
    bases = [
        torch.linalg.svd(h[train_labels == k], full_matrices=False).Vh[:rank].T for k in range(K)
    ]
    return snr(h, train_labels, bases)


def snr_exact(
    mix: LowRankMixture,
    sigmas: Sequence[float] | torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
    per_class: bool = False,
) -> SNREstimate:
    """SNR (Definition 1) of the optimal denoiser of ``mix``, by Monte Carlo in coefficient space.

    Computed in float64 in the ``m`` union coordinates; the cost does not depend on ``n``.

    Arguments:
        mix: the mixture; its ``class_bases`` are the ``U_k`` Definition 1 decodes with.
        sigmas: noise levels (> 0).
        num_samples: draws per sigma, split evenly over the classes.
        generator: random source (CPU).
        per_class: return each class's ratio, ``(K, len(sigmas))``, instead of their
            ``pi``-weighted mean (the per-class rows of the paper's Tables 5 and 6).

    Returns:
        Value and standard error, ``(len(sigmas),)`` tensors in ``sigmas``' dtype (float64
        for a sequence); ``(K, len(sigmas))`` with ``per_class``.
    """
    sig = as_sigmas(sigmas)
    den = MixtureDenoiser(mix)

    def class_energies(k: int, sigma: float, M: int):
        y = torch.full((M,), k, dtype=torch.long)
        z0 = mix.sample_coordinates(y, generator)
        z = z0 + sigma * torch.randn(M, mix.m, generator=generator, dtype=torch.float64)
        h = den.posterior_coordinates(z, sigma).coordinates
        B = mix.class_coords[k]  # (m, d_k): U_k in coordinates
        return _split_energy((h @ B) @ B.T, h)

    return _snr_over_classes(mix, sig, num_samples, class_energies, per_class)


def snr_estimate(
    denoiser: Callable[[torch.Tensor, float], torch.Tensor],
    mix: LowRankMixture,
    sigmas: Sequence[float] | torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    per_class: bool = False,
) -> SNREstimate:
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
        per_class: return ``(K, len(sigmas))`` class ratios, as in :func:`snr_exact`.

    Returns:
        Value and standard error, ``(len(sigmas),)`` tensors in ``sigmas``' dtype.
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

    return _snr_over_classes(mix, sig, num_samples, class_energies, per_class)


@dataclass(frozen=True)
class Theorem1Ratios:
    r"""Theorem 1's replacements at one noise level, measured on the optimal denoiser.

    With :math:`h_l = \beta_l U_l^\top x_t` (Proposition 1), the exact SNR is
    :math:`E\|h_k\|^2 / ((K-1) E\|h_l\|^2)` and Theorem 1's is
    :math:`\beta_+^2 d(1+\sigma^2) / ((K-1) \beta_-^2 d(\delta^2+\sigma^2))`, each shrinkage
    evaluated at the mean block energies and taken out of the expectation. So, exactly,
    ``Theorem 1 / exact = other / own``.

    Attributes:
        own: :math:`N = E\|h_k\|^2 / (\beta_+^2 d(1+\sigma^2))`, the own block's exact
            energy over Theorem 1's.
        other: :math:`R = E\|h_l\|^2 / (\beta_-^2 d(\delta^2+\sigma^2))`, the same for the
            other blocks (their mean).
        other_stderr: the Monte Carlo standard error of ``other``.
    """

    own: float
    other: float
    other_stderr: float

    @property
    def theorem1_over_exact(self) -> float:
        """Theorem 1's SNR over the exact one, from the same draws."""
        return self.other / self.own


def theorem1_ratios(
    mix: MoLRG, sigma: float, num_samples: int, generator: torch.Generator | None = None
) -> Theorem1Ratios:
    """:class:`Theorem1Ratios` of ``mix`` (a MoLRG under Assumption 1, where Theorem 1 applies) at
    ``sigma`` from ``num_samples`` draws of class 0 (every class is alike there), with the
    derived logit gap."""
    if not closed_forms.theorem1_applies(mix):
        raise ValueError(
            f"mix must be a MoLRG under Assumption 1 (orthogonal classes of equal rank, zero "
            f"means, uniform pi), where Theorem 1 applies; got {mix!r}"
        )
    sigma = check_real(sigma, "sigma", 0.0, None, open_low=True)
    M = check_count(num_samples, "num_samples", minimum=2)
    y = torch.zeros(M, dtype=torch.long)
    z = mix.sample_coordinates(y, generator)
    z = z + sigma * torch.randn(z.shape, generator=generator, dtype=torch.float64)
    h = MixtureDenoiser(mix).posterior_coordinates(z, sigma).coordinates
    own = (h @ mix.class_coords[0]).square().sum(-1)
    others = torch.stack([(h @ B).square().sum(-1) for B in mix.class_coords[1:]]).mean(0)
    s = torch.tensor([sigma], dtype=torch.float64)
    beta = closed_forms.block_scales(mix.K, mix.d, mix.delta, s)
    energies = closed_forms.block_energies(mix.d, mix.delta, s)
    own_t1 = (beta.beta_plus.square() * energies.own).item()
    other_t1 = (beta.beta_minus.square() * energies.other).item()
    return Theorem1Ratios(
        own.mean().item() / own_t1,
        others.mean().item() / other_t1,
        others.std().item() / M**0.5 / other_t1,
    )
