r"""Probing the learnable DAE's loss landscape at the configurations it gets stuck in.

Trained from a random start, the DAE of eq. 4 tends to end with its blocks holding *whole*
directions of several classes: the energy of class ``k`` in learned block ``l``,
:math:`\|U_k^{*\top} U_l\|_F^2`, is an integer ``counts[k][l]``. :func:`regroup_bases` builds
such a configuration from the true bases, and :func:`swap_path` rotates one direction of one
block into another block, so the loss can be read along the path that would undo one misplaced
direction: if it falls from the start, the configuration is a saddle; if it first rises, it is
a minimum along that path (a local minimum when no other path leads down).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lowrank._checks import check_orthonormal

__all__ = ["regroup_bases", "swap_path", "class_energy_in_blocks"]


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
