import pytest
import torch

from lowrank import LowRankDAE, MoLRG
from lowrank.metrics import block_angles
from lowrank.train import ddpm_training_sigmas, train_dae


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
    first = train_dae(dae, x0, epochs=3, lr=0.01, generator=gen, checkpoint=ckpt, progress=False)
    resumed = LowRankDAE(12, 2, 2, 0.2)  # weights, optimizer and generator come from the file
    losses = train_dae(resumed, x0, epochs=30, lr=0.01, generator=gen, checkpoint=ckpt,
                       progress=False)  # fmt: skip
    assert losses[:3] == first and len(losses) == 30
    assert start > 20 and worst_angle(resumed) < 5, (start, worst_angle(resumed))
    with pytest.raises(ValueError, match="x0"):
        train_dae(resumed, x0[:, :5], epochs=1)
