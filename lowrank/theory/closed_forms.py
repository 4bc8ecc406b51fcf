r"""Closed forms of the theory: Proposition 1's coefficients and Theorem 1's SNR approximation.

For a MoLRG with ``K`` orthogonal classes of rank ``d`` and uniform :math:`\pi`:

* shrinkage on the relevant subspace :math:`\zeta = 1/(1+\sigma^2)`, on the irrelevant one
  :math:`\xi = \delta^2/(\delta^2+\sigma^2)`;
* posterior class weights :math:`w_l = \operatorname{softmax}_l(\tau \|U_l^\top x_t\|^2)` with
  temperature :math:`\tau = (1-\delta^2)/(2(1+\sigma^2)(\delta^2+\sigma^2))`;
* block energies for a sample of class ``k``: :math:`E\|U_k^\top x_t\|^2 = d(1+\sigma^2)`,
  :math:`E\|U_l^\top x_t\|^2 = d(\delta^2+\sigma^2)` for :math:`l \ne k`;
* Theorem 1 puts the expectation inside the softmax, so the logit gap is
  :math:`D = \tau \cdot d (1 - \delta^2) = d(1-\delta^2)^2 / (2(1+\sigma^2)(\delta^2+\sigma^2))`,
  :math:`w_\pm` follow, and

  .. math:: \mathrm{SNR} \approx \frac{C}{K-1}\Big(\frac{1 + \sigma^2/\delta^2\, h(w_+)}
            {1 + \sigma^2/\delta^2\, h(w_-)}\Big)^2,\quad C = \frac{1+\sigma^2}{\delta^2+\sigma^2},
            \quad h(w) = (1-\delta^2) w + \delta^2.

The paper prints :math:`D = (1-\delta^2) d / (2\sigma^2(1+\sigma^2))`, which is not what the
softmax above gives: with logits :math:`\phi \|U_l^\top x_t\|^2 + \psi \|\tilde U_l^\top
x_t\|^2` it keeps the :math:`\phi` part of the energy gap and drops the :math:`-\psi` part, so
it exceeds the derived gap by the factor :math:`(\delta^2+\sigma^2)/(\sigma^2(1-\delta^2))`.
``variant="paper"`` evaluates the printed form for comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lowrank._checks import as_sigmas, check_count
from lowrank.theory.mixtures import MoLRG

__all__ = [
    "zeta",
    "xi",
    "softmax_temperature",
    "BlockEnergies",
    "block_energies",
    "logit_gap",
    "ConfidenceWeights",
    "confidence_weights",
    "h_of_w",
    "BlockScales",
    "block_scales",
    "snr_approx",
    "snr_two_block",
    "SNRLimits",
    "snr_limits",
    "chi_square_grid",
    "theorem1_applies",
]


def _check_delta(delta: float) -> None:
    if not 0 < delta < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}")


def zeta(sigma: torch.Tensor) -> torch.Tensor:
    r"""Shrinkage on the relevant subspace, :math:`\zeta = 1/(1+\sigma^2)`."""
    return 1 / (1 + sigma**2)


def xi(sigma: torch.Tensor, delta: float) -> torch.Tensor:
    r"""Shrinkage on the irrelevant subspace, :math:`\xi = \delta^2/(\delta^2+\sigma^2)`."""
    _check_delta(delta)
    return delta**2 / (delta**2 + sigma**2)


def softmax_temperature(sigma: torch.Tensor, delta: float) -> torch.Tensor:
    r""":math:`\tau = \phi - \psi = (1-\delta^2)/(2(1+\sigma^2)(\delta^2+\sigma^2))`, the factor of
    :math:`\|U_l^\top x_t\|^2` in the posterior class logits (equal :math:`\pi`, equal ``d``)."""
    _check_delta(delta)
    return (1 - delta**2) / (2 * (1 + sigma**2) * (delta**2 + sigma**2))


@dataclass(frozen=True)
class BlockEnergies:
    """Expected energies of :math:`x_t`'s blocks: ``own`` in its class's block, ``other`` in
    each other block."""

    own: torch.Tensor
    other: torch.Tensor


def block_energies(d: int, delta: float, sigma: torch.Tensor) -> BlockEnergies:
    r"""Expected block energies of :math:`x_t` of class ``k``: :math:`d(1 + \sigma^2)` for the
    own block and :math:`d(\delta^2 + \sigma^2)` for each other block."""
    _check_delta(delta)
    d = check_count(d, "d")
    return BlockEnergies(d * (1 + sigma**2), d * (delta**2 + sigma**2))


def logit_gap(
    d: int, delta: float, sigmas: Sequence[float] | torch.Tensor, variant: str = "derived"
) -> torch.Tensor:
    r"""Gap :math:`D_t` between the true class's expected logit and each other class's.

    ``variant="derived"``: :math:`d(1-\delta^2)^2 / (2(1+\sigma^2)(\delta^2+\sigma^2))`
    (temperature times the energy gap :math:`d(1-\delta^2)`); ``variant="paper"``: the printed
    :math:`(1-\delta^2) d / (2\sigma^2(1+\sigma^2))`.
    """
    _check_delta(delta)
    d = check_count(d, "d")
    s2 = as_sigmas(sigmas).square()
    if variant == "derived":
        return d * (1 - delta**2) ** 2 / (2 * (1 + s2) * (delta**2 + s2))
    if variant == "paper":
        return (1 - delta**2) * d / (2 * s2 * (1 + s2))
    raise ValueError(f"variant must be 'derived' or 'paper', got {variant!r}")


@dataclass(frozen=True)
class ConfidenceWeights:
    """Theorem 1's posterior weights: ``w_plus`` on the true class, ``w_minus`` on each of the
    ``K - 1`` others."""

    w_plus: torch.Tensor
    w_minus: torch.Tensor


def confidence_weights(K: int, D: torch.Tensor) -> ConfidenceWeights:
    r""":math:`w_+ = 1/(1+(K-1)e^{-D})` and :math:`w_- = e^{-D}/(1+(K-1)e^{-D})`, the softmax of
    one logit ``D`` above ``K - 1`` equal ones (the log-sum-exp lemma of Theorem 1)."""
    K = check_count(K, "K", minimum=2)
    e = torch.exp(-D)
    w_plus = 1 / (1 + (K - 1) * e)
    return ConfidenceWeights(w_plus, e * w_plus)


def h_of_w(w: torch.Tensor, delta: float) -> torch.Tensor:
    r""":math:`h(w, \delta) = (1-\delta^2) w + \delta^2`, so that
    :math:`\beta \propto 1 + \sigma^2/\delta^2\, h(w)`."""
    _check_delta(delta)
    return (1 - delta**2) * w + delta**2


@dataclass(frozen=True)
class BlockScales:
    r"""Theorem 1's scales of the posterior mean's blocks, :math:`\beta = \xi + (\zeta - \xi) w`:
    ``beta_plus`` on the true class's block (weight :math:`w_+`), ``beta_minus`` on each of the
    ``K - 1`` others (:math:`w_-`)."""

    beta_plus: torch.Tensor
    beta_minus: torch.Tensor


def block_scales(
    K: int, d: int, delta: float, sigmas: Sequence[float] | torch.Tensor
) -> BlockScales:
    r""":math:`\beta_\pm` at ``sigmas`` with the weights at the derived logit gap (expectation
    inside the softmax), so that Theorem 1's SNR is
    :math:`\beta_+^2 d(1+\sigma^2) / ((K-1) \beta_-^2 d(\delta^2+\sigma^2))`."""
    sig = as_sigmas(sigmas)
    w = confidence_weights(K, logit_gap(d, delta, sig))
    z, x = zeta(sig), xi(sig, delta)
    return BlockScales(x + (z - x) * w.w_plus, x + (z - x) * w.w_minus)


def snr_approx(
    K: int,
    d: int,
    delta: float,
    sigmas: Sequence[float] | torch.Tensor,
    variant: str = "derived",
) -> torch.Tensor:
    r"""Theorem 1's approximation of the optimal denoiser's SNR (expectation inside softmax).

    Arguments:
        K: number of classes (>= 2).
        d: rank per class.
        delta: MoLRG delta in (0, 1).
        sigmas: noise levels (> 0).
        variant: ``"derived"`` (the logit gap the softmax gives) or ``"paper"`` (as printed).

    Returns:
        ``(len(sigmas),)`` tensor in ``sigmas``' dtype (float64 for a sequence, float32 for
        half precision).
    """
    sig = as_sigmas(sigmas)
    s2 = sig.square()
    w = confidence_weights(K, logit_gap(d, delta, sig, variant))
    C = (1 + s2) / (delta**2 + s2)
    rate = s2 / delta**2  # denoising strength sigma^2 / delta^2
    ratio = (1 + rate * h_of_w(w.w_plus, delta)) / (1 + rate * h_of_w(w.w_minus, delta))
    return C / (K - 1) * ratio.square()


def chi_square_grid(d: int, points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``X`` and weights summing to 1 for expectations over ``X ~ chi^2_d``.

    ``X = 2 v^2`` with ``v`` on a uniform grid over [0, 8]: the density in ``v``,
    ``2 v^(d-1) e^(-v^2) / Gamma(d/2)``, is smooth for every ``d >= 1`` and negligible past 8.
    """
    v = torch.linspace(0, 8, points, dtype=torch.float64)
    log_density = (d - 1) * torch.log(v.clamp_min(1e-300)) - v.square()
    weights = torch.exp(log_density - log_density.max())
    weights[0] = 0.0 if d > 1 else 0.5 * weights[0]  # trapezoid rule: half weight at the end
    return 2 * v.square(), weights / weights.sum()


def snr_two_block(
    K: int,
    d: int,
    delta: float,
    sigmas: Sequence[float] | torch.Tensor,
    points: int = 600,
) -> torch.Tensor:
    r"""Sharper approximation of the optimal denoiser's SNR: two block energies integrated
    exactly, the other ``K - 2`` at their mean. Deterministic (quadrature), no Monte Carlo.

    For a sample of class ``k`` the block energies are independent,
    :math:`E_k = (1+\sigma^2) X_0` and :math:`E_l = (\delta^2+\sigma^2) X_l` with
    :math:`X \sim \chi^2_d`, and exactly

    .. math:: \mathrm{SNR} = \frac{E[\beta_k^2 E_k]}{(K-1)\, E[\beta_l^2 E_l]},\qquad
              \beta_j = \xi + (\zeta - \xi)\operatorname{softmax}_j(\tau E).

    Theorem 1 replaces all ``K`` energies by their means inside the softmax. Here the own
    block :math:`E_k` and one other block :math:`E_l` keep their chi-square laws (a 2-D
    quadrature) and only the remaining ``K - 2`` sit at their mean :math:`d(\delta^2+\sigma^2)`.
    Exact for ``K = 2``.

    Returns:
        ``(len(sigmas),)`` tensor in ``sigmas``' dtype (float64 for a sequence, float32 for
        half precision).
    """
    K, d = check_count(K, "K", minimum=2), check_count(d, "d")
    sig = as_sigmas(sigmas)
    X, weight = chi_square_grid(d, points)
    W2 = weight[:, None] * weight[None, :]  # joint weights of (X_0, X_l)
    out = []
    for s in sig.to(torch.float64).tolist():
        s_t = torch.tensor(s, dtype=torch.float64)
        tau = softmax_temperature(s_t, delta)
        on = (1 + s**2) * X[:, None]  # E_k on axis 0
        off = (delta**2 + s**2) * X[None, :]  # E_l on axis 1
        logits = [tau * on, tau * off]
        if K > 2:
            rest = tau * d * (delta**2 + s**2) + torch.log(
                torch.tensor(K - 2.0, dtype=torch.float64)
            )
            logits.append(rest.expand(points, points))
        lse = torch.logsumexp(torch.stack(torch.broadcast_tensors(*logits)), dim=0)
        z, x = zeta(s_t), xi(s_t, delta)
        beta_on = x + (z - x) * torch.exp(tau * on - lse)
        beta_off = x + (z - x) * torch.exp(tau * off - lse)
        numerator = (W2 * beta_on.square() * on).sum()
        denominator = (K - 1) * (W2 * beta_off.square() * off).sum()
        out.append(numerator / denominator)
    return torch.stack(out).to(sig.dtype)


@dataclass(frozen=True)
class SNRLimits:
    """The optimal denoiser's SNR at the ends of the noise axis."""

    at_small_sigma: float
    at_large_sigma: float


def snr_limits(K: int, delta: float) -> SNRLimits:
    r"""SNR of the optimal denoiser as :math:`\sigma \to 0` and :math:`\sigma \to \infty`:
    :math:`1/((K-1)\delta^2)` and :math:`1/(K-1)`."""
    _check_delta(delta)
    K = check_count(K, "K", minimum=2)
    return SNRLimits(at_small_sigma=1 / ((K - 1) * delta**2), at_large_sigma=1 / (K - 1))


def theorem1_applies(mix) -> bool:
    """Whether ``mix`` is in the setting of Theorem 1 and these closed forms, the paper's
    Assumption 1: a MoLRG of mutually orthogonal classes of equal rank, with zero means and a
    uniform ``pi``."""
    if not isinstance(mix, MoLRG):
        return False
    symmetric = len(set(mix.class_ranks)) == 1 and bool(torch.all(mix.pi == mix.pi[0]))
    return symmetric and mix.diagonal and not bool(mix.means.any())
