r"""Denoisers sharing one contract (:class:`Denoiser`): ``den(x_t, sigma) -> x_hat``; the exact
ones also give ``den.features(x_t, sigma)``.

Noise model: :math:`x_t = x_0 + \sigma \epsilon`, :math:`\epsilon \sim \mathcal N(0, I)`.
``x_t`` is ``(B, n)``; ``sigma`` is a float or a ``(B,)`` tensor (one noise level per row).

:class:`MixtureDenoiser` is the exact posterior mean :math:`E[x_0 \mid x_t]` of a
:class:`~lowrank.theory.mixtures.LowRankMixture` (Proposition 1 and its general form). For
component ``k`` with covariance :math:`S_k = V_k \operatorname{diag}(\lambda_k) V_k^\top`,
Woodbury gives
:math:`(S_k + \sigma^2 I)^{-1} = \sigma^{-2}(I - V_k \operatorname{diag}(\lambda_k / (\lambda_k
+ \sigma^2)) V_k^\top)`, hence

.. math::
    E[x_0 \mid x_t] = \sum_k w_k(x_t)\,[\mu_k + V_k \operatorname{diag}(\tfrac{\lambda_k}
    {\lambda_k + \sigma^2}) V_k^\top (x_t - \mu_k)],\qquad
    w_k \propto \pi_k \mathcal N(x_t; \mu_k, S_k + \sigma^2 I).

In the union coordinates ``z = W^T x_t`` (see :mod:`lowrank.theory.mixtures`) each class is a full
orthonormal frame ``Q_k`` with variances ``lam_full[k]`` (zero on the directions the class does
not span), and

.. math::
    \log w_k = \log \pi_k - \tfrac12 \sum_j \Big[\frac{q_{kj}^2}{\lambda_{kj} + \sigma^2}
    + \log\big(1 + \lambda_{kj} / \sigma^2\big)\Big] + \text{const},
    \qquad q_k = Q_k^\top (z - m_k),

where the constant (the part of ``x_t`` outside ``span W``, and ``n log sigma^2``) is the
same for every class. Each squared distance is a sum of squares, never a difference of large
numbers, which keeps float32 safe from sigma = 1e-4 to 1e4. When every class covariance is
diagonal in ``W``'s coordinates (every MoLRG but the overlapping one) the frames are the
identity and the step is elementwise; :mod:`lowrank.theory.kernels` holds the reference, the fused
Triton kernel and the dispatch.

:class:`LowRankDAE` is the paper's learnable denoiser (eq. 4),
:math:`x_\theta(x_t) = U D(x_t) U^\top x_t` with :math:`D = \operatorname{diag}(\beta_1 I_d,
\dots, \beta_K I_d)` and :math:`\beta_l = \xi + (\zeta - \xi) w_l`.

:class:`EmpiricalDenoiser` is the posterior mean of a finite training set (the memorizing
optimum), streamed over the set; :func:`dense_posterior_mean` is the brute-force check.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import nn

from lowrank._checks import (
    check_batch,
    check_count,
    check_orthonormal,
    compute_dtype,
    orthonormalize,
    row_sigma,
)
from lowrank.theory import closed_forms, kernels
from lowrank.theory.kernels.reference import (
    HALF_DTYPES,
    Posterior,
    ProjectionParams,
    coordinates_posterior,
    variance_levels,
)
from lowrank.theory.mixtures import LowRankMixture, MoLRG

__all__ = [
    "Denoiser",
    "MixtureDenoiser",
    "LowRankDAE",
    "EmpiricalDenoiser",
    "dense_posterior_mean",
]


class Denoiser(Protocol):
    r"""What every consumer of a denoiser takes (the SNR, the samplers, the features): a callable
    ``den(x_t, sigma) -> x_hat`` on ``x_t = x_0 + sigma n`` of shape ``(B, ...)`` with ``sigma``
    ``(B,)`` (one level per row; the classes here also take a float), returning the estimate of
    :math:`E[x_0 \mid x_t]` of ``x_t``'s shape. The classes of this module, the networks of
    :mod:`lowrank.nets.unet` and any function of that signature qualify."""

    def __call__(self, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...


class MixtureDenoiser:
    r"""Exact posterior mean :math:`E[x_0 \mid x_t]` of a low-rank Gaussian mixture.

    For a :class:`~lowrank.theory.mixtures.MoLRG` with mutually orthogonal classes this is
    Proposition 1: ``x_hat = U h`` with ``h = D(x_t) U^T x_t`` and
    :math:`\beta_l = \xi + (\zeta - \xi) w_l`.

    Arguments:
        mix: the mixture.
        backend: ``"auto"`` (the fused Triton kernel on CUDA when it supports the inputs, else
            the torch reference), ``"torch"`` or ``"triton"``; see :mod:`lowrank.theory.kernels`.
        float32_precision: ``"ieee"`` or ``"tf32"``: how the kernel multiplies float32 inputs.

    Calls (``x_t``: ``(B, n)``; ``sigma``: float or ``(B,)``; computed in ``x_t``'s dtype and
    device, half precision in float32):
        ``den(x_t, sigma)`` -> ``(B, n)`` posterior mean ``x_hat``;
        ``den.features(x_t, sigma)`` -> ``(B, m)`` coordinates ``h = W^T x_hat``, for a MoLRG
        the paper's feature ``D U^T x_t`` (``K * d`` numbers, classes in order);
        ``den.weights(x_t, sigma)`` -> ``(B, K)`` posterior class probabilities ``w``.
    """

    def __init__(
        self, mix: LowRankMixture, backend: str = "auto", float32_precision: str = "ieee"
    ):
        if not isinstance(mix, LowRankMixture):
            raise TypeError(f"mix must be a LowRankMixture, got {type(mix).__name__}")
        kernels.check_options(backend, float32_precision)
        self.mix = mix
        self.backend = backend
        self.float32_precision = float32_precision
        self._cache: dict[tuple, ProjectionParams] = {}

    def _params(self, like: torch.Tensor) -> ProjectionParams:
        dtype = torch.float32 if like.dtype in HALF_DTYPES else like.dtype
        key = (like.device, dtype)
        if key not in self._cache:
            mix = self.mix
            cast = {"device": like.device, "dtype": dtype}
            grouped = variance_levels(mix.lam_coords, mix.mean_coords) if mix.diagonal else None
            self._cache[key] = ProjectionParams(
                W=mix.W.to(**cast),
                lam=(mix.lam_coords if mix.diagonal else mix.lam_full).to(**cast),
                mean=mix.mean_coords.to(**cast),
                log_pi=mix.pi.log().to(**cast),
                Q=None if mix.diagonal else mix.Q.to(**cast),
                levels=None if grouped is None else grouped.levels.to(**cast),
                indicator=None if grouped is None else grouped.indicator.to(**cast),
            )
        return self._cache[key]

    def posterior_coordinates(self, z: torch.Tensor, sigma: float | torch.Tensor) -> Posterior:
        """The posterior from union coordinates (torch reference): its ``(B, m)`` coordinates
        ``W^T x_hat`` and ``(B, K)`` class probabilities (no ``x_hat``).

        Arguments:
            z: ``(B, m)`` coordinates ``W^T x_t``.
            sigma: float or ``(B,)``.
        """
        check_batch(z, self.mix.m, "z")
        return coordinates_posterior(z, row_sigma(sigma, z).square(), self._params(z))

    def posterior(self, x_t: torch.Tensor, sigma: float | torch.Tensor) -> Posterior:
        """The posterior in one pass: ``x_hat`` ``(B, n)``, coordinates ``h`` ``(B, m)``,
        weights ``w`` ``(B, K)``."""
        check_batch(x_t, self.mix.n)
        sigma = row_sigma(sigma, x_t)[:, 0]
        return kernels.dispatch(
            x_t, sigma, self._params(x_t), self.backend, self.float32_precision
        )

    def __call__(self, x_t: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        return self.posterior(x_t, sigma).x_hat

    def features(self, x_t: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        return self.posterior(x_t, sigma).coordinates

    def weights(self, x_t: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        return self.posterior(x_t, sigma).weights

    def __repr__(self) -> str:
        return f"MixtureDenoiser({self.mix!r}, backend={self.backend!r})"


class LowRankDAE(nn.Module):
    r"""Learnable low-rank denoiser of eq. 4: :math:`x_\theta(x_t) = U D(x_t) U^\top x_t`.

    ``U = [U_1, ..., U_K]`` (``n x K d``) is kept orthonormal by construction: it is the QR
    factor (signs fixed) of an unconstrained parameter, so every gradient step stays on the
    Stiefel manifold. The weights are the Bayes posterior of Proposition 1 under uniform
    :math:`\pi`: :math:`w = \operatorname{softmax}_l(\tau \|U_l^\top x_t\|^2)` with temperature
    :math:`\tau = (1-\delta^2) / (2(1+\sigma^2)(\delta^2+\sigma^2))`, and
    :math:`\beta_l = \xi + (\zeta - \xi) w_l`. With ``U`` equal to the true bases it is the
    optimal denoiser (Proposition 1).

    Arguments:
        n, K, d: ambient dimension, classes, rank per class.
        delta: the MoLRG's delta (fixed, not learned).
        generator: seeds the random initial ``U``.
        dtype: parameter dtype.
    """

    def __init__(
        self,
        n: int,
        K: int,
        d: int,
        delta: float,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        n, K, d = check_count(n, "n"), check_count(K, "K"), check_count(d, "d")
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        if n < K * d:
            raise ValueError(f"need n >= K * d, got n={n}, K*d={K * d}")
        if not 0 < delta < 1:
            raise ValueError(f"delta must lie in (0, 1), got {delta}")
        self.n, self.K, self.d, self.delta = n, K, d, float(delta)
        # Start at a random orthonormal U (columns of norm 1, not sqrt(n)): U is invariant to
        # the scale of raw_U, and Adam's steps are absolute, so this scale sets the pace.
        start = torch.linalg.qr(torch.randn(n, K * d, generator=generator, dtype=torch.float64))
        self.raw_U = nn.Parameter(start.Q.to(dtype))

    @classmethod
    def from_bases(
        cls, bases: list[torch.Tensor], delta: float, dtype: torch.dtype = torch.float32
    ) -> LowRankDAE:
        """A DAE started at ``[bases[0], ..., bases[K-1]]``: orthonormal ``(n, d)`` blocks of
        equal rank (the true bases, or a clustering's). Its ``U`` is their joint QR factor, so
        mutually orthogonal bases come back unchanged and nearly orthogonal ones (estimated
        separately) are made orthogonal block by block."""
        if not bases or len({tuple(B.shape) for B in bases}) != 1:
            raise ValueError("LowRankDAE needs K >= 1 bases of one shape (n, d)")
        blocks = [check_orthonormal(B, f"bases[{k}]") for k, B in enumerate(bases)]
        joint = torch.cat(blocks, dim=1)
        if torch.linalg.svdvals(joint).min() < 1e-6:
            raise ValueError("the bases overlap (their columns together are rank deficient)")
        n, d = bases[0].shape
        dae = cls(n, len(bases), d, delta, dtype=dtype)
        with torch.no_grad():
            dae.raw_U.copy_(joint.to(dtype))
        return dae

    @classmethod
    def from_mixture(cls, mix: MoLRG, dtype: torch.dtype = torch.float32) -> LowRankDAE:
        """A DAE whose ``U`` is the mixture's true ``[U_1, ..., U_K]`` (equal ranks)."""
        if not isinstance(mix.d, int):
            raise ValueError("LowRankDAE needs equal class ranks")
        return cls.from_bases(mix.class_bases, mix.delta, dtype=dtype)

    @property
    def dtype(self) -> torch.dtype:
        return self.raw_U.dtype

    @property
    def U(self) -> torch.Tensor:
        """``(n, K d)`` orthonormal basis, classes in column blocks of ``d``."""
        return orthonormalize(self.raw_U)

    def _coefficients(self, x_t: torch.Tensor, sigma):
        check_batch(x_t, self.n)
        if x_t.dtype != self.dtype:
            raise TypeError(
                f"x_t is {x_t.dtype} but the DAE's parameters are {self.dtype}: pass "
                f"x_t.to({self.dtype}) or convert the model with dae.to({x_t.dtype})"
            )
        s = row_sigma(sigma, x_t)  # (B, 1)
        U = self.U
        c = (x_t @ U).view(-1, self.K, self.d)  # (B, K, d) blocks U_l^T x_t
        logits = closed_forms.softmax_temperature(s, self.delta) * c.square().sum(-1)
        w = torch.softmax(logits, dim=-1)  # (B, K)
        zeta, xi = closed_forms.zeta(s), closed_forms.xi(s, self.delta)
        beta = xi + (zeta - xi) * w  # (B, K)
        h = (beta[:, :, None] * c).reshape(-1, self.K * self.d)
        return U, h, w

    def forward(self, x_t: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """``(B, n)`` denoised ``x_hat = U h``."""
        U, h, _ = self._coefficients(x_t, sigma)
        return h @ U.T

    def features(self, x_t: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """``(B, K d)`` feature ``h = D(x_t) U^T x_t``."""
        return self._coefficients(x_t, sigma)[1]

    def weights(self, x_t: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """``(B, K)`` class weights ``w``."""
        return self._coefficients(x_t, sigma)[2]


class EmpiricalDenoiser:
    r"""Posterior mean under the empirical distribution of ``N`` training points: the optimal,
    memorizing denoiser of a finite training set,

    .. math:: \hat x(x_t) = \sum_i \operatorname{softmax}_i\Big(-\frac{\|x_t - x_i\|^2}
              {2\sigma^2}\Big) x_i .

    Streamed over chunks of the training set with an online log-sum-exp (a running maximum per
    query rescales the running sums), so memory is ``O(B (n + chunk))`` whatever ``N``. The
    common ``||x_t||^2`` is dropped from the logits, which become
    :math:`(x_t^\top x_i - \|x_i\|^2 / 2) / \sigma^2`.

    At small sigma the logits are large and their differences small: float32 rounding of
    :math:`x_t^\top x_i` (about ``1e-7 |x_t| |x_i|``) divided by :math:`\sigma^2` can swamp
    them, so pass ``dtype=torch.float64`` there.

    Arguments:
        train_set: ``(N, n)`` training points; their device is where the work happens.
        dtype: storage dtype of the training set (default: its own); float16 and bfloat16 are
            computed in float32.
        chunk_size: training points per step.

    Calls: ``den(x_t, sigma)`` -> ``(B, n)``; ``den.features`` returns the same posterior mean
    (a memorizing denoiser has no lower-dimensional feature).
    """

    def __init__(
        self, train_set: torch.Tensor, dtype: torch.dtype | None = None, chunk_size: int = 4096
    ):
        if not isinstance(train_set, torch.Tensor) or train_set.ndim != 2:
            raise ValueError("train_set must be an (N, n) tensor")
        check_batch(train_set, train_set.shape[1], "train_set")
        if train_set.shape[0] == 0:
            raise ValueError("train_set is empty")
        self.chunk_size = check_count(chunk_size, "chunk_size")
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(
                f"dtype must be a floating-point dtype such as torch.float64, got {dtype}"
            )
        if not bool(torch.all(torch.isfinite(train_set))):
            raise ValueError("train_set must be finite (it contains NaN or inf)")
        self.dtype = dtype or train_set.dtype
        self.train_set = train_set.to(self.dtype)
        # ||x_i||^2 / 2, without an (N, n) temporary
        self.half_sq_norms = (
            0.5
            * torch.linalg.vector_norm(
                self.train_set, dim=1, dtype=compute_dtype(self.dtype)
            ).square()
        )

    @property
    def n(self) -> int:
        return self.train_set.shape[1]

    def __call__(self, x_t: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        check_batch(x_t, self.n)
        out_dtype = x_t.dtype
        work = compute_dtype(self.dtype)  # half precision is stored, not computed in
        x = x_t.to(device=self.train_set.device, dtype=work)
        inv_s2 = row_sigma(sigma, x).square().reciprocal()  # (B, 1)
        run_max = x.new_full((x.shape[0], 1), float("-inf"))
        run_sum = x.new_zeros(x.shape[0], 1)
        acc = torch.zeros_like(x)
        for start in range(0, self.train_set.shape[0], self.chunk_size):
            X = self.train_set[start : start + self.chunk_size].to(work)
            logits = (x @ X.T - self.half_sq_norms[start : start + self.chunk_size]) * inv_s2
            new_max = torch.maximum(run_max, logits.max(dim=1, keepdim=True).values)
            rescale = torch.exp(run_max - new_max)
            p = torch.exp(logits - new_max)
            run_sum = run_sum * rescale + p.sum(dim=1, keepdim=True)
            acc = acc * rescale + p @ X
            run_max = new_max
        return (acc / run_sum).to(device=x_t.device, dtype=out_dtype)

    def features(self, x_t: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        return self(x_t, sigma)

    def __repr__(self) -> str:
        N, n = self.train_set.shape
        return f"EmpiricalDenoiser(N={N}, n={n}, dtype={self.dtype}, chunk_size={self.chunk_size})"


def dense_posterior_mean(mix: LowRankMixture, x_t: torch.Tensor, sigma: float) -> Posterior:
    r"""Brute-force :math:`E[x_0 \mid x_t]` from dense ``n x n`` covariances, in float64.

    No Woodbury, no union coordinates: for each class, solve with :math:`S_k + \sigma^2 I` and
    weight by the full Gaussian log-density. ``O(K n^3)``; it exists to check the fast paths.

    Returns:
        The posterior's ``(B, n)`` mean ``x_hat`` and ``(B, K)`` class probabilities (no union
        coordinates).
    """
    check_batch(x_t, mix.n)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    x = x_t.to(torch.float64)
    eye = torch.eye(mix.n, dtype=torch.float64)
    log_post, cond_means = [], []
    for k in range(mix.K):
        S = mix.covariance(k)
        C = S + sigma**2 * eye
        r = x - mix.means[k]
        sol = torch.linalg.solve(C, r.T).T  # (B, n): C^{-1} (x_t - mu_k)
        quad = (r * sol).sum(1)
        logdet = torch.linalg.slogdet(C).logabsdet
        log_post.append(mix.pi[k].log() - 0.5 * (quad + logdet + mix.n * math.log(2 * math.pi)))
        cond_means.append(mix.means[k] + sol @ S)  # S symmetric: S C^{-1} r, row-wise
    w = torch.softmax(torch.stack(log_post, 1), 1)
    x_hat = torch.einsum("bk,kbn->bn", w, torch.stack(cond_means))
    return Posterior(x_hat=x_hat, coordinates=None, weights=w)
