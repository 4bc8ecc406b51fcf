"""The UNet wrapper: the VP/VE map, continuous timesteps, diffusers-format loading, training
with fit (bitwise resume) and features from its blocks."""

import math
import socket

import pytest
import torch

from lowrank.measure.features import features_across_sigma
from lowrank.nets.train import Optimization, fingerprint, fit
from lowrank.nets.unet import EDMUNetDenoiser, UNetDenoiser
from lowrank.theory.schedules import linear_alpha_bar, sigma_from_alpha_bar


def _tiny():
    torch.manual_seed(0)
    return UNetDenoiser.small(8, in_channels=1, channels=(8, 16))


def test_timesteps_follow_the_schedule_continuously():
    den = _tiny()
    sig = den.log_sigmas.exp()
    assert torch.allclose(den.timestep(sig[[0, 10, 999]]), torch.tensor([0.0, 10.0, 999.0]))
    # halfway in log sigma between steps 10 and 11 is timestep 10.5
    mid = (0.5 * (den.log_sigmas[10] + den.log_sigmas[11])).exp()
    assert den.timestep(mid[None]).item() == pytest.approx(10.5, abs=1e-5)
    # below the smallest level (about 0.010) the network gets t = 0, above the largest T - 1
    assert sig[0].item() == pytest.approx(math.sqrt(1e-4 / (1 - 1e-4)), rel=1e-9)
    assert den.timestep(torch.tensor([0.002, 1e3])).tolist() == [0.0, 999.0]
    assert den.below_schedule([0.002, 0.008, 0.023]).tolist() == [True, True, False]


def test_denoiser_is_tweedie_for_an_epsilon_predictor():
    den = _tiny().eval()
    x_t = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.05, 0.5, 2.0])
    s = sigma[:, None, None, None]
    with torch.no_grad():
        eps = den.unet(x_t / (1 + s**2).sqrt(), den.timestep(sigma)).sample
        torch.testing.assert_close(den(x_t, sigma), x_t - s * eps)
        # a float sigma is every row's
        torch.testing.assert_close(den(x_t, 0.5)[1], den(x_t, sigma)[1])
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        den(x_t, 0.0)


def test_save_and_load_in_diffusers_format(tmp_path):
    den = _tiny().eval()
    den.save_pretrained(tmp_path / "pipeline" / "unet")
    assert (tmp_path / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors").exists()
    x_t = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    for source in (tmp_path / "pipeline" / "unet", tmp_path / "pipeline"):
        loaded = UNetDenoiser.from_pretrained(source).eval()
        with torch.no_grad():
            assert torch.equal(loaded(x_t, 0.3), den(x_t, 0.3))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        UNetDenoiser.from_pretrained(tmp_path)
    with pytest.raises(TypeError, match="default schedule"):
        UNetDenoiser.from_pretrained(tmp_path / "pipeline", T=500)


def _train(tmp_path, epochs):
    den = _tiny()
    data = torch.randn(24, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    config = {"model": "tiny UNet (8, 16)", "data": fingerprint(data)}
    losses = fit(den, lambda m, b, g: m.loss(b, g), data, config,
                 Optimization(epochs, lr=1e-3, batch_size=8),
                 generator=torch.Generator().manual_seed(4), checkpoint=tmp_path / "unet.pt",
                 progress=None)  # fmt: skip
    return den, losses


def test_unet_training_resumes_bitwise(tmp_path):
    straight, straight_losses = (
        _train(tmp_path / "a", 3) if (tmp_path / "a").mkdir() is None else 0
    )
    (tmp_path / "b").mkdir()
    _train(tmp_path / "b", 1)
    resumed, losses = _train(tmp_path / "b", 3)
    assert losses == straight_losses
    for a, b in zip(resumed.state_dict().values(), straight.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_features_of_the_unet_blocks():
    den = _tiny()
    x0 = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    names = den.block_names()
    assert names == ["down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0", "up_blocks.1"]
    feats = features_across_sigma(den, names, x0, [0.01, 1.0], batch_size=2,
                                  progress=False)  # fmt: skip
    widths = [feats[n].shape for n in names]
    assert widths == [(2, 5, 8), (2, 5, 16), (2, 5, 16), (2, 5, 16), (2, 5, 8)], widths
    assert not torch.equal(feats["mid_block"][0], feats["mid_block"][1])


def test_the_network_its_noise_levels_and_its_input_shape():
    den = _tiny()
    sigma_min, sigma_max = den.sigma_range()
    schedule = sigma_from_alpha_bar(linear_alpha_bar(1000))
    assert sigma_min == pytest.approx(float(schedule[0]), rel=1e-12)
    assert sigma_max == pytest.approx(float(schedule[-1]), rel=1e-12)
    assert den.sample_shape() == (1, 8, 8) and den.network is den.unet


def _tiny_edm():
    torch.manual_seed(0)
    return EDMUNetDenoiser.small(8, in_channels=1, channels=(8, 16)).double().eval()


def test_edm_denoiser_is_the_preconditioned_network():
    den = _tiny_edm()
    x_t = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sigma = torch.tensor([0.002, 0.3, 5.0], dtype=torch.float64)
    s, sd = sigma[:, None, None, None], 0.5
    c_skip, c_out = sd**2 / (s**2 + sd**2), s * sd / (s**2 + sd**2).sqrt()
    c_in = 1 / (s**2 + sd**2).sqrt()
    with torch.no_grad():
        F = den.unet(c_in * x_t, (sigma.log() / 4).float()).sample
        torch.testing.assert_close(den(x_t, sigma), c_skip * x_t + c_out * F)
    # at sigma -> 0 the skip carries the input: the output is x_t up to O(sigma)
    with torch.no_grad():
        assert (den(x_t, 1e-6) - x_t).abs().max().item() < 1e-4
    assert den.below_schedule([0.002, 0.008]).tolist() == [False, False]
    assert den.log_sigmas.exp().tolist() == pytest.approx([0.002, 80.0])


def test_edm_loss_is_the_weighted_error_of_the_denoised_image():
    """EDM's loss: lambda(sigma) = (sigma^2 + sigma_d^2) / (sigma sigma_d)^2 times the squared
    error of x_hat, which the class computes as the plain error of F against its target."""
    den = _tiny_edm()
    x0 = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.1, 1.0, 10.0], dtype=torch.float64)
    loss = den.loss(x0, torch.Generator().manual_seed(3), sigma=sigma)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    s = sigma[:, None, None, None]
    weight = (s**2 + 0.25) / (s * 0.5) ** 2
    with torch.no_grad():
        expected = (weight * (den(x0 + s * eps, sigma) - x0).square()).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    # without levels: ln sigma ~ N(-1.2, 1.2^2), drawn from the generator
    levels = den._training_sigmas(200_000, torch.Generator().manual_seed(4)).log()
    assert levels.mean().item() == pytest.approx(-1.2, abs=0.01)
    assert levels.std().item() == pytest.approx(1.2, abs=0.01)


def test_no_loading_path_reaches_the_network_unless_the_hub_is_asked_for(tmp_path, monkeypatch):
    """With every connection refused: a name that is no folder fails at once, naming hub=True;
    a saved folder loads; only hub=True tries the network."""
    attempts = []

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise OSError("network attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(FileNotFoundError, match="pass hub=True"):
        UNetDenoiser.from_pretrained("ema")
    with pytest.raises(FileNotFoundError, match="pass hub=True"):
        UNetDenoiser.from_pretrained("google/ddpm-cifar10-32")
    den = _tiny()
    den.save_pretrained(tmp_path / "saved")
    UNetDenoiser.from_pretrained(tmp_path / "saved")
    assert attempts == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(OSError):
        UNetDenoiser.from_pretrained("google/ddpm-cifar10-32", hub=True)
