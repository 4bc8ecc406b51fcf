"""lowrank.theory.landscape: regrouped blocks and swap paths of the DAE's loss landscape."""

import math

import pytest
import torch

from lowrank.nets.train import ddpm_training_sigmas
from lowrank.theory.denoisers import LowRankDAE
from lowrank.theory.landscape import (
    class_energy_in_blocks,
    exchange_curvature,
    regroup_bases,
    swap_path,
)
from lowrank.theory.mixtures import MoLRG


def _losses_along(counts, first, second, angles, num_samples=50_000):
    """Per-sample training losses ``(len(angles), N)`` along a swap path of the regrouped
    truth of the MoLRG chapter (n=50, K=3, d=5, delta=0.2), on common samples and noise."""
    mix = MoLRG(n=50, K=3, d=5, delta=0.2, seed=0)
    gen = torch.Generator().manual_seed(3)
    x0, _ = mix.sample(num_samples, gen)
    sigma = ddpm_training_sigmas(dtype=torch.float64)[torch.randint(0, 500, (num_samples,),
                                                                     generator=gen)]  # fmt: skip
    eps = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    x_t = x0 + sigma[:, None] * eps
    rows = []
    for bases in swap_path(regroup_bases(mix.class_bases, counts), first, second, angles):
        model = LowRankDAE.from_bases(bases, 0.2, torch.float64)
        with torch.no_grad():
            rows.append((model(x_t, sigma) - x0).square().sum(1))
    return torch.stack(rows)


def test_regrouped_blocks_have_the_asked_energies_and_swaps_trade_one_direction(molrg_data):
    mix = molrg_data[0]
    counts = [[1, 1, 1], [2, 1, 0], [0, 1, 2]]
    blocks = regroup_bases(mix.class_bases, counts)
    U = torch.cat(blocks, 1)
    torch.testing.assert_close(U.T @ U, torch.eye(9).double(), atol=1e-12, rtol=0)
    torch.testing.assert_close(
        class_energy_in_blocks(U, mix.class_bases), torch.tensor(counts).double()
    )
    # block 0 is [class 0, class 1, class 1] and block 2 is [class 0, class 2, class 2]:
    # trade block 0's class-0 column 0 with block 2's class-2 column 1
    start, half, end = swap_path(blocks, (0, 0), (2, 1), [0, 45, 90])
    torch.testing.assert_close(torch.cat(start, 1), U)
    for config in (half, end):
        V = torch.cat(config, 1)
        torch.testing.assert_close(V.T @ V, torch.eye(9).double(), atol=1e-12, rtol=0)
    moved = class_energy_in_blocks(torch.cat(end, 1), mix.class_bases)
    expected = torch.tensor(counts).double()
    expected[0, 0] -= 1  # the class-0 column left block 0 for block 2
    expected[0, 2] += 1
    expected[2, 2] -= 1  # and a class-2 column came the other way
    expected[2, 0] += 1
    torch.testing.assert_close(moved, expected, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="row sum"):
        regroup_bases(mix.class_bases, [[3, 0, 0], [0, 3, 0], [0, 0, 2]])
    with pytest.raises(ValueError, match="different blocks"):
        swap_path(blocks, (0, 0), (0, 1), [10])


def test_swap_paths_separate_a_saddle_from_a_minimum():
    """The MoLRG chapter's two stalled configurations: from [[2,1,2],[1,4,0],[2,0,3]] the
    loss is flat at first and then falls (a saddle); from [[3,0,2],[0,5,0],[2,0,3]] it first
    rises, a barrier of about 0.0025, before falling (a minimum along that path). Differences
    are judged against their standard errors over the common samples."""
    angles = [0.0, 7.5, 22.5, 90.0]

    def change(losses, i):
        diff = losses[i] - losses[0]
        return diff.mean().item(), diff.std().item() / math.sqrt(diff.numel())

    saddle = _losses_along([[2, 1, 2], [1, 4, 0], [2, 0, 3]], (1, 0), (0, 2), angles)
    step, step_se = change(saddle, 1)
    assert abs(step) < 3 * step_se  # flat at first (the chapter: +0.00003 at 200k draws)
    down, down_se = change(saddle, 2)
    assert down < -3 * down_se  # and already falling at 22.5 degrees: no barrier
    end, end_se = change(saddle, 3)
    assert end < -20 * end_se  # measured -0.077 +- 0.002
    minimum = _losses_along([[3, 0, 2], [0, 5, 0], [2, 0, 3]], (0, 3), (2, 0), angles)
    barrier, barrier_se = change(minimum, 2)
    assert barrier > 3 * barrier_se, (barrier, barrier_se)  # measured 0.0028 +- 0.0007
    assert abs(barrier - 0.0025) < 3 * barrier_se  # the chapter's value at 200k draws
    end, end_se = change(minimum, 3)
    assert end < -20 * end_se  # measured -0.050 +- 0.002


def _sample(mix, N, gen):
    x0, _ = mix.sample(N, gen)
    sigma = ddpm_training_sigmas(dtype=torch.float64)[torch.randint(0, 500, (N,), generator=gen)]
    return x0, sigma, torch.randn(x0.shape, generator=gen, dtype=torch.float64)


def test_exchange_curvature_is_the_second_derivative_along_a_swap_path():
    """The Hessian's diagonal entry of one exchange equals the finite-difference curvature of
    the loss along the swap path of the same two columns, by a rotation of +-0.02 degrees (the
    quotient converged: 0.0527, 0.0594, 0.0607, 0.06105, 0.061068 at 2, 1, 0.5, 0.1, 0.02
    degrees, against 0.0610684 from the Hessian)."""
    mix = MoLRG(n=8, K=2, d=2, delta=0.3, seed=1)
    gen = torch.Generator().manual_seed(4)
    first, second = _sample(mix, 3000, gen), _sample(mix, 3000, gen)
    blocks = regroup_bases(mix.class_bases, [[1, 1], [1, 1]])  # each block holds both classes
    result = exchange_curvature(blocks, 0.3, first, second)
    assert result.pairs == [(0, 2), (0, 3), (1, 2), (1, 3)]
    x0, sigma, eps = first
    losses = []
    for bases in swap_path(blocks, (0, 0), (1, 0), [-0.02, 0.0, 0.02]):
        model = LowRankDAE.from_bases(bases, 0.3, torch.float64)
        with torch.no_grad():
            losses.append((model(x0 + sigma[:, None] * eps, sigma) - x0).square().sum(1).mean())
    curvature = (losses[0] + losses[2] - 2 * losses[1]) / math.radians(0.02) ** 2
    assert result.hessian[0, 0].item() == pytest.approx(curvature.item(), rel=1e-4)
    assert torch.allclose(result.eigenvalues, torch.linalg.eigvalsh(result.hessian))


def test_at_the_truth_every_exchange_costs():
    """Blocks equal to the classes: moving any direction to another block mixes classes, so
    every exchange curvature is positive, on both samples."""
    mix = MoLRG(n=8, K=2, d=2, delta=0.3, seed=1)
    gen = torch.Generator().manual_seed(5)
    result = exchange_curvature(
        mix.class_bases, 0.3, _sample(mix, 4000, gen), _sample(mix, 4000, gen)
    )
    assert result.eigenvalues[0] > 0 and result.held_out > 3 * result.held_out_stderr


def test_the_held_out_curvature_is_the_second_samples_own_quadratic_form():
    """Evaluated on the sample it was fitted on, the held-out curvature is the lowest eigenvalue
    itself (v^T H v = lambda for the unit eigenvector v), up to float64 rounding."""
    mix = MoLRG(n=8, K=2, d=2, delta=0.3, seed=1)
    sample = _sample(mix, 2000, torch.Generator().manual_seed(6))
    blocks = regroup_bases(mix.class_bases, [[1, 1], [1, 1]])
    result = exchange_curvature(blocks, 0.3, sample, sample)
    assert result.held_out == pytest.approx(result.eigenvalues[0].item(), rel=1e-9, abs=1e-12)
    assert result.held_out_stderr > 0


def test_overlapping_blocks_are_refused_before_any_hessian():
    mix = MoLRG(n=8, K=2, d=2, delta=0.3, seed=1)
    tilted = [mix.class_bases[0], torch.linalg.qr(mix.class_bases[0] + mix.class_bases[1]).Q]
    sample = _sample(mix, 10, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="the blocks side by side"):
        exchange_curvature(tilted, 0.3, sample, sample)
