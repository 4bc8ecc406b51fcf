r"""Mixtures of low-rank Gaussians: the data model of the paper (Assumption 1) and its variants.

A :class:`LowRankMixture` has components

.. math:: x_0 \mid k \sim \mathcal N(\mu_k, V_k \operatorname{diag}(\lambda_k) V_k^\top),
          \qquad \Pr(k) = \pi_k,

with orthonormal :math:`V_k \in \mathbb R^{n \times r_k}` and variances :math:`\lambda_k > 0`.
Every mean and every :math:`V_k` lies in one union subspace of dimension
:math:`m \le \sum_k r_k + K`, spanned by an orthonormal ``W`` (``n x m``). All class-dependent
computations of the optimal denoiser happen in the ``m`` coordinates ``W^T x`` (the component
of ``x`` outside ``span W`` is common to every class and cancels), which is why the denoiser and
the SNR cost nothing in the ambient dimension ``n`` beyond two matrix products.

A :class:`MoLRG` (Assumption 1) is the special case

.. math:: x_0 = U_k a + \delta \tilde U_k e, \qquad a \sim \mathcal N(0, I_{d_k}),\;
          e \sim \mathcal N(0, I),

so :math:`V_k = [U_k, \tilde U_k]`, :math:`\lambda_k = (1, \dots, 1, \delta^2, \dots,
\delta^2)`, with :math:`\tilde U_k` an orthonormal basis of the part of the other classes'
span orthogonal to :math:`U_k` (for mutually orthogonal classes, :math:`[U_l]_{l \ne k}`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lowrank._checks import (
    as_float64,
    check_count,
    check_labels,
    check_orthonormal,
    orthonormalize,
)

__all__ = ["LowRankMixture", "MoLRG"]

# Relative singular-value cutoff deciding whether a direction is new to the union subspace.
_RANK_RTOL = 1e-10


def _as_pi(pi: Sequence[float] | torch.Tensor | None, K: int) -> torch.Tensor:
    if pi is None:
        return torch.full((K,), 1.0 / K, dtype=torch.float64)
    p = as_float64(pi, "pi")
    if p.shape != (K,):
        raise ValueError(f"pi must have {K} entries (one per class), got shape {tuple(p.shape)}")
    if torch.any(p <= 0) or abs(p.sum().item() - 1) > 1e-6:
        raise ValueError(f"pi must be positive and sum to 1, got {p.tolist()}")
    return p / p.sum()


def _extend_basis(W: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """Append to orthonormal ``W`` (n, m) an orthonormal basis of what ``M``'s columns add.

    Directions of ``M`` orthogonal to ``W`` keep their order and sign (QR), so that mutually
    orthogonal class bases come back exactly as given; partly covered ones are found by SVD.
    """
    R = M - W @ (W.T @ M)
    R = R - W @ (W.T @ R)  # second pass: classical Gram-Schmidt loses orthogonality once
    scale = max(1.0, torch.linalg.matrix_norm(M, ord=2).item()) if M.numel() else 1.0
    tol = _RANK_RTOL * scale * max(M.shape)
    R = R[:, R.norm(dim=0) > tol]  # columns W already spans add nothing; dropping them keeps
    if R.shape[1] == 0:  # the others' directions as given (QR below) instead of rotated (SVD)
        return W
    s = torch.linalg.svdvals(R)
    rank = int((s > tol).sum())
    if rank == 0:
        return W
    if rank == R.shape[1] and s[-1] > 0.5 * s[0]:
        new = orthonormalize(R)
    else:
        new = torch.linalg.svd(R, full_matrices=False).U[:, :rank]
    return torch.cat([W, new], dim=1)


def _complement(A: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis (m, m - r) of the orthogonal complement of orthonormal ``A`` (m, r)."""
    m, r = A.shape
    if r == m:
        return A.new_zeros(m, 0)
    P = torch.eye(m, dtype=A.dtype) - A @ A.T
    return torch.linalg.eigh(P).eigenvectors[:, r:]  # eigenvalues 0 (r times) then 1


class LowRankMixture:
    r"""Mixture of low-rank Gaussians :math:`\sum_k \pi_k \mathcal N(\mu_k, V_k
    \operatorname{diag}(\lambda_k) V_k^\top)`.

    Arguments:
        pi: ``(K,)`` class probabilities (sequence or tensor; ``None`` for uniform).
        means: ``(K, n)`` class means, or ``None`` for zero means.
        bases: ``K`` tensors ``V_k`` of shape ``(n, r_k)`` with orthonormal columns.
        variances: ``K`` tensors ``lambda_k`` of shape ``(r_k,)``, all > 0.
        class_bases: ``K`` tensors ``U_k`` of shape ``(n, d_k)``: the "relevant" subspace of each
            class that Definition 1 (SNR) decodes with; defaults to ``bases``.

    Attributes:
        n, K: ambient dimension and number of classes.
        W: ``(n, m)`` orthonormal basis of the union of all class subspaces and means, with the
            class bases first, in class order (for an orthogonal MoLRG, ``W = [U_1, ..., U_K]``).

    Everything is stored in float64 on the CPU; samplers and denoisers cast on use.
    """

    def __init__(
        self,
        pi: Sequence[float] | torch.Tensor | None,
        means: torch.Tensor | None,
        bases: Sequence[torch.Tensor],
        variances: Sequence[torch.Tensor | Sequence[float]],
        class_bases: Sequence[torch.Tensor] | None = None,
    ):
        if len(bases) == 0:
            raise ValueError("bases is empty: need at least one component")
        if len(variances) != len(bases):
            raise ValueError(f"got {len(bases)} bases but {len(variances)} variance vectors")
        self.K = len(bases)
        self.n = int(bases[0].shape[0])
        self.pi = _as_pi(pi, self.K)
        self.bases = [check_orthonormal(V, f"bases[{k}]") for k, V in enumerate(bases)]
        self.variances = []
        for k, (V, lam) in enumerate(zip(self.bases, variances, strict=True)):
            if V.shape[0] != self.n:
                raise ValueError(f"bases[{k}] has {V.shape[0]} rows, expected n = {self.n}")
            lam = as_float64(lam, f"variances[{k}]")
            if lam.shape != (V.shape[1],) or torch.any(lam <= 0):
                raise ValueError(f"variances[{k}] must be {V.shape[1]} positive numbers")
            self.variances.append(lam)
        if means is None:
            self.means = torch.zeros(self.K, self.n, dtype=torch.float64)
        else:
            self.means = as_float64(means, "means")
            if self.means.shape != (self.K, self.n):
                raise ValueError(f"means must have shape ({self.K}, {self.n})")
        if class_bases is None:
            self.class_bases = self.bases
        else:
            if len(class_bases) != self.K:
                raise ValueError(f"need {self.K} class bases, got {len(class_bases)}")
            self.class_bases = [
                check_orthonormal(U, f"class_bases[{k}]") for k, U in enumerate(class_bases)
            ]
        W = torch.zeros(self.n, 0, dtype=torch.float64)
        for M in [*self.class_bases, *self.bases, self.means.T]:
            W = _extend_basis(W, M)
        self.W = W
        self._build_coordinates()

    @classmethod
    def fit(cls, x: torch.Tensor, labels: torch.Tensor, rank: int) -> LowRankMixture:
        """The class-conditional low-rank Gaussian mixture of data ``x`` ``(N, n)``: for each
        class its frequency, its mean and the top-``rank`` principal directions of its centred
        samples with their variances (squared singular values over the class count).

        A closed-form stand-in for real data: its exact denoiser is a
        :class:`~lowrank.theory.denoisers.MixtureDenoiser`.
        """
        X = as_float64(x, "x")
        K = check_labels(labels, "labels")
        if X.ndim != 2 or labels.shape != (X.shape[0],):
            raise ValueError("x must be (N, n) with one label per row")
        rank = check_count(rank, "rank")
        counts = torch.bincount(labels, minlength=K)
        if bool((counts <= rank).any()) or rank > X.shape[1]:
            raise ValueError(
                f"rank must be below every class count and at most n = {X.shape[1]}, got "
                f"rank {rank} and counts {counts.tolist()}"
            )
        means, bases, variances = [], [], []
        for k in range(K):
            Xk = X[labels == k]
            mu = Xk.mean(0)
            _, S, Vh = torch.linalg.svd(Xk - mu, full_matrices=False)
            means.append(mu)
            bases.append(Vh[:rank].T.contiguous())
            variances.append(S[:rank].square() / len(Xk))
        return cls(counts.double() / len(X), torch.stack(means), bases, variances)

    def _build_coordinates(self) -> None:
        """Express every component in the ``m`` union coordinates ``W^T x``.

        ``Q[k] = [A_k, A_k^perp]`` (m, m) completes ``A_k = W^T V_k`` to an orthonormal basis of
        the coordinates, and ``lam_full[k]`` pads ``lambda_k`` with zeros for ``A_k^perp``, so the
        class log-likelihood and shrinkage are sums over the same ``m`` directions for all k.
        """
        m = self.m
        self.Q = torch.empty(self.K, m, m, dtype=torch.float64)
        self.lam_full = torch.zeros(self.K, m, dtype=torch.float64)
        for k, (V, lam) in enumerate(zip(self.bases, self.variances, strict=True)):
            A = self.W.T @ V
            self.Q[k] = torch.cat([A, _complement(A)], dim=1)
            self.lam_full[k, : lam.numel()] = lam
        self.mean_coords = self.means @ self.W  # (K, m)
        self.class_coords = [self.W.T @ U for U in self.class_bases]  # K x (m, d_k)
        self.lam_coords = self._coordinate_variances()

    def _coordinate_variances(self) -> torch.Tensor | None:
        """``(K, m)`` variances along each coordinate of ``W`` when every ``V_k`` consists of
        (signed) columns of ``W``; ``None`` otherwise.

        Then every class covariance is diagonal in the union coordinates, the frames ``Q_k``
        are not needed, and the posterior mean is two products with ``W`` and an elementwise
        step in between: the case the fused kernel implements. It holds for orthogonal MoLRGs,
        with unequal ranks, non-uniform ``pi`` and separated means; not for overlapping ones.
        """
        lam = torch.zeros(self.K, self.m, dtype=torch.float64)
        for k, (V, var) in enumerate(zip(self.bases, self.variances, strict=True)):
            A = (self.W.T @ V).abs()  # (m, r_k): a unit vector per column when diagonal
            hit = A.argmax(dim=0)
            if not torch.allclose(A.max(dim=0).values, torch.ones_like(var), atol=1e-10):
                return None
            if hit.unique().numel() != hit.numel():
                return None
            lam[k, hit] = var
        return lam

    @property
    def diagonal(self) -> bool:
        """Whether every class covariance is diagonal in the union coordinates ``W^T x``."""
        return self.lam_coords is not None

    @property
    def m(self) -> int:
        """Dimension of the union subspace."""
        return self.W.shape[1]

    @property
    def ranks(self) -> list[int]:
        """Component ranks ``r_k``."""
        return [V.shape[1] for V in self.bases]

    @property
    def class_ranks(self) -> list[int]:
        """Ranks ``d_k`` of the class bases ``U_k``."""
        return [U.shape[1] for U in self.class_bases]

    def covariance(self, k: int) -> torch.Tensor:
        """``(n, n)`` covariance ``V_k diag(lambda_k) V_k^T`` of component ``k`` (float64)."""
        V = self.bases[k]
        return (V * self.variances[k]) @ V.T

    def mixture_covariance(self) -> torch.Tensor:
        r"""``(n, n)`` covariance of the whole mixture, :math:`\sum_k \pi_k (\Sigma_k + \mu_k
        \mu_k^\top) - \bar\mu \bar\mu^\top` (float64)."""
        mean = self.pi @ self.means
        second = sum(
            self.pi[k] * (self.covariance(k) + torch.outer(self.means[k], self.means[k]))
            for k in range(self.K)
        )
        return second - torch.outer(mean, mean)

    def sample_labels(self, N: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(N,)`` int64 class labels drawn from ``pi`` (empty for ``N = 0``)."""
        if check_count(N, "N", minimum=0) == 0:  # torch.multinomial refuses to draw nothing
            return torch.zeros(0, dtype=torch.long)
        return torch.multinomial(self.pi, N, replacement=True, generator=generator)

    def sample_coordinates(
        self,
        y: torch.Tensor,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> torch.Tensor:
        """Clean samples of classes ``y`` in union coordinates: ``(N, m)`` tensor ``W^T x_0``.

        The latent draw is one standard normal ``(N, m)`` block, so sample ``i`` depends only on
        the generator state and ``y``.
        """
        a = torch.randn(y.shape[0], self.m, generator=generator, dtype=torch.float64)
        return self.coordinates(y, a).to(dtype)

    def coordinates(self, y: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``(N, m)`` float64 coordinates ``W^T x_0`` of classes ``y`` from ``(N, m)`` standard
        normal ``latents``: row ``i`` is ``mu_k + V_k diag(sqrt(lambda_k)) latents[i, :r_k]`` in
        coordinates (``k = y[i]``; the entries past ``r_k`` are not read)."""
        if len(y):  # no samples is a valid request (sample(0))
            check_labels(y, "y", K=self.K)
        if not isinstance(latents, torch.Tensor) or latents.shape != (len(y), self.m):
            raise ValueError(f"latents must be ({len(y)}, {self.m}): one row of m per label")
        z0 = torch.empty(latents.shape, dtype=torch.float64)
        for k in range(self.K):
            rows = y == k
            # lam_full is zero beyond rank r_k, so only the first r_k latents of a row count.
            z0[rows] = (
                self.mean_coords[k] + (latents[rows] * self.lam_full[k].sqrt()) @ self.Q[k].T
            )
        return z0

    def sample(
        self,
        N: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        return_coordinates: bool = False,
    ):
        """Draw ``N`` clean samples.

        Returns:
            ``(x0, y)``: ``(N, n)`` samples and ``(N,)`` int64 labels; with
            ``return_coordinates=True`` also the ``(N, m)`` coordinates ``W^T x0``.
        """
        y = self.sample_labels(N, generator)
        z0 = self.sample_coordinates(y, generator, dtype=torch.float64)
        x0 = (z0 @ self.W.T).to(dtype)
        if return_coordinates:
            return x0, y, z0.to(dtype)
        return x0, y

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={self.n}, K={self.K}, ranks={self.ranks}, m={self.m}, "
            f"pi={[round(p, 4) for p in self.pi.tolist()]})"
        )


class MoLRG(LowRankMixture):
    r"""Mixture of low-rank Gaussians of Assumption 1:
    :math:`x_0 = U_k a + \delta \tilde U_k e` with probability :math:`\pi_k`.

    ``MoLRG(n, K, d, delta, pi=None, seed=0)`` draws ``K`` mutually orthogonal random
    ``(n, d)`` bases; :meth:`from_bases`, :meth:`overlapping` and :meth:`separated` build the
    variants of the paper's appendix (unequal ranks, overlapping subspaces, non-zero means).

    Arguments:
        n: ambient dimension, ``n >= K * d``.
        K: number of classes.
        d: rank of each class subspace.
        delta: noise level on the irrelevant subspace, ``0 < delta < 1``.
        pi: ``(K,)`` class probabilities; ``None`` for uniform.
        seed: seed of the random bases.
    """

    def __init__(
        self,
        n: int,
        K: int,
        d: int,
        delta: float,
        pi: Sequence[float] | torch.Tensor | None = None,
        seed: int = 0,
    ):
        n, K, d = check_count(n, "n"), check_count(K, "K"), check_count(d, "d")
        if n < K * d:
            raise ValueError(f"need n >= K * d for orthogonal classes, got n={n}, K*d={K * d}")
        U = random_orthonormal(n, K * d, seed)
        self._init_molrg([U[:, k * d : (k + 1) * d] for k in range(K)], delta, pi, None)

    def _init_molrg(self, class_bases, delta, pi, means) -> None:
        delta = float(delta)
        if not 0 < delta < 1:
            raise ValueError(f"delta must lie in (0, 1), got {delta}")
        self.delta = delta
        if len(class_bases) == 0:
            raise ValueError("bases is empty: need one (n, d_k) basis per class")
        U = [check_orthonormal(B, f"bases[{k}]") for k, B in enumerate(class_bases)]
        n = U[0].shape[0]
        if any(B.shape[0] != n for B in U):
            raise ValueError("all bases must have the same number of rows n")
        bases, variances = [], []
        for k, U_k in enumerate(U):
            others = torch.cat([U_l for l, U_l in enumerate(U) if l != k] or [U_k[:, :0]], dim=1)
            Ut_k = _extend_basis(U_k, others)[:, U_k.shape[1] :]
            bases.append(torch.cat([U_k, Ut_k], dim=1))
            variances.append(
                torch.cat(
                    [
                        torch.ones(U_k.shape[1], dtype=torch.float64),
                        torch.full((Ut_k.shape[1],), delta**2, dtype=torch.float64),
                    ]
                )
            )
        super().__init__(pi, means, bases, variances, class_bases=U)

    @classmethod
    def from_bases(
        cls,
        bases: Sequence[torch.Tensor],
        delta: float,
        pi: Sequence[float] | torch.Tensor | None = None,
        means: torch.Tensor | None = None,
    ) -> MoLRG:
        """MoLRG with given class bases ``U_k`` (``(n, d_k)``, orthonormal columns; ranks may
        differ and subspaces may overlap) and optional ``(K, n)`` class means."""
        self = cls.__new__(cls)
        self._init_molrg(list(bases), delta, pi, means)
        return self

    @classmethod
    def overlapping(
        cls,
        n: int,
        d: int,
        delta: float,
        angle_deg: float,
        pi: Sequence[float] | torch.Tensor | None = None,
        seed: int = 0,
    ) -> MoLRG:
        """Two classes whose ``d`` principal angles all equal ``angle_deg`` (90 = orthogonal).

        ``U_1 = cos(theta) U_0 + sin(theta) P`` with ``P`` orthonormal and orthogonal to ``U_0``.
        """
        if not 0 < angle_deg <= 90:
            raise ValueError(f"angle_deg must lie in (0, 90], got {angle_deg}")
        if n < 2 * d:
            raise ValueError(f"need n >= 2 d, got n={n}, d={d}")
        basis = random_orthonormal(n, 2 * d, seed)
        U0, P = basis[:, :d], basis[:, d:]
        theta = math.radians(angle_deg)
        U1 = math.cos(theta) * U0 + math.sin(theta) * P
        return cls.from_bases([U0, U1], delta, pi)

    @classmethod
    def separated(
        cls,
        n: int,
        K: int,
        d: int,
        delta: float,
        separation: float,
        pi: Sequence[float] | torch.Tensor | None = None,
        seed: int = 0,
    ) -> MoLRG:
        """Orthogonal MoLRG whose class means are ``separation`` times mutually orthogonal unit
        vectors, orthogonal to every class subspace (well-separated clusters, Table 7)."""
        if separation <= 0:
            raise ValueError(f"separation must be > 0, got {separation}")
        if n < K * (d + 1):
            raise ValueError(f"need n >= K (d + 1), got n={n}, K={K}, d={d}")
        basis = random_orthonormal(n, K * (d + 1), seed)
        bases = [basis[:, k * d : (k + 1) * d] for k in range(K)]
        means = separation * basis[:, K * d :].T
        return cls.from_bases(bases, delta, pi, means)

    @property
    def d(self) -> int | list[int]:
        """Class rank ``d`` (a list when ranks differ)."""
        ranks = self.class_ranks
        return ranks[0] if len(set(ranks)) == 1 else ranks

    @property
    def U(self) -> torch.Tensor:
        """``(n, sum_k d_k)`` concatenated class bases ``[U_1, ..., U_K]``."""
        return torch.cat(self.class_bases, dim=1)

    def __repr__(self) -> str:
        return (
            f"MoLRG(n={self.n}, K={self.K}, d={self.d}, delta={self.delta}, "
            f"pi={[round(p, 4) for p in self.pi.tolist()]}, m={self.m})"
        )


def random_orthonormal(n: int, r: int, seed: int) -> torch.Tensor:
    """``(n, r)`` orthonormal columns from the QR of a seeded Gaussian matrix (float64)."""
    g = torch.Generator().manual_seed(seed)
    return orthonormalize(torch.randn(n, r, generator=g, dtype=torch.float64))
