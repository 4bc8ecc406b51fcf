r"""Probing the learnable DAE's loss landscape at the configurations it gets stuck in.

Trained from a random start, the DAE of eq. 4 tends to end with its blocks holding *whole*
directions of several classes: the energy of class ``k`` in learned block ``l``,
:math:`\|U_k^{*\top} U_l\|_F^2`, is an integer ``counts[k][l]``. :func:`regroup_bases` builds
such a configuration from the true bases, and :func:`swap_path` rotates one direction of one
block into another block, so the loss can be read along the path that would undo one misplaced
direction: if it falls from the start, the configuration is a saddle; if it first rises, it is
a minimum along that path (a local minimum when no other path leads down).

:func:`exchange_curvature` looks in every direction of that kind at once: the Hessian of the
denoising loss over all rotations that exchange a direction of one block with a direction of
another, :math:`U(\theta) = \exp(\sum_p \theta_p (u_{j_p} u_{i_p}^\top - u_{i_p}
u_{j_p}^\top)) U` (rotations within a block, and of the space outside ``U``, leave the loss
unchanged and are left out, as are rotations out of span ``U``, which do change it). A clearly
negative eigenvalue is a way down, so the configuration is a saddle; positive ones say only
that no exchange leads down, not that the point is a local minimum. The size of the lowest is
checked on a second, independent sample (the lowest eigenvalue of a noisy Hessian is biased
down), by the curvature of the first sample's lowest eigenvector there. (``U0 exp(G)`` turns
column ``i`` toward ``-u_j``; the curvatures do not depend on the sign.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lowrank._checks import check_orthonormal
from lowrank.theory.denoisers import LowRankDAE

__all__ = [
    "regroup_bases",
    "swap_path",
    "class_energy_in_blocks",
    "ExchangeCurvature",
    "exchange_curvature",
]


def class_energy_in_blocks(U: torch.Tensor, class_bases: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(K, K)`` energy of class ``k`` in block ``l``: :math:`\\|U_k^{*\\top} U_l\\|_F^2`.

    ``U`` is ``(n, K d)`` with blocks of ``d`` columns; a row sums to ``d`` when the learned span
    holds class ``k``, a column sums to ``d`` when block ``l`` lies in the union of the classes.
    """
    K = len(class_bases)
    if U.ndim != 2 or U.shape[1] % K:
        raise ValueError(f"U must have shape (n, K d) with K = {K}, got {tuple(U.shape)}")
    blocks = torch.split(U.detach().double(), U.shape[1] // K, dim=1)
    return torch.stack(
        [torch.stack([(B.double().T @ b).square().sum() for b in blocks]) for B in class_bases]
    )


def regroup_bases(
    class_bases: Sequence[torch.Tensor], counts: Sequence[Sequence[int]]
) -> list[torch.Tensor]:
    """Blocks made of whole class directions: block ``l`` takes ``counts[k][l]`` columns of
    class ``k``'s basis, classes in order, each column used once.

    Arguments:
        class_bases: ``K`` orthonormal ``(n, d)`` bases.
        counts: ``K x K`` non-negative integers; row ``k`` sums to ``d`` (every direction of
            class ``k`` is used), column ``l`` sums to ``d`` (every block has rank ``d``).
    """
    bases = [check_orthonormal(B, f"class_bases[{k}]") for k, B in enumerate(class_bases)]
    K, d = len(bases), bases[0].shape[1]
    table = torch.as_tensor(counts)
    if table.shape != (K, K) or bool((table < 0).any()):
        raise ValueError(f"counts must be a {K} x {K} table of non-negative integers")
    if (
        any(B.shape[1] != d for B in bases)
        or bool((table.sum(0) != d).any())
        or bool((table.sum(1) != d).any())
    ):
        raise ValueError(f"every class rank, row sum and column sum of counts must equal {d}")
    taken = [0] * K
    blocks = []
    for l in range(K):
        columns = []
        for k in range(K):
            c = int(table[k, l])
            columns.append(bases[k][:, taken[k] : taken[k] + c])
            taken[k] += c
        blocks.append(torch.cat(columns, dim=1))
    return blocks


def swap_path(
    blocks: Sequence[torch.Tensor],
    first: tuple[int, int],
    second: tuple[int, int],
    angles_deg: Sequence[float],
) -> list[list[torch.Tensor]]:
    """Configurations along the rotation of column ``first = (block, column)`` into
    ``second = (block, column)``: at angle ``theta`` the two columns become
    ``cos(theta) u + sin(theta) v`` and ``-sin(theta) u + cos(theta) v``, so at 90 degrees they
    have traded blocks (up to sign) and the whole ``U`` stays orthonormal all along."""
    if first[0] == second[0]:
        raise ValueError("the two columns must lie in different blocks")
    path = []
    for angle in angles_deg:
        theta = math.radians(angle)
        new = [B.clone() for B in blocks]
        u, v = blocks[first[0]][:, first[1]], blocks[second[0]][:, second[1]]
        new[first[0]][:, first[1]] = math.cos(theta) * u + math.sin(theta) * v
        new[second[0]][:, second[1]] = -math.sin(theta) * u + math.cos(theta) * v
        path.append(new)
    return path


# Rows per Hessian chunk: the vectorized Hessian holds about P = 75 copies of a chunk's tensors.
_CHUNK = 10_000


@dataclass(frozen=True)
class ExchangeCurvature:
    """Result of :func:`exchange_curvature`.

    Attributes:
        pairs: the ``P`` pairs ``(i, j)`` of columns of ``U`` in different blocks, ``i < j``;
            rotation ``p`` turns column ``i`` toward column ``j``.
        hessian: ``(P, P)`` the Hessian on the first sample.
        eigenvalues: ``(P,)`` its eigenvalues, ascending.
        held_out: the curvature along the first sample's lowest eigenvector on the second
            sample, the mean of its rows' curvatures; held_out_stderr: the standard error of
            that mean. Clearly negative: a way down that is not sampling noise.
    """

    pairs: list[tuple[int, int]]
    hessian: torch.Tensor
    eigenvalues: torch.Tensor
    held_out: float
    held_out_stderr: float


def exchange_curvature(
    blocks: Sequence[torch.Tensor],
    delta: float,
    first: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    second: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> ExchangeCurvature:
    r"""The Hessian of the DAE's denoising loss :math:`E\|x_\theta(x_0 + \sigma \epsilon) -
    x_0\|^2` at ``blocks`` (``K`` orthonormal ``(n, d)`` blocks, mutually orthogonal) over the
    rotations that exchange directions between blocks (see the module docstring), on two
    samples ``(x0 (N, n), sigma (N,), eps (N, n))``; float64."""
    U0 = torch.cat([check_orthonormal(B, f"blocks[{k}]") for k, B in enumerate(blocks)], 1)
    # the rotations are of U0 itself: blocks that overlap would be re-orthogonalized unseen
    U0 = check_orthonormal(U0.to(torch.float64), "the blocks side by side")
    d, m = blocks[0].shape[1], U0.shape[1]
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m) if i // d != j // d]
    rows, cols = torch.tensor(pairs).T
    dae = LowRankDAE.from_bases(list(blocks), delta, torch.float64)

    def row_losses(theta: torch.Tensor, x0, sigma, eps) -> torch.Tensor:
        """``(N,)`` losses of the rows at the exchange rotation ``theta``."""
        generator = torch.zeros(m, m, dtype=torch.float64)
        generator = generator.index_put((rows, cols), theta).index_put((cols, rows), -theta)
        U = U0 @ torch.matrix_exp(generator)  # rotates the columns within span U
        x_hat = torch.func.functional_call(dae, {"raw_U": U}, (x0 + sigma[:, None] * eps, sigma))
        return (x_hat - x0).square().sum(1)

    def chunks(sample):
        # rows in chunks, so that memory stays bounded at any sample size
        x0, sigma, eps = (t.to(torch.float64) for t in sample)
        return zip(x0.split(_CHUNK), sigma.split(_CHUNK), eps.split(_CHUNK), strict=True)

    theta = torch.zeros(len(pairs), dtype=torch.float64)
    H = sum(
        torch.autograd.functional.hessian(
            lambda t, c=chunk: row_losses(t, *c).sum(), theta, vectorize=True
        )
        for chunk in chunks(first)
    ) / len(first[0])
    values, vectors = torch.linalg.eigh((H + H.T) / 2)
    lowest = vectors[:, 0]
    # each held-out row's second derivative along the lowest direction (forward mode, exact)
    along = torch.func.jacfwd(torch.func.jacfwd(lambda t, c: row_losses(t * lowest, *c)))
    per_row = torch.cat([along(torch.zeros((), dtype=torch.float64), c) for c in chunks(second)])
    stderr = (per_row.std() / len(per_row) ** 0.5).item()
    return ExchangeCurvature(pairs, (H + H.T) / 2, values, per_row.mean().item(), stderr)
