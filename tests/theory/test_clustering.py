"""lowrank.theory.clustering: K-subspaces recovers the classes of a MoLRG."""

import math

import pytest
import torch

from lowrank.measure.distances import block_angles
from lowrank.theory.clustering import k_subspaces


def test_k_subspaces_recovers_the_classes(molrg_data):
    mix, x, y = molrg_data
    fit = k_subspaces(x, 3, 3, restarts=10, generator=torch.Generator().manual_seed(1))
    # A class's d = 3 principal directions, estimated from N_k = 1000 samples, tilt towards its
    # (K - 1) d = 6 off-class directions (variance delta^2 against 1) by independent angles of
    # standard deviation s = delta / ((1 - delta^2) sqrt(N_k)) radians; the largest principal
    # angle is the top singular value of that 3 x 6 matrix, about (sqrt 3 + sqrt 6) s = 1.6
    # degrees (measured 1.4-1.9 over seeds). Twice that leaves room for misassigned samples.
    s = 0.2 / ((1 - 0.2**2) * math.sqrt(1000))
    expected = math.degrees((math.sqrt(3) + math.sqrt(6)) * s)
    assert block_angles(fit.U, mix.class_bases, match=True).max() < 2 * expected
    # the kept restart is the best one, and its objective is the mean residual energy
    assert fit.objective == pytest.approx(fit.restart_objectives.min().item())
    residual = x.square().sum(1) - torch.stack(
        [(x[i] @ fit.bases[k]).square().sum() for i, k in enumerate(fit.labels.tolist())]
    )
    assert fit.objective == pytest.approx(residual.mean().item(), rel=1e-10)
    # at the truth the residual is the off-class energy, delta^2 (K - 1) d = 0.24 on average:
    # delta^2 chi^2_6 per sample, standard error 0.04 sqrt(12 / 3000) = 0.0025 (1%); 5% is 5 of
    # them, and a wrong subspace costs far more (0.57 for the stuck restart of seed 2)
    assert fit.objective == pytest.approx(0.04 * 6, rel=0.05)
    # up to a relabelling, the clusters are the assignments by the true subspaces (which miss
    # a few samples that hold more energy in another class's subspace)
    by_truth = torch.stack([(x @ B).square().sum(1) for B in mix.class_bases], 1).argmax(1)
    perms = ([0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0])
    agree = max((fit.labels == torch.tensor(p)[by_truth]).double().mean() for p in perms)
    # Subspaces about 1.6 degrees off move only the samples within a few percent of a decision
    # boundary: measured agreement 0.998-1.0 over seeds. (It bounds the accuracy against the
    # labels too: within 1 - agree of the true-subspace assignment's 0.984.)
    assert agree > 0.995, agree
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
