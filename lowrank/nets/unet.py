r"""The real-data backbone: diffusers' ``UNet2DModel`` as a denoiser in the book's convention.

A DDPM network predicts the noise :math:`\epsilon` of a variance-preserving input
:math:`x_{vp} = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon` at timestep ``t``. The
book writes :math:`x_t = x_0 + \sigma \epsilon` (the theory's VE form) with
:math:`\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}`, so

.. math:: x_{vp} = x_t / \sqrt{1 + \sigma^2},\qquad
          \hat x_0 = x_t - \sigma\, \epsilon_\theta(x_{vp}, t(\sigma)),

the second line being Tweedie's formula for an epsilon-predictor. :class:`UNetDenoiser` holds this
map once: ``den(x_t, sigma) -> x_hat`` for any ``sigma``, with a continuous timestep
:math:`t(\sigma)` interpolated in :math:`\log\sigma` between the schedule's steps (the sinusoidal
time embedding of ``UNet2DModel`` accepts fractional timesteps). The paper's probing grid starts at
:math:`\sigma = 0.002`, below the smallest level of a linear ``T = 1000`` schedule
(:math:`\sigma_0 \approx 0.010`): there the network gets its ``t = 0`` conditioning, and
:meth:`UNetDenoiser.below_schedule` says which levels that concerns.

:class:`EDMUNetDenoiser` is the same network in the EDM parameterization of the paper's own
models (Karras et al. 2022): preconditioned, trained on a log-normal continuum of levels, so it
has no level below its schedule.

The same class loads a checkpoint in diffusers' ``save_pretrained`` format (a local folder, or a
hub id such as ``google/ddpm-cifar10-32`` where the internet is reachable) and trains a small
network from scratch with :func:`lowrank.nets.train.fit` and :meth:`UNetDenoiser.loss`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lowrank._checks import check_count, row_sigma
from lowrank.theory.schedules import linear_alpha_bar, sigma_from_alpha_bar

__all__ = ["UNetDenoiser", "EDMUNetDenoiser"]


def _unet2d():
    """diffusers' ``UNet2DModel``, imported on first use (diffusers takes seconds to import).
    diffusers imports ``tqdm.auto``, which warns in a Jupyter kernel without ipywidgets: that
    warning would land on every page that builds a network."""
    import warnings  # deferred with diffusers, see the docstring

    from tqdm import TqdmWarning  # deferred with diffusers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        from diffusers import UNet2DModel  # deferred: seconds to import
    return UNet2DModel


class UNetDenoiser(nn.Module):
    r"""An epsilon-prediction ``UNet2DModel`` as ``den(x_t, sigma) -> x_hat`` with
    ``x_t = x_0 + sigma * eps``.

    Arguments:
        unet: a diffusers ``UNet2DModel`` trained (or to be trained) on VP inputs.
        T, beta_start, beta_end: its linear DDPM schedule (diffusers' DDPM defaults).

    Calls (``x_t``: ``(B, C, H, W)``; ``sigma``: float or ``(B,)``):
        ``den(x_t, sigma)`` -> ``(B, C, H, W)`` posterior-mean estimate ``x_hat``.
    """

    def __init__(self, unet: nn.Module, T: int = 1000, beta_start=1e-4, beta_end=0.02):
        super().__init__()
        self.unet = unet
        self.T = check_count(T, "T", minimum=2)
        self.beta_start, self.beta_end = float(beta_start), float(beta_end)
        alpha_bar = linear_alpha_bar(self.T, beta_start, beta_end)
        self.register_buffer("log_sigmas", sigma_from_alpha_bar(alpha_bar).log(), persistent=False)

    def schedule(self) -> dict:
        """The noise schedule's settings, which the weights files do not hold (the model cache
        records them: a network trained under other settings is refused)."""
        return {"T": self.T, "beta_start": self.beta_start, "beta_end": self.beta_end}

    @classmethod
    def small(
        cls,
        sample_size: int,
        in_channels: int = 1,
        channels: tuple[int, ...] = (32, 64),
        layers_per_block: int = 1,
        **schedule,
    ):
        """A freshly initialized ``UNet2DModel`` of the given widths (one down and one up block
        per width, no attention), seeded by the global torch seed; ``schedule``: the class's
        own arguments (``T`` here)."""
        UNet2DModel = _unet2d()

        groups = min(8, channels[0])
        unet = UNet2DModel(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=in_channels,
            block_out_channels=tuple(channels),
            layers_per_block=layers_per_block,
            down_block_types=("DownBlock2D",) * len(channels),
            up_block_types=("UpBlock2D",) * len(channels),
            norm_num_groups=groups,
        )
        return cls(unet, **schedule)

    @classmethod
    def from_pretrained(cls, source: str | Path, *, hub: bool = False, **kwargs):
        """Load a ``UNet2DModel`` saved with ``save_pretrained``: a local folder (its ``unet``
        subfolder for a whole pipeline), read with ``local_files_only`` so nothing goes to the
        network; a hub id (``"google/ddpm-cifar10-32"``) only with ``hub=True``, which needs the
        internet. ``kwargs`` go to diffusers' ``from_pretrained``; the class's own schedule is
        its default."""
        if "T" in kwargs:
            raise TypeError(
                "from_pretrained loads with the class's default schedule (T = 1000); build "
                "another with UNetDenoiser(unet, T=...) from the loaded network's .unet"
            )
        path = Path(source)
        if not path.exists() and not hub:
            raise FileNotFoundError(
                f"no folder {str(source)!r} (from {Path.cwd()}): from_pretrained reads local "
                "folders written by save_pretrained; to download a hub id instead, pass "
                "hub=True"
            )
        UNet2DModel = _unet2d()

        if path.exists() and (path / "unet" / "config.json").exists():
            path = path / "unet"
        if path.exists() and not (path / "config.json").exists():
            raise FileNotFoundError(
                f"{path} has no config.json: pass a folder written by save_pretrained (or a "
                "pipeline folder with a unet/ subfolder)"
            )
        if path.exists():
            kwargs.setdefault("local_files_only", True)
        # without accelerate installed, diffusers warns unless the plain loading path is asked for
        kwargs.setdefault("low_cpu_mem_usage", False)
        unet = UNet2DModel.from_pretrained(str(path) if path.exists() else str(source), **kwargs)
        return cls(unet)

    def save_pretrained(self, folder: str | Path) -> None:
        """Save the network in diffusers' format (``config.json`` + safetensors weights)."""
        self.unet.save_pretrained(str(folder), safe_serialization=True)

    @property
    def network(self) -> nn.Module:
        """The ``UNet2DModel`` whose blocks are hooked
        (:class:`lowrank.measure.features.HookedDenoiser`)."""
        return self.unet

    def sigma_range(self) -> tuple[float, float]:
        """``(sigma_min, sigma_max)``: the smallest and the largest noise level of the schedule
        (the ends of :mod:`lowrank.theory.sampling`'s levels)."""
        sigma_min, sigma_max = self.log_sigmas[[0, -1]].exp().tolist()
        return sigma_min, sigma_max

    def sample_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image the network takes."""
        config = self.unet.config
        return (config.in_channels, config.sample_size, config.sample_size)

    def block_names(self) -> list[str]:
        """Every down block, the mid block and every up block of ``self.unet``, in the order
        the input passes them: the layers the book probes (submodules of :attr:`network`)."""
        down = [f"down_blocks.{i}" for i in range(len(self.unet.down_blocks))]
        up = [f"up_blocks.{i}" for i in range(len(self.unet.up_blocks))]
        return [*down, "mid_block", *up]

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """``(B,)`` continuous timesteps of noise levels ``(B,)``: linear interpolation of
        ``log sigma`` between the schedule's steps, clamped to ``[0, T - 1]``."""
        log_s = sigma.to(self.log_sigmas).log().clamp(self.log_sigmas[0], self.log_sigmas[-1])
        upper = torch.searchsorted(self.log_sigmas, log_s).clamp(1, self.T - 1)
        lo, hi = self.log_sigmas[upper - 1], self.log_sigmas[upper]
        return (upper - 1 + (log_s - lo) / (hi - lo)).float()

    def below_schedule(self, sigmas) -> torch.Tensor:
        """Which noise levels lie below the schedule's smallest (the network sees them with its
        ``t = 0`` conditioning)."""
        return torch.as_tensor(sigmas, dtype=torch.float64).log() < self.log_sigmas[0]

    def forward(self, x_t: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        if not isinstance(x_t, torch.Tensor) or x_t.ndim != 4:
            raise ValueError(
                f"x_t must be a (B, C, H, W) tensor, got {getattr(x_t, 'shape', x_t)}"
            )
        s = row_sigma(sigma, x_t.flatten(1))[:, 0].to(x_t.dtype)[:, None, None, None]
        return self._denoise(x_t, s)

    def _denoise(self, x_t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Tweedie's formula for the epsilon-predictor, ``s`` of shape ``(B, 1, 1, 1)``."""
        return x_t - s * self._epsilon(x_t, s)

    def _epsilon(self, x_t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """The network's noise prediction for ``x_t = x_0 + s eps``, ``s`` of shape
        ``(B, 1, 1, 1)``: fed the VP input at the matching timestep."""
        return self.unet(x_t / (1 + s.square()).sqrt(), self.timestep(s.flatten())).sample

    def loss(
        self, x0: torch.Tensor, generator: torch.Generator, sigma: torch.Tensor | None = None
    ) -> torch.Tensor:
        """DDPM's epsilon loss on a batch ``x0`` ``(B, C, H, W)``: timesteps uniform in
        ``0 .. T-1`` (or the given noise levels ``sigma`` ``(B,)``), noise from ``generator``.
        The signature fits :func:`lowrank.nets.train.fit` as ``lambda m, b, g: m.loss(b, g)``."""
        if sigma is None:
            sigma = self._training_sigmas(x0.shape[0], generator)
        s = sigma.to(device=x0.device, dtype=x0.dtype)[:, None, None, None]
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        return self._objective(x0, s, eps)

    def _training_sigmas(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``(count,)`` noise levels of a training batch: timesteps uniform in ``0 .. T-1``."""
        t = torch.randint(0, self.T, (count,), generator=generator)
        return self.log_sigmas[t].exp()

    def _objective(self, x0: torch.Tensor, s: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """DDPM's epsilon loss of one batch at levels ``s`` ``(B, 1, 1, 1)``, noise ``eps``."""
        return (self._epsilon(x0 + s * eps, s) - eps).square().mean()


class EDMUNetDenoiser(UNetDenoiser):
    r"""The same ``UNet2DModel`` in the EDM parameterization of Karras et al. (2022), the
    paper's own models: trained on a continuum of noise levels, so every level of the probing
    grid, 0.002 included, lies inside the range it is trained on and gets its own conditioning
    (none is clamped to a smallest timestep as in DDPM's schedule). The smallest levels are
    rarely drawn, though: :math:`\ln\sigma \sim \mathcal N(-1.2, 1.2^2)` puts 0.2% of the
    draws below 0.010 and 0.002 at 4.2 standard deviations.

    .. math:: \hat x_0 = c_\mathrm{skip}(\sigma)\, x_t
              + c_\mathrm{out}(\sigma)\, F_\theta\big(c_\mathrm{in}(\sigma)\, x_t,\,
              c_\mathrm{noise}(\sigma)\big),

    with :math:`c_\mathrm{skip} = \sigma_d^2/(\sigma^2+\sigma_d^2)`,
    :math:`c_\mathrm{out} = \sigma\sigma_d/\sqrt{\sigma^2+\sigma_d^2}`,
    :math:`c_\mathrm{in} = 1/\sqrt{\sigma^2+\sigma_d^2}` and
    :math:`c_\mathrm{noise} = \tfrac14 \ln\sigma` fed to the UNet as its (continuous) timestep.
    The loss is EDM's: :math:`\ln\sigma \sim \mathcal N(P_\mathrm{mean}, P_\mathrm{std}^2)` per
    image and the weighted squared error of :math:`\hat x_0`, which is the plain squared error
    of :math:`F_\theta` against its target :math:`(x_0 - c_\mathrm{skip} x_t)/c_\mathrm{out}`.

    Arguments:
        unet: a diffusers ``UNet2DModel``.
        sigma_data: the data's standard deviation in the preconditioning (EDM's 0.5 for images
            in [-1, 1], kept for every data set).

    These settings are not saved with the weights: :meth:`from_pretrained` gives the defaults.
        sigma_min, sigma_max: the sampler's range (EDM's 0.002 and 80).
        p_mean, p_std: the training distribution of ``ln sigma`` (EDM's -1.2 and 1.2).
    """

    def __init__(
        self,
        unet: nn.Module,
        sigma_data: float = 0.5,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        p_mean: float = -1.2,
        p_std: float = 1.2,
    ):
        nn.Module.__init__(self)
        self.unet = unet
        self.sigma_data, self.p_mean, self.p_std = float(sigma_data), float(p_mean), float(p_std)
        # the sampler's range: sigma_range() and below_schedule() read it as the DDPM schedule
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        levels = torch.tensor([sigma_min, sigma_max], dtype=torch.float64)
        self.register_buffer("log_sigmas", levels.log(), persistent=False)

    def schedule(self) -> dict:
        """The preconditioning and noise settings, which the weights files do not hold."""
        names = ("sigma_data", "sigma_min", "sigma_max", "p_mean", "p_std")
        return {name: getattr(self, name) for name in names}

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """``(B,)`` EDM's noise conditioning :math:`c_\\mathrm{noise} = \\ln(\\sigma) / 4`."""
        return (sigma.log() / 4).float()

    def below_schedule(self, sigmas) -> torch.Tensor:
        """None: the network is trained on a continuum of levels."""
        return torch.zeros(len(torch.as_tensor(sigmas)), dtype=torch.bool)

    def _denoise(self, x_t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        c_skip, c_out, F = self._network(x_t, s)
        return c_skip * x_t + c_out * F

    def _network(self, x_t: torch.Tensor, s: torch.Tensor):
        """``c_skip``, ``c_out`` and the UNet's output ``F`` at levels ``s`` ``(B, 1, 1, 1)``."""
        total = s.square() + self.sigma_data**2
        c_skip, c_out = self.sigma_data**2 / total, s * self.sigma_data / total.sqrt()
        return c_skip, c_out, self.unet(x_t / total.sqrt(), self.timestep(s.flatten())).sample

    def _training_sigmas(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``(count,)`` levels with ``ln sigma ~ N(p_mean, p_std^2)``."""
        return (self.p_mean + self.p_std * torch.randn(count, generator=generator)).exp()

    def _objective(self, x0: torch.Tensor, s: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """EDM's weighted loss as the plain squared error of ``F`` against its target."""
        x_t = x0 + s * eps
        c_skip, c_out, F = self._network(x_t, s)
        return (F - (x0 - c_skip * x_t) / c_out).square().mean()
