r"""The Bayes accuracy of a mixture's class from its noisy samples, across noise levels: the
ceiling that no readout of :math:`x_\sigma` can beat, and that cannot rise with :math:`\sigma`.

**Data processing.** For :math:`\sigma < \sigma'`, :math:`x_{\sigma'} \overset{d}{=} x_\sigma +
\sqrt{\sigma'^2 - \sigma^2}\, n'` with :math:`n'` independent of :math:`(x_0, k, x_\sigma)`, so
:math:`k \to x_\sigma \to x_{\sigma'}` is a Markov chain and the posterior at :math:`\sigma'` is
an average of posteriors at :math:`\sigma`:
:math:`w_k(x_{\sigma'}) = E[w_k(x_\sigma) \mid x_{\sigma'}]`. The Bayes accuracy is
:math:`A(\sigma) = E \max_k w_k(x_\sigma)`, and a maximum of averages is at most the average of
maxima, so :math:`A(\sigma') = E \max_k E[w_k(x_\sigma) \mid x_{\sigma'}] \le
E \max_k w_k(x_\sigma) = A(\sigma)`. Any classifier of :math:`x_\sigma` (a probe on features
computed from it, at any layer) is at most :math:`A(\sigma)`; a probe accuracy that rises with
:math:`\sigma` is a property of the restricted readout, never of the information in
:math:`x_\sigma`.

:func:`bayes_accuracy` estimates :math:`A(\sigma)` on a grid from the exact posterior weights
of a :class:`~lowrank.theory.mixtures.LowRankMixture`, with the same clean samples and the same
standard normal draw at every level (:math:`x_\sigma = x_0 + \sigma \epsilon`), so that
neighbouring levels are compared with paired errors. It averages :math:`\max_k w_k`, the
conditional probability that the Bayes classifier is right, rather than the 0/1 outcome: the
same mean with a smaller variance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lowrank._checks import as_sigmas, check_count
from lowrank.theory.denoisers import MixtureDenoiser
from lowrank.theory.mixtures import LowRankMixture

__all__ = ["BayesCurve", "bayes_accuracy"]


@dataclass(frozen=True)
class BayesCurve:
    """The Bayes accuracy across noise levels.

    Attributes:
        sigmas: ``(S,)`` noise levels.
        accuracy: ``(S,)`` the estimate of ``E max_k w_k(x_sigma)``; stderr: its standard error.
        correct: ``(S, M)`` bool, whether ``argmax_k w_k`` was the true class of each sample
            (the same samples at every level).
        steps: ``(S - 1,)`` paired mean change ``A(sigma_{i+1}) - A(sigma_i)``;
            step_stderr: its paired standard error.
    """

    sigmas: torch.Tensor
    accuracy: torch.Tensor
    stderr: torch.Tensor
    correct: torch.Tensor
    steps: torch.Tensor
    step_stderr: torch.Tensor

    @property
    def largest_rise(self) -> float:
        """The largest step up between neighbouring levels, in its paired standard errors
        (negative when every step goes down); data processing says no step rises beyond
        Monte Carlo error."""
        return (self.steps / self.step_stderr.clamp_min(1e-300)).max().item()


def bayes_accuracy(
    mix: LowRankMixture,
    sigmas: Sequence[float] | torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> BayesCurve:
    """The Bayes accuracy of ``mix``'s class from ``x_sigma = x_0 + sigma eps`` at each level of
    ``sigmas`` (increasing), from ``num_samples >= 2`` draws shared by every level (float64, in
    the union coordinates, so the cost does not depend on ``n``)."""
    sig = as_sigmas(sigmas, torch.float64)
    if len(sig) < 2 or bool(torch.any(sig[1:] <= sig[:-1])):
        raise ValueError(f"sigmas must be at least 2 increasing levels, got {sig.tolist()}")
    M = check_count(num_samples, "num_samples", minimum=2)
    if not isinstance(mix, LowRankMixture):
        raise TypeError(f"mix must be a LowRankMixture, got {type(mix).__name__}")
    y = mix.sample_labels(M, generator)
    z0 = mix.sample_coordinates(y, generator)
    eps = torch.randn(z0.shape, generator=generator, dtype=torch.float64)
    den = MixtureDenoiser(mix)
    w = torch.stack([den.posterior_coordinates(z0 + s * eps, s).weights for s in sig.tolist()])
    top = w.max(-1).values  # (S, M): the probability that the Bayes call is right
    steps = top[1:] - top[:-1]
    return BayesCurve(
        sigmas=sig,
        accuracy=top.mean(1),
        stderr=top.std(1) / M**0.5,
        correct=w.argmax(-1) == y,
        steps=steps.mean(1),
        step_stderr=steps.std(1) / M**0.5,
    )
