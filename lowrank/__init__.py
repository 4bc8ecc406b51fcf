"""lowrank: low-rank Gaussian mixture models of diffusion-model representations.

Companion package of the executable book on arXiv:2502.05743 (Li et al., "Understanding
Representation Dynamics of Diffusion Models via Low-Dimensional Modeling").
"""

from . import data, kernels, metrics, probes, profiles, schedules, stats, theory
from .denoisers import EmpiricalDenoiser, LowRankDAE, MixtureDenoiser
from .metrics import snr_estimate, snr_exact
from .mixtures import LowRankMixture, MoLRG
from .theory import snr_approx

__version__ = "0.1.0"

__all__ = [
    "EmpiricalDenoiser",
    "LowRankDAE",
    "LowRankMixture",
    "MixtureDenoiser",
    "MoLRG",
    "data",
    "kernels",
    "metrics",
    "probes",
    "profiles",
    "schedules",
    "snr_approx",
    "snr_estimate",
    "snr_exact",
    "stats",
    "theory",
]
