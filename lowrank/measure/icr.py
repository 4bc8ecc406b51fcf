r"""The invariant contamination ratio (ICR), a label-free measure of how much of a feature's
variation is the item and how much is the view (the follow-up of the paper's group,
arXiv 2606.09718; no code is public, this is written from its definition).

Features :math:`h_{vi}` of ``V`` views (noise draws, redrawn nuisance detail) of each of ``N``
items split into the item's invariant part and the view's contamination,

.. math::
    s_i = \frac1V \sum_v h_{vi}, \qquad \xi_{vi} = h_{vi} - s_i,

with covariances normalized so that they add up to the total one exactly:

.. math::
    \Sigma_s = \frac1N \sum_i (s_i - \bar h)(s_i - \bar h)^\top, \qquad
    \Sigma_\xi = \frac1{NV} \sum_{v,i} \xi_{vi} \xi_{vi}^\top, \qquad
    \Sigma_h = \frac1{NV} \sum_{v,i} (h_{vi} - \bar h)(h_{vi} - \bar h)^\top
             = \Sigma_s + \Sigma_\xi

(the cross term vanishes because every item's :math:`\xi` sums to zero over its views). The
generalized eigenvalues :math:`\Sigma_s v = \lambda (\Sigma_\xi + \tau I) v` are the invariant
variance per unit of contamination along each direction, and

.. math:: \mathrm{ICR} = 1 / (1 + \bar\lambda) \in (0, 1],

lower is cleaner. Its scale depends on ``V``: each item's mean keeps :math:`\Sigma_\xi /
(V - 1)` of the views' contamination, so features that are pure contamination give
:math:`\lambda = 1/(V-1)` and an ICR of :math:`(V-1)/V` (0.875 for 8 views), not 1; compare
ICRs at one ``V``. With :math:`\tau = 0` the ICR is unchanged by any invertible linear map of
the features; :math:`\tau > 0` keeps directions without contamination finite and makes it
depend on the features' scale: :func:`icr` takes ``tau`` in the features' squared units, or
relative to the mean variance :math:`\operatorname{tr}\Sigma_h / p` with ``relative=True``
(what the book uses, so that networks of different widths and scales are compared alike).

:func:`icr_interval` resamples items (each with all its views) for a percentile interval;
:func:`molrg_views` gives the MoLRG's own views: each item keeps its class-specific
coordinates :math:`a` while the class-agnostic detail :math:`e` and the diffusion noise are
redrawn. :func:`icr_across_sigma` is the ICR of a network's blocks over noise levels, the views
of an image being independent noise draws at the same level (the follow-up's curve, whose
minimum it reports at the linear probe's peak).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lowrank._checks import as_sigmas, check_count, check_labels, check_open_unit, check_real
from lowrank.measure.features import HookedDenoiser, features_across_sigma
from lowrank.measure.stats import Interval
from lowrank.theory.mixtures import MoLRG

__all__ = [
    "DEFAULT_TAU",
    "ICR",
    "icr",
    "icr_floor",
    "icr_interval",
    "molrg_views",
    "ICRCurve",
    "icr_across_sigma",
]

#: The ridge the book's ICRs use, relative to the features' mean variance: small enough to leave
#: contaminated directions alone, large enough to keep uncontaminated ones finite.
DEFAULT_TAU = 1e-3


@dataclass(frozen=True)
class ICR:
    """The invariant contamination ratio and what it is made of.

    Attributes:
        value: ``1 / (1 + mean(eigenvalues))``, in (0, 1]; lower is cleaner.
        eigenvalues: ``(p,)`` generalized eigenvalues of ``(Sigma_s, Sigma_xi + tau I)``,
            ascending (float64).
        tau: the absolute ridge added to ``Sigma_xi`` (``tau`` times the mean variance when
            it was given relative).
        sigma_s, sigma_xi: ``(p, p)`` the invariant and the contamination covariances; their
            sum is the total covariance of all ``V N`` feature vectors (1/(V N) normalized).
    """

    value: float
    eigenvalues: torch.Tensor
    tau: float
    sigma_s: torch.Tensor
    sigma_xi: torch.Tensor


def _views(views) -> torch.Tensor:
    if not isinstance(views, torch.Tensor) or views.ndim != 3:
        shape = tuple(views.shape) if isinstance(views, torch.Tensor) else type(views).__name__
        raise ValueError(f"views must be a (V, N, p) tensor of features, got {shape}")
    V, N, p = views.shape
    if V < 2 or N < 2 or p < 1:
        raise ValueError(
            f"views needs V >= 2 views of N >= 2 items with p >= 1 features, got {(V, N, p)}"
        )
    h = views.detach().to(torch.float64)
    if not bool(torch.all(torch.isfinite(h))):
        raise ValueError("views must be finite (a NaN or inf feature)")
    return h


def _covariances(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Sigma_s, Sigma_xi)`` of ``(V, N, p)`` float64 views, normalized as in the module."""
    V, N, _ = h.shape
    s = h.mean(0)
    xi = h - s
    centred = s - s.mean(0)
    return centred.T @ centred / N, torch.einsum("vni,vnj->ij", xi, xi) / (N * V)


def icr(views: torch.Tensor, tau: float, *, relative: bool = False) -> ICR:
    """The ICR of ``views``.

    Arguments:
        views: ``(V, N, p)`` features of ``V >= 2`` views of ``N >= 2`` items.
        tau: the ridge on the contamination covariance (>= 0): relative to the mean variance
            ``tr(Sigma_h) / p`` when ``relative``, else in the features' squared units. With
            ``tau = 0``, ``Sigma_xi`` must be positive definite (more views than features, and
            no feature that every view shares).

    Computed in float64 by a Cholesky whitening of ``Sigma_xi + tau I``.
    """
    h = _views(views)
    tau = check_real(tau, "tau", 0.0)
    sigma_s, sigma_xi = _covariances(h)
    p = h.shape[2]
    scale = torch.trace(sigma_s + sigma_xi).item() / p if relative else 1.0
    ridge = tau * scale
    L, info = torch.linalg.cholesky_ex(sigma_xi + ridge * torch.eye(p, dtype=torch.float64))
    if int(info) != 0:
        raise ValueError(
            "Sigma_xi + tau I is not positive definite: some feature direction does not vary "
            "across views; give tau > 0"
            + (" (a relative tau is 0 here: the features do not vary at all)" if relative else "")
        )
    half = torch.linalg.solve_triangular(L, sigma_s, upper=False)
    whitened = torch.linalg.solve_triangular(L, half.T, upper=False)
    eigenvalues = torch.linalg.eigvalsh((whitened + whitened.T) / 2)
    return ICR(1.0 / (1.0 + eigenvalues.mean().item()), eigenvalues, ridge, sigma_s, sigma_xi)


def icr_floor(tau: float) -> float:
    """The smallest ICR a relative ridge ``tau`` allows, ``tau / (1 + tau)``: views that do not
    differ at all (``Sigma_xi = 0``) give every generalized eigenvalue the item variance over
    ``tau`` times the mean variance, ``1 / tau`` on average. Where an ICR sits at this floor
    (a noise draw too small to move the features) it measures the ridge, not the features."""
    tau = check_real(tau, "tau", 0.0, None, open_low=True)
    return tau / (1.0 + tau)


def icr_interval(
    views: torch.Tensor,
    tau: float,
    *,
    relative: bool = False,
    resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of :func:`icr` over items: each resample draws ``N`` items
    with replacement, every item with all its views (the views of one item are not
    independent, the items are). ``tau`` is fixed at the full sample's absolute ridge, so the
    interval reflects the items and not a moving ridge."""
    h = _views(views)
    resamples = check_count(resamples, "resamples", minimum=10)
    level = check_open_unit(level, "level")
    ridge = icr(h, tau, relative=relative).tau
    gen = torch.Generator().manual_seed(check_count(seed, "seed", minimum=0))
    N = h.shape[1]
    values = torch.tensor(
        [
            icr(h[:, torch.randint(0, N, (N,), generator=gen)], ridge, relative=False).value
            for _ in range(resamples)
        ],
        dtype=torch.float64,
    )
    tail = (1 - level) / 2
    low, high = torch.quantile(values, torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return Interval(low.item(), high.item(), level)


def molrg_views(
    mix: MoLRG,
    labels: torch.Tensor,
    latents: torch.Tensor,
    sigma: float,
    views: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``(views, N, m)`` noisy union coordinates ``W^T x_sigma`` of ``N`` MoLRG items, each view
    keeping the item's class-specific coordinates ``a`` and redrawing its class-agnostic detail
    ``e`` and the diffusion noise.

    Arguments:
        mix: the MoLRG; its class ``k`` latents are ordered ``[a (d_k), e (the rest)]``, the
            order of ``mix.bases[k] = [U_k, Ut_k]``.
        labels: ``(N,)`` classes; latents: ``(N, m)`` standard normal latents of the items
            (only each row's first ``d_k`` entries, its ``a``, are read).
        sigma: the noise level (> 0); views: how many (>= 2).
    """
    if not isinstance(mix, MoLRG):
        raise TypeError(f"mix must be a MoLRG (its views keep a and redraw e), got {mix!r}")
    check_labels(labels, "labels", K=mix.K)
    if not isinstance(latents, torch.Tensor) or latents.shape != (len(labels), mix.m):
        raise ValueError(
            f"latents must be ({len(labels)}, {mix.m}) (one row of m latents per item)"
        )
    sigma = check_real(sigma, "sigma", 0.0, None, open_low=True)
    views = check_count(views, "views", minimum=2)
    ranks = torch.tensor(mix.class_ranks)[labels]  # d_k of each item
    keep = torch.arange(mix.m)[None, :] < ranks[:, None]
    out = []
    for _ in range(views):
        fresh = torch.randn(latents.shape, generator=generator, dtype=torch.float64)
        z0 = mix.coordinates(labels, torch.where(keep, latents.to(torch.float64), fresh))
        out.append(z0 + sigma * torch.randn(z0.shape, generator=generator, dtype=torch.float64))
    return torch.stack(out)


@dataclass(frozen=True)
class ICRCurve:
    """The ICR of one block across noise levels.

    Attributes:
        sigmas: ``(S,)`` noise levels.
        value: ``(S,)`` the ICR at each level.
        low, high: ``(S,)`` its percentile intervals over images (:func:`icr_interval`, 95%).
    """

    sigmas: torch.Tensor
    value: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor


def icr_across_sigma(
    denoiser: HookedDenoiser,
    names: Sequence[str],
    x0: torch.Tensor,
    sigmas: Sequence[float] | torch.Tensor,
    *,
    views: int = 8,
    tau: float = DEFAULT_TAU,
    resamples: int = 200,
    seed: int = 0,
) -> dict[str, ICRCurve]:
    """The ICR of each block's features (``names``, readouts as in
    :func:`lowrank.measure.features.features_across_sigma`) at every level of ``sigmas``, the
    ``views`` (>= 2) of an image ``x0[i]`` being independent noise draws ``x0[i] + sigma n``
    (the seeds ``seed .. seed + views - 1`` of ``features_across_sigma``), with the ridge
    ``tau`` relative to the features' mean variance and ``resamples`` bootstrap resamples of
    the images for each interval."""
    views = check_count(views, "views", minimum=2)
    sig = as_sigmas(sigmas, torch.float64)
    check_real(tau, "tau", 0.0)  # before the forward passes, not after them
    check_count(resamples, "resamples", minimum=10)
    runs = [
        features_across_sigma(denoiser, names, x0, sig, seed=seed + v, progress=False)
        for v in range(views)
    ]
    curves = {}
    for name in runs[0]:
        stacked = torch.stack([run[name] for run in runs])  # (V, S, N, p)
        values, intervals = [], []
        for s in range(len(sig)):
            h = stacked[:, s]
            values.append(icr(h, tau, relative=True).value)
            intervals.append(icr_interval(h, tau, relative=True, resamples=resamples, seed=seed))
        curves[name] = ICRCurve(
            sig,
            torch.tensor(values, dtype=torch.float64),
            torch.tensor([i.low for i in intervals], dtype=torch.float64),
            torch.tensor([i.high for i in intervals], dtype=torch.float64),
        )
    return curves
