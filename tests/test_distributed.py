"""fit under torchrun: two CPU processes (gloo) train replicas that stay identical, and with a
loss that draws nothing they take the steps of one process on the whole batch."""

import subprocess
import sys
import textwrap

import pytest
import torch

from lowrank.train import fit

WORKER = textwrap.dedent(
    """
    import sys
    import torch
    import torch.distributed as dist
    from lowrank.train import fit

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

    losses = fit(model, loss_fn, x, 3, {"model": "mlp"}, lr=1e-2, batch_size=10,
                 generator=torch.Generator().manual_seed(1), checkpoint=out + ".pt",
                 progress=False)
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
                     x, 3, {"model": "mlp"}, lr=1e-2, batch_size=10,
                     generator=torch.Generator().manual_seed(1), progress=False)  # fmt: skip
        assert losses == pytest.approx(rank0["losses"], rel=1e-12)
        for name, value in model.state_dict().items():
            torch.testing.assert_close(value, rank0["state"][name], rtol=1e-10, atol=1e-12)
