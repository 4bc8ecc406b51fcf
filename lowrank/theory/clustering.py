r"""K-subspaces clustering: a label-free starting point for the learnable DAE.

Trained from a random orthonormal ``U`` with the paper's recipe, the DAE of eq. 4 finds the
union of the class subspaces but often settles with each block holding whole directions of
several classes (see the MoLRG chapter); those configurations are stationary points of its
loss, some of them local minima. K-subspaces (k-plane clustering,
Bradley and Mangasarian 2000) fits the same union-of-subspaces model by alternating

1. assign every sample to the subspace that holds most of its energy,
   :math:`k(x) = \arg\max_k \|V_k^\top x\|^2`;
2. refit each :math:`V_k` as the top-:math:`d` eigenvectors of its samples' second moment,

which never increases the objective, the mean residual energy
:math:`\frac1N \sum_i \|x_i\|^2 - \|V_{k(x_i)}^\top x_i\|^2`. It has spurious fixed points of
its own, so it is restarted from several random orthonormal bases and the restart with the
lowest objective is kept. No labels are used: the choice is made on the training samples alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.std import tqdm  # tqdm.auto warns in Jupyter kernels without ipywidgets

__all__ = ["KSubspaces", "k_subspaces"]


@dataclass(frozen=True)
class KSubspaces:
    """Result of :func:`k_subspaces`.

    Attributes:
        bases: ``K`` orthonormal ``(n, d)`` bases, in the input's dtype.
        labels: ``(N,)`` cluster of every sample under ``bases``.
        objective: mean residual energy of the kept restart.
        restart_objectives: ``(restarts,)`` objective reached by every restart (``inf`` where
            a cluster ran out of samples).
    """

    bases: list[torch.Tensor]
    labels: torch.Tensor
    objective: float
    restart_objectives: torch.Tensor

    @property
    def U(self) -> torch.Tensor:
        """``(n, K d)`` the bases side by side, the layout of :class:`LowRankDAE`'s ``U``."""
        return torch.cat(self.bases, dim=1)


def _energies(x: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """``(N, K)`` energy ``||V_k^T x||^2`` of every sample in every subspace; V is (n, K, d)."""
    return torch.einsum("bn,nkd->bkd", x, V).square().sum(-1)


def _one_restart(x: torch.Tensor, V: torch.Tensor, iterations: int):
    """Alternate assignment and refit from ``V``: ``(V, labels, energy of each sample in its
    subspace)``, or ``None`` when a cluster falls below ``d`` samples."""
    K, d = V.shape[1], V.shape[2]
    labels = _energies(x, V).argmax(1)
    for _ in range(iterations):
        refit = []
        for k in range(K):
            members = x[labels == k]
            if members.shape[0] < d:
                return None
            refit.append(torch.linalg.eigh(members.T @ members).eigenvectors[:, -d:])
        V = torch.stack(refit, dim=1)
        kept, new_labels = _energies(x, V).max(1)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
    return V, labels, kept


def k_subspaces(
    x: torch.Tensor,
    K: int,
    d: int,
    restarts: int = 10,
    iterations: int = 100,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> KSubspaces:
    """Fit ``K`` linear subspaces of dimension ``d`` to the rows of ``x`` (best of ``restarts``).

    Arguments:
        x: ``(N, n)`` samples (zero-mean classes: the subspaces pass through the origin).
        K, d: number of subspaces and their dimension (``K d <= n``).
        restarts: random orthonormal starts; the lowest objective is kept.
        iterations: most assignment/refit rounds per restart (it stops when labels settle).
        generator: seeds the starts (CPU).
        progress: show a progress bar over restarts.

    Raises:
        ValueError: bad shapes or counts. RuntimeError: every restart lost a cluster.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not torch.is_floating_point(x):
        raise ValueError("x must be a floating-point tensor of shape (N, n)")
    N, n = x.shape
    if K < 1 or d < 1 or K * d > n:
        raise ValueError(f"need K >= 1, d >= 1 and K * d <= n = {n}, got K={K}, d={d}")
    if N < K * d:
        raise ValueError(f"need at least K * d = {K * d} samples, got {N}")
    if restarts < 1 or iterations < 1:
        raise ValueError("restarts and iterations must be >= 1")
    generator = generator or torch.Generator().manual_seed(0)
    squared_norms = x.square().sum(1)
    best = None
    objectives = torch.full((restarts,), float("inf"), dtype=torch.float64)
    for r in tqdm(range(restarts), desc="K-subspaces restarts", disable=not progress):
        start = torch.randn(n, K * d, generator=generator, dtype=torch.float64)
        V0 = torch.linalg.qr(start).Q.to(x.dtype).view(n, K, d)
        fitted = _one_restart(x, V0, iterations)
        if fitted is None:
            continue
        V, labels, kept = fitted
        objectives[r] = (squared_norms - kept).mean().item()
        if best is None or objectives[r] < best[0]:
            best = (objectives[r].item(), V, labels)
    if best is None:
        raise RuntimeError(
            "every K-subspaces restart left a cluster with fewer than d samples; "
            "check K and d against the data, or use more samples"
        )
    objective, V, labels = best
    return KSubspaces([V[:, k, :] for k in range(K)], labels, objective, objectives)
