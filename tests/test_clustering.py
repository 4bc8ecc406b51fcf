import pytest
import torch

from lowrank import LowRankDAE, MoLRG
from lowrank.clustering import k_subspaces
from lowrank.landscape import class_energy_in_blocks, regroup_bases, swap_path
from lowrank.metrics import block_angles
from lowrank.train import denoising_loss


@pytest.fixture
def molrg_data():
    mix = MoLRG(n=30, K=3, d=3, delta=0.2, seed=0)
    x, y = mix.sample(3000, torch.Generator().manual_seed(0))
    return mix, x, y


def test_k_subspaces_recovers_the_classes(molrg_data):
    mix, x, y = molrg_data
    fit = k_subspaces(x, 3, 3, restarts=10, generator=torch.Generator().manual_seed(1))
    assert block_angles(fit.U, mix.class_bases, match=True).max() < 3
    # the kept restart is the best one, and its objective is the mean residual energy
    assert fit.objective == pytest.approx(fit.restart_objectives.min().item())
    residual = x.square().sum(1) - torch.stack(
        [(x[i] @ fit.bases[k]).square().sum() for i, k in enumerate(fit.labels.tolist())]
    )
    assert fit.objective == pytest.approx(residual.mean().item(), rel=1e-10)
    # at the truth the residual is the off-class energy, delta^2 (K - 1) d on average
    assert fit.objective == pytest.approx(0.04 * 6, rel=0.05)
    # up to a relabelling, the clusters are the assignments by the true subspaces (which miss
    # a few samples that hold more energy in another class's subspace)
    by_truth = torch.stack([(x @ B).square().sum(1) for B in mix.class_bases], 1).argmax(1)
    perms = ([0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0])
    agree = max((fit.labels == torch.tensor(p)[by_truth]).double().mean() for p in perms)
    accuracy = max((fit.labels == torch.tensor(p)[y]).double().mean() for p in perms)
    assert agree > 0.995 and accuracy > 0.97, (agree, accuracy)
    assert fit.U.shape == (30, 9) and fit.U.dtype == x.dtype


def test_k_subspaces_rejects_bad_input_and_reports_failure():
    with pytest.raises(ValueError, match="shape"):
        k_subspaces(torch.zeros(10), 2, 2)
    with pytest.raises(ValueError, match="K \\* d <= n"):
        k_subspaces(torch.randn(50, 5), 2, 3)
    with pytest.raises(ValueError, match="restarts"):
        k_subspaces(torch.randn(50, 6), 2, 2, restarts=0)
    with pytest.raises(ValueError, match="samples"):
        k_subspaces(torch.randn(3, 6), 2, 2)
    # identical rows all join one cluster, the other is left empty in every restart
    with pytest.raises(RuntimeError, match="fewer than d samples"):
        k_subspaces(torch.ones(20, 6), 2, 2, restarts=3)


def test_from_bases_starts_the_dae_at_the_given_blocks(molrg_data):
    mix = molrg_data[0]
    torch.testing.assert_close(
        LowRankDAE.from_bases(mix.class_bases, 0.2, torch.float64).U, mix.U, atol=1e-12, rtol=0
    )
    # separately estimated, nearly orthogonal blocks are orthogonalized, barely moved
    tilted = mix.class_bases[1] + 0.01 * mix.class_bases[0]
    tilted = torch.linalg.qr(tilted).Q
    dae = LowRankDAE.from_bases([mix.class_bases[0], tilted, mix.class_bases[2]], 0.2)
    U = dae.U.double()
    torch.testing.assert_close(U.T @ U, torch.eye(9).double(), atol=1e-6, rtol=0)
    assert block_angles(U, mix.class_bases).max() < 1
    with pytest.raises(ValueError, match="orthonormal"):
        LowRankDAE.from_bases([2 * B for B in mix.class_bases], 0.2)
    with pytest.raises(ValueError, match="overlap"):
        LowRankDAE.from_bases([mix.class_bases[0], mix.class_bases[0]], 0.2)
    with pytest.raises(ValueError, match="one shape"):
        LowRankDAE.from_bases([mix.class_bases[0], mix.class_bases[1][:, :2]], 0.2)


def test_block_angles_with_matching_ignore_block_order(molrg_data):
    mix = molrg_data[0]
    shuffled = torch.cat([mix.class_bases[2], mix.class_bases[0], mix.class_bases[1]], 1)
    assert block_angles(shuffled, mix.class_bases).min() == pytest.approx(90)
    torch.testing.assert_close(
        block_angles(shuffled, mix.class_bases, match=True), torch.zeros(3).double(),
        atol=1e-5, rtol=0,
    )  # fmt: skip


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


def test_denoising_loss_is_the_mean_squared_error_and_lowest_at_the_truth(molrg_data):
    mix, x, _ = molrg_data
    gen = torch.Generator().manual_seed(3)
    sigma = torch.rand(x.shape[0], generator=gen, dtype=torch.float64) + 0.1
    noise = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    truth = LowRankDAE.from_mixture(mix, torch.float64)
    by_hand = ((truth(x + sigma[:, None] * noise, sigma) - x) ** 2).sum(1).mean()
    assert denoising_loss(truth, x, sigma, noise).item() == pytest.approx(by_hand.item())
    mixed = LowRankDAE.from_bases(
        regroup_bases(mix.class_bases, [[2, 1, 0], [1, 1, 1], [0, 1, 2]]), 0.2, torch.float64
    )
    assert denoising_loss(mixed, x, sigma, noise) > denoising_loss(truth, x, sigma, noise)
    with pytest.raises(ValueError, match="noise"):
        denoising_loss(truth, x, sigma, noise[:, :3])
