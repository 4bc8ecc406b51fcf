"""lowrank.nets.train: the loss, the DAE's training, resuming bitwise, distributed replicas."""

import copy
import subprocess
import sys
import textwrap

import pytest
import torch

from lowrank.measure.distances import block_angles
from lowrank.nets.train import (
    DAERecipe,
    Optimization,
    ddpm_training_sigmas,
    denoising_loss,
    fit,
    train_dae,
)
from lowrank.theory.denoisers import LowRankDAE
from lowrank.theory.landscape import regroup_bases
from lowrank.theory.mixtures import MoLRG


def _regression_run(tmp_path, epochs, checkpoint=True, ema_decay=0.9):
    """A small network fitted to a seeded regression with noise drawn in the loss, with EMA."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    ema = copy.deepcopy(net)
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(1))
    data = torch.cat([x, x.sum(1, keepdim=True).sin()], 1)

    def loss(model, batch, gen):
        jitter = 0.01 * torch.randn(batch.shape[0], 3, generator=gen)
        return (model(batch[:, :3] + jitter) - batch[:, 3:]).square().mean()

    optimization = Optimization(epochs, lr=1e-2, batch_size=16, ema_decay=ema_decay)
    losses = fit(net, loss, data, {"run": "regression"}, optimization,
                 generator=torch.Generator().manual_seed(2), ema=ema,
                 checkpoint=tmp_path / "fit.pt" if checkpoint else None,
                 progress=None)  # fmt: skip
    return net, ema, losses


WORKER = textwrap.dedent(
    """
    import sys
    import torch
    import torch.distributed as dist
    from lowrank.nets.train import Optimization, fit

    dist.init_process_group("gloo")
    out, noisy = sys.argv[1], sys.argv[2] == "noisy"
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    model = model.double()
    x = torch.linspace(-1, 1, 100, dtype=torch.float64).reshape(25, 4)

    def loss_fn(m, batch, gen):
        target = batch.sum(1, keepdim=True).sin()
        if noisy:
            batch = batch + 0.1 * torch.randn(batch.shape, generator=gen, dtype=batch.dtype)
        return (m(batch) - target).square().mean()

    losses = fit(model, loss_fn, x, {"model": "mlp"}, Optimization(3, lr=1e-2, batch_size=10),
                 generator=torch.Generator().manual_seed(1), checkpoint=out + ".pt",
                 progress=None)  # fmt: skip
    torch.save({"state": model.state_dict(), "losses": losses}, f"{out}.rank{dist.get_rank()}")
    dist.destroy_process_group()
    """
)


def _torchrun(tmp_path, mode):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / mode
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(script),
            str(out),
            mode,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(f"{out}.rank{r}", weights_only=True) for r in (0, 1)], out


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


def test_training_sigmas_match_the_ddpm_grid():
    sig = ddpm_training_sigmas(500, torch.float64)
    assert sig.shape == (500,) and sig[4].item() == pytest.approx(0.0300, abs=5e-5)
    assert torch.all(sig[1:] > sig[:-1])


def test_train_dae_learns_subspaces_and_resumes(tmp_path):
    """From 40-odd degrees off, training returns to the true subspaces (random starts can stall
    in block-mixed minima, which the MoLRG chapter documents); resuming continues the run."""
    mix = MoLRG(n=12, K=2, d=2, delta=0.2, seed=0)
    x0, _ = mix.sample(2000, torch.Generator().manual_seed(0), dtype=torch.float32)

    def worst_angle(dae):
        return block_angles(dae.U, mix.class_bases).max().item()

    dae = LowRankDAE.from_mixture(mix)
    with torch.no_grad():
        dae.raw_U.add_(
            0.2 * torch.randn(dae.raw_U.shape, generator=torch.Generator().manual_seed(1))
        )
    start = worst_angle(dae)
    ckpt = tmp_path / "dae.pt"
    gen = torch.Generator().manual_seed(2)
    first = train_dae(dae, x0, DAERecipe(3, lr=0.01), generator=gen, checkpoint=ckpt,
                      progress=False)  # fmt: skip
    resumed = LowRankDAE(12, 2, 2, 0.2)  # weights, optimizer and generator come from the file
    losses = train_dae(resumed, x0, DAERecipe(30, lr=0.01), generator=gen, checkpoint=ckpt,
                       progress=False)  # fmt: skip
    assert losses[:3] == first and len(losses) == 30
    assert start > 20 and worst_angle(resumed) < 5, (start, worst_angle(resumed))
    with pytest.raises(ValueError, match="x0"):
        train_dae(resumed, x0[:, :5], DAERecipe(1))


def test_fit_resumes_bitwise_with_ema(tmp_path):
    """An interrupted run, resumed, ends bitwise where the uninterrupted run ends: weights,
    EMA and loss history."""
    straight_net, straight_ema, straight_losses = _regression_run(tmp_path / "a", 6, False)
    (tmp_path / "b").mkdir()
    _regression_run(tmp_path / "b", 2)  # "interrupted" after 2 epochs
    net, ema, losses = _regression_run(tmp_path / "b", 6)  # fresh objects, resumed from file
    assert losses == straight_losses and straight_losses[-1] < 0.9 * straight_losses[0]
    for a, b in zip(net.state_dict().values(), straight_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(ema.state_dict().values(), straight_ema.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # the EMA lags the weights: after the last step it is neither the start nor the end
    w, w_ema = straight_net[0].weight, straight_ema[0].weight
    assert not torch.equal(w, w_ema) and (w - w_ema).abs().max() < 0.5
    # with decay 0 the average is the last step's weights
    net, ema, _ = _regression_run(tmp_path, 1, checkpoint=False, ema_decay=0.0)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), ema.parameters(), strict=True))


def test_fit_refuses_another_configuration(tmp_path):
    _regression_run(tmp_path, 1)
    net = torch.nn.Linear(3, 1)
    with pytest.raises(ValueError, match="run: checkpoint 'regression', this call 'other'"):
        fit(net, lambda m, b, g: m(b[:, :3]).mean(), torch.zeros(4, 4), {"run": "other"},
            Optimization(1, lr=1e-2, batch_size=16), checkpoint=tmp_path / "fit.pt",
            progress=None)  # fmt: skip


def test_fit_refuses_a_bool_for_the_progress_label():
    with pytest.raises(TypeError, match="progress must be a bar's label"):
        fit(torch.nn.Linear(2, 1), lambda m, b, g: m(b).mean(), torch.zeros(4, 2), {},
            Optimization(1), progress=False)  # fmt: skip


@pytest.mark.parametrize("mode", ["exact", "noisy"])
def test_two_gloo_ranks_keep_identical_replicas(tmp_path, mode):
    (rank0, rank1), out = _torchrun(tmp_path, mode)
    for name, value in rank0["state"].items():
        assert torch.equal(value, rank1["state"][name]), name
    assert rank0["losses"] == rank1["losses"] and len(rank0["losses"]) == 3
    # rank 0 wrote the checkpoint of the run
    saved = torch.load(f"{out}.pt", weights_only=True)
    assert saved["epoch"] == 3
    assert all(torch.equal(v, rank0["state"][k]) for k, v in saved["model"].items())
    if mode == "exact":  # no draws: the same steps as one process on whole batches
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        model = model.double()
        x = torch.linspace(-1, 1, 100, dtype=torch.float64).reshape(25, 4)
        losses = fit(model, lambda m, b, g: (m(b) - b.sum(1, keepdim=True).sin()).square().mean(),
                     x, {"model": "mlp"}, Optimization(3, lr=1e-2, batch_size=10),
                     generator=torch.Generator().manual_seed(1), progress=None)  # fmt: skip
        assert losses == pytest.approx(rank0["losses"], rel=1e-12)
        for name, value in model.state_dict().items():
            torch.testing.assert_close(value, rank0["state"][name], rtol=1e-10, atol=1e-12)
