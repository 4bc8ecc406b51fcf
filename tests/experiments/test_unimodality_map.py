"""The map's mixtures against their definitions, and one map point against the limits the
theory gives: the SNR at sigma -> 0, the ICR at both ends, the probe at sigma -> 0."""

import pytest
import torch

from lowrank.experiments.unimodality_map import ICR_TAU, map_point, relaxed_molrg
from lowrank.theory.closed_forms import snr_limits
from tests.bad_input_cases import check_case


def test_relaxed_molrgs_are_what_their_axes_say():
    plain = relaxed_molrg(0.3, K=3, d=5)
    assert plain.class_ranks == [5, 5, 5] and plain.n == 20 and plain.delta == 0.3
    U = plain.U
    assert torch.allclose(U.T @ U, torch.eye(15, dtype=torch.float64), atol=1e-12)
    tilted = relaxed_molrg(0.3, axis="angle", value=30)
    cosines = torch.linalg.svdvals(tilted.class_bases[0].T @ tilted.class_bases[1])
    assert torch.allclose(cosines, torch.full((5,), 3**0.5 / 2, dtype=torch.float64))
    for k in (0, 1):  # the third class stays orthogonal to both
        assert (tilted.class_bases[2].T @ tilted.class_bases[k]).abs().max() < 1e-12
    spread = relaxed_molrg(0.3, axis="rank_spread", value=2)
    assert spread.class_ranks == [7, 3, 5]
    assert torch.allclose(spread.U.T @ spread.U, torch.eye(15, dtype=torch.float64), atol=1e-12)
    skewed = relaxed_molrg(0.3, axis="pi_first", value=0.6)
    assert torch.allclose(skewed.pi, torch.tensor([0.6, 0.2, 0.2], dtype=torch.float64))


def test_map_point_meets_the_limits_of_the_theory():
    """Fig. 3's MoLRG on a grid from 0.001 to 100. Over 8 seeds at these sizes the ICR at the
    first level was 0.0663 (sd 0.0019) against the population value 0.0658 below, at the last
    0.8749 (sd 0.0026) against 0.8751; 5 spreads are allowed."""
    K, delta, V, tau = 3, 0.2, 8, ICR_TAU
    sigmas = [0.001, 0.03, 0.1, 0.3, 1.0, 3.0, 100.0]
    point = map_point(
        relaxed_molrg(delta, K=K), sigmas, items=1000, snr_samples=4000, views=V,
        icr_items=500, seed=0,
    )  # fmt: skip
    small = snr_limits(K, delta).at_small_sigma
    assert abs(point.snr.value[0].item() - small) < 4 * point.snr.stderr[0].item()
    assert point.approx_error > 0.5  # Theorem 1 is far off somewhere on this grid
    assert point.bayes.largest_rise < 3 and point.bayes.accuracy[0] > 0.99
    # at sigma -> 0 the features are the clean coordinates: h = U^T x_sigma, the probe's input
    assert point.probe.accuracy[0].item() == pytest.approx(
        point.input_probe.accuracy[0].item(), abs=0.01
    )
    assert point.probe_shape.peak == point.probe_peak and point.probe.correct.shape == (7, 1000)
    # ICR at sigma -> 0, per coordinate (own with probability 1/3): invariant 1/3 + (2/3)
    # delta^2 / V, contamination (2/3) delta^2 (V - 1) / V, ridge tau times the mean variance
    own, s2 = 1 / 3, sigmas[0] ** 2
    invariant = own + (1 - own) * delta**2 / V + s2 / V
    contamination = ((1 - own) * delta**2 + s2) * (V - 1) / V
    total = own + (1 - own) * delta**2 + s2
    at_zero = 1 / (1 + invariant / (contamination + tau * total))
    assert point.icr[0].item() == pytest.approx(at_zero, abs=5 * 0.0019)
    # at sigma -> inf the noise dominates every view: lambda = 1 / (V - 1 + V tau)
    assert point.icr[-1].item() == pytest.approx((V - 1 + V * tau) / (V + V * tau), abs=5 * 0.0026)
    assert point.icr_intervals is None and set(point.peak_sigmas) == {"SNR", "probe", "ICR"}
    # the SNR's peak comes from a second estimate; the test and the summary use that peak
    assert point.snr_shape.peak == point.snr_peak and 0 < point.snr_peak < len(sigmas) - 1
    lowest = int(point.icr.argmin())
    assert point.icr_dip == pytest.approx((point.icr[0] - point.icr[lowest]).item())
    assert (point.icr_dip_stderr > 0) == (lowest > 0)


def test_theorem_1_is_left_out_off_assumption_1():
    sigmas = [0.01, 0.3, 3.0]
    point = map_point(
        relaxed_molrg(0.3, axis="pi_first", value=0.7), sigmas, items=100, snr_samples=200,
        icr_items=50, icr_resamples=20,
    )  # fmt: skip
    assert point.approx_error is None
    assert len(point.icr_intervals) == 3
    assert all(
        i.low <= v <= i.high for i, v in zip(point.icr_intervals, point.icr.tolist(), strict=True)
    )


def _relaxed_value_errors():
    return {
        "a value without an axis": (
            lambda t: relaxed_molrg(0.2, value=30), (ValueError, "needs an axis")),
        "no value for an angle": (
            lambda t: relaxed_molrg(0.2, axis="angle"), (TypeError, "must be a number")),
        "a boolean rank spread": (
            lambda t: relaxed_molrg(0.2, axis="rank_spread", value=True),
            (TypeError, "must be a number")),
    }  # fmt: skip


BAD_INPUTS = {
    **_relaxed_value_errors(),
    "not a MoLRG": (
        lambda t: map_point("mix", [0.1, 0.5, 1.0], items=50, snr_samples=10),
        (TypeError, "MoLRG"),
    ),
    "more ICR items than samples": (
        lambda t: map_point(
            relaxed_molrg(0.2), [0.1, 0.5, 1.0], items=20, snr_samples=10, icr_items=100
        ),
        (ValueError, "icr_items = 100"),
    ),
    "an unknown axis": (lambda t: relaxed_molrg(0.2, axis="overlap"), (ValueError, "axis")),
    "angle 0": (lambda t: relaxed_molrg(0.2, axis="angle", value=0), (ValueError, "angle")),
    "a rank spread of d": (
        lambda t: relaxed_molrg(0.2, d=5, axis="rank_spread", value=5),
        (ValueError, "rank_spread must be an integer in [0, 4]"),
    ),
    "pi_first of 1": (
        lambda t: relaxed_molrg(0.2, axis="pi_first", value=1.0),
        (ValueError, "pi_first"),
    ),
    "two levels": (
        lambda t: map_point(relaxed_molrg(0.2), [0.1, 1.0], items=50, snr_samples=10),
        (ValueError, "at least 3"),
    ),
    "too few items": (
        lambda t: map_point(relaxed_molrg(0.2), [0.1, 0.5, 1.0], items=5, snr_samples=10),
        (ValueError, "items"),
    ),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input(name, tmp_path):
    check_case(name, *BAD_INPUTS[name], tmp_path)
