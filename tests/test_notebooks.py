"""Every notebook runs under papermill at the quick profile, and its glued numbers pass checks
that the notebook itself does not make: bounds derived here, independently of the code the
notebook calls (a closed form, or a second method such as the two-block quadrature).

The executed copies land in ``_build/executed/quick``, where ``make test`` builds the book from.
Glued values are parsed as the numbers they are (``myst_nb.glue`` of a float stores its repr).
"""

import ast
import math
import re
from pathlib import Path
from statistics import NormalDist

import nbformat
import pytest
import torch

from lowrank.book import paper
from lowrank.measure import inference, stats, student_t
from lowrank.measure.icr import DEFAULT_TAU
from lowrank.nets.runs import UNetRun
from lowrank.theory import closed_forms, schedules
from tools import book

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "_build" / "executed" / "quick"
QUICK = book.load_profile("quick")


def _covariance_rel_rms(N: int) -> float:
    """Root mean square of ||S - Sigma||_F / ||Sigma||_F for the chapter-1 class covariance.

    For N zero-mean Gaussian samples, E||S - Sigma||_F^2 = ((tr Sigma)^2 + tr Sigma^2) / N
    (Isserlis: Var S_ij = (Sigma_ii Sigma_jj + Sigma_ij^2) / N, summed over i, j). The classes
    of MoLRG(n=50, K=3, d=5, delta=0.3) share one spectrum: 1 (5 times), delta^2 (10 times).
    """
    d, K, delta = 5, 3, 0.3
    tr = d + (K - 1) * d * delta**2
    tr2 = d + (K - 1) * d * delta**4
    return math.sqrt((tr**2 + tr2) / N / tr2)


def _two_block(sigmas) -> torch.Tensor:
    F = paper.FIG3_SETTING
    return closed_forms.snr_two_block(F["K"], F["d"], F["delta"], torch.as_tensor(sigmas).double())


def _check_01(v):
    assert v["cov_num_samples"] == QUICK["num_samples"]  # the profile reached the notebook
    rms = _covariance_rel_rms(QUICK["num_samples"])
    assert v["cov_rel_expected"] == pytest.approx(rms, rel=1e-9)
    # The error is dominated by the 5 x 5 unit-variance block (about 15 independent entries), so
    # it spreads widely: simulating the cell 300 times gave a ratio (worst of 3 classes over
    # rms) of mean 1.11, standard deviation 0.11, range 0.85-1.48. [0.7, 1.7] is -3.7 and +5.3
    # standard deviations; a sampler 2% too wide (variance +4%) gives about 2.3 and fails.
    assert 0.7 * rms < v["cov_rel_error"] < 1.7 * rms, (v["cov_rel_error"], rms)
    # The notebook bounds max |z| from above (< 6). From below: simulating the cell 150 times
    # gave mean 3.62, standard deviation 0.38, range 2.72-5.33 (the 1275 entries are strongly
    # correlated: S - Sigma has rank 15). A standard error twice too large halves every z-score
    # (about 1.8) and fails this bound, which the notebook's own check would let through.
    assert v["cov_max_z"] > 2.2, v["cov_max_z"]


def _check_02(v):
    # Monte Carlo SNR (quick: 20 000 draws) against the quadrature, which is within 2% for K=3
    for key in ("prop1_snr_first", "prop1_snr_last"):
        assert v[key] > 0
    peak = _two_block([v["prop1_snr_peak_sigma"]]).item()
    assert v["prop1_snr_peak"] == pytest.approx(peak, rel=0.05)
    assert v["prop1_snr_first"] == pytest.approx(_two_block([0.03]).item(), rel=0.05)


def _check_03(v):
    F = paper.FIG3_SETTING
    d, delta, s = F["d"], F["delta"], 0.3
    derived = d * (1 - delta**2) ** 2 / (2 * (1 + s**2) * (delta**2 + s**2))
    printed = (1 - delta**2) * d / (2 * s**2 * (1 + s**2))
    assert v["D_check_mean"] == pytest.approx(derived, rel=0.01)  # about 0.2% at quick
    assert abs(v["D_check_mean"] - printed) > 0.3 * printed
    # the exact peak (Monte Carlo on a fine grid) agrees with the quadrature's peak
    fine = torch.logspace(-1.5, 0.5, 81, dtype=torch.float64)
    quad = _two_block(fine)
    assert v["exact_peak_snr"] == pytest.approx(quad.max().item(), rel=0.05)
    assert v["exact_peak_sigma"] == pytest.approx(fine[quad.argmax()].item(), rel=0.15)
    assert v["thm1_worst_rel_error"] > 1.0  # Theorem 1 is off by a factor somewhere
    # over delta, Theorem 1's worst error against the quadrature (within 8% of the exact SNR at
    # delta = 0.1 at quick) on the chapter's grid, and it grows as delta falls
    grid = torch.logspace(-2.5, 1, 36, dtype=torch.float64)
    K = F["K"]
    approx = closed_forms.snr_approx(K, d, 0.1, grid)
    quad_01 = closed_forms.snr_two_block(K, d, 0.1, grid)
    assert v["thm1_worst_at_0_1"] == pytest.approx(
        ((approx - quad_01) / quad_01).abs().max().item(), rel=0.15
    )
    assert v["thm1_worst_at_0_025"] > 10 * v["thm1_worst_at_0_1"] > 10 * v["thm1_worst_rel_error"]
    assert v["two_block_delta_worst"] < 0.3


def _check_04(v):
    # the optimal SNR's peak on the paper's grid, against the quadrature on the same grid
    quad = _two_block(schedules.molrg_sigmas())
    assert v["peak_opt_snr"] == pytest.approx(quad.max().item(), rel=0.05)
    # Table 7's small-sigma limit d / ((K-1) delta^2 d + |mu|^2) with separation 3
    F = paper.FIG3_SETTING
    limit = F["d"] / ((F["K"] - 1) * F["delta"] ** 2 * F["d"] + 3.0**2)
    assert v["t7_snr_first"] == pytest.approx(limit, rel=0.03)
    # the DAE from K-subspaces on Table 4's orthogonal classes: within 3% of the paper as the
    # optimum is (the chapter's check), plus the DAE's distance to the optimum at this budget
    # (3-5% in tests/experiments/test_trained_dae.py) and Monte Carlo: 10%
    assert v["dae_orthogonal_gap"] < 0.10
    # K = 2's linear probe keeps the subspace energies: it cannot fall to the paper's 52.6%
    assert v["t7_k2_lowest_last"] > 52.6 and v["t7_best_K"] in (2, 3)
    assert v["hessian_samples_used"] == QUICK["hessian_samples"]
    # Fig. 3's probe verdict: the paired margins at the cross-fitted peak decide it
    expected = {(True, True): "unimodal", (False, True): "decreasing",
                (True, False): "increasing", (False, False): "flat"}  # fmt: skip
    rise, fall = v["logistic_rise_se"], v["logistic_fall_se"]
    assert v["shape_logistic"] == expected[(rise > 3, fall > 3)]
    assert v["probe_items"] == paper.FIG3_SETTING["test_sets"] * paper.FIG3_SETTING["num_test"]
    grid = schedules.molrg_sigmas().tolist()
    assert min(abs(v["logistic_peak_sigma"] - s) for s in grid) < 1e-6


def _check_05(v):
    assert v["probe_train"] == QUICK["probe_train_images"]  # the profile reached the notebook
    assert v["probe_test"] == QUICK["probe_test_images"]
    assert v["below_schedule"] == 2  # 0.002 and 0.0075 lie below the schedule's smallest level
    for key in ("acc_first", "acc_peak", "acc_last", "pixels_first", "untrained_first"):
        assert 10 < v[key] <= 100, (key, v[key])  # above chance (10 classes)
    grid = schedules.edm_probe_sigmas().tolist()
    for key in ("acc_peak_sigma", "snr_peak_sigma", "mixture_peak_sigma", "clean_peak_sigma",
                "icr_min_sigma"):  # fmt: skip
        assert min(abs(v[key] - s) for s in grid) < 1e-12, key  # a point of the paper's grid
    blocks = ["down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0", "up_blocks.1"]
    readouts = blocks + [f"{b}@{QUICK['readout_grid']}" for b in blocks]
    assert v["best_layer"] in readouts and v["n_readouts"] == len(readouts)
    # the verdict follows from the margins at the cross-fitted peak, as the test defines it
    expected = {(True, True): "unimodal", (False, True): "decreasing",
                (True, False): "increasing", (False, False): "flat"}  # fmt: skip
    assert v["acc_verdict"] == expected[(v["acc_rise"] > 3, v["acc_fall"] > 3)]
    assert v["acc_summary"].startswith(v["acc_verdict"])
    index = {name: min(range(len(grid)), key=lambda i: abs(grid[i] - v[name]))
             for name in ("acc_peak_sigma", "snr_peak_sigma", "icr_min_sigma")}  # fmt: skip
    # inside the grid: above the levels below the schedule (results.py's low end), below the top
    interior = [2 <= index[k] < len(grid) - 1 for k in ("acc_peak_sigma", "snr_peak_sigma")]
    assert v["peaks_reading"].startswith("both peak inside") == all(interior)
    assert v["icr_levels_from_peak"] == index["icr_min_sigma"] - index["acc_peak_sigma"]
    assert v["icr_first_over_floor"] >= 1 - 1e-6  # tau / (1 + tau) bounds the ICR from below
    # the paired test's threshold: none when the cross-fitted peak is an end of the grid
    assert math.isinf(float(v["acc_mde"])) == (index["acc_peak_sigma"] in (0, len(grid) - 1))
    assert v["early_epoch"] == QUICK["early_epoch"] and v["probe_seeds"] == QUICK["probe_seeds"]
    # the chosen readout's lead is one of the family's: a lower end above 0 is counted
    for key in ("many", "few"):
        if v[f"lead_{key}_low"] > 0:
            assert v[f"beat_pixels_{key}"] >= 1, key
    assert v["few_size"] == QUICK["few_labels"]
    assert v["recipe_seeds"] == QUICK["recipe_seeds"]
    # an interval over two or more networks is finite (nan would mean it was not computed)
    assert math.isfinite(v["recipe_bump"]) and math.isfinite(v["recipe_bump_half"])
    assert v["icr_items"] == min(QUICK["icr_items"], QUICK["probe_train_images"])
    # samples of a network are further from real test images than real training images are
    assert v["fd_networks"] > v["fd_real"] > 0
    # 16x16 pixels under noise of standard deviation 1.923 (about the images' own range) lose
    # most of the class: the pixel probe falls
    assert v["pixels_last"] < v["pixels_first"] - 10
    row = paper.TABLE9["CIFAR-10", "logistic"].values
    # the notebook subtracts in float32 (torch's default), about 4e-6 from the float64 value
    assert v["paper_c10_rise"] == pytest.approx(max(row) - row[0], abs=1e-5)
    assert v["paper_c10_peak_sigma"] == 0.06
    # the projection classifier beats chance on trained features, and noise of about the
    # images' own range takes most of it away, as for the pixels; its verdict follows its rise
    assert 10 < v["projection_first"] <= 100
    assert v["projection_last"] < v["projection_first"] - 10
    rising = v["projection_verdict"] in ("unimodal", "increasing")
    assert rising == (v["projection_rise"] > 3), (v["projection_verdict"], v["projection_rise"])
    verdicts = ("clean_verdict", "clean_mid_verdict", "projection_pixels_verdict",
                "projection_untrained_verdict", "untrained_verdict", "pixels_verdict")  # fmt: skip
    for key in verdicts:
        assert v[key] in stats.VERDICTS, key


def _check_06(v):
    assert v["probe_train"] == QUICK["probe_train_images"]  # the profile reached the notebook
    assert v["noise_seeds"] == QUICK["label_noise_seeds"]
    assert v["n_daes"] == len(QUICK["dae_sigmas"]) + 1  # one per level and one on all
    assert v["dae_small_sigma"] == QUICK["dae_sigmas"][0]
    # the initialization's share of the EMA that debiasing takes out: d^steps
    run = UNetRun(dataset=QUICK["dataset"])
    steps = math.ceil(QUICK["unet_train_images"] / run.batch_size)
    assert v["init_share_early"] == pytest.approx(run.ema_decay ** (QUICK["early_epoch"] * steps))
    assert v["init_share_full"] == pytest.approx(run.ema_decay ** (QUICK["unet_epochs"] * steps))
    for rate in (0, 80):
        assert 10 < v[f"single_{rate}"] <= 100 and 0 < v[f"ensemble_{rate}"] <= 100
        # the gain is the paired difference: its mean is ensemble minus single (to rounding)
        gap = v[f"ensemble_{rate}"] - v[f"single_{rate}"]
        assert v[f"gain_{rate}"] == pytest.approx(gap, abs=1e-9)
        # paired on the test images, the interval is never empty (some image always differs
        # at this size), and a per-image difference in [-1, 1] has a standard deviation near 1
        # at most
        assert 0 < v[f"gain_{rate}_half"] < 300 / QUICK["probe_test_images"] ** 0.5
    assert v["gain_growth"] == pytest.approx(v["gain_80"] - v["gain_0"], abs=1e-9)
    # the growth found at 80% power by the two-sided 95% test: (1.96 + 0.84) paired standard
    # errors, against the interval's t quantile over the test images
    t = student_t.t_quantile(0.975, QUICK["probe_test_images"] - 1)
    ratio = (NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)) / t
    assert v["gain_growth_found"] == pytest.approx(ratio * v["gain_growth_half"], rel=1e-3)
    assert v["joint_level"] == pytest.approx(1 - 0.05 / len(QUICK["label_noise_rates"]))
    assert v["single_0"] > v["single_80"]  # wrong labels cost accuracy
    pairs = zip(paper.TABLE1_EDM_ENSEMBLE, paper.TABLE1_EDM_SINGLE, strict=True)
    paper_gain = [e - s for e, s in pairs]
    assert v["paper_gain_min"] == pytest.approx(min(paper_gain))
    assert v["paper_gain_max"] == pytest.approx(max(paper_gain))
    # each verdict follows from its signed margin by the chapter's 3-paired-standard-error bar,
    # and the gap found at 80% power is 3.84 paired standard errors
    for pair, first, second in (
        ("snapshot", "the diffusion model", "the best single-level DAE"),
        ("multi", "the multi-level DAE", "the single-level DAE"),
    ):
        key, verdict, gap, mde = (f"{pair}_{k}" for k in ("margin_se", "verdict", "gap", "found"))
        m = float(v[key])  # a glued inf reads back as the string "inf"
        if m > 3 or m < -3:
            assert v[verdict] == f"{first if m > 0 else second} ahead", (key, m, v[verdict])
        elif v[mde] > 0:
            leader = first if v[gap] > 0 else second
            assert v[verdict].startswith(f"not told apart at 3 paired SE: {leader} by"), v[verdict]
            assert f"{v[mde]:.2f} points is found with 80% power" in v[verdict]
        if v[mde] > 0:
            stderr = v[mde] / (3 + NormalDist().inv_cdf(0.8))
            assert m == pytest.approx(v[gap] / stderr, rel=1e-9)
        else:  # no discordant image: the gap is 0, or every image differs the same way
            assert m == (math.copysign(math.inf, v[gap]) if v[gap] else 0.0)
    margins = [v[f"{k}_over_untrained_se"] for k in ("early", "dae_small", "best_single", "multi")]
    assert ("above it" in v["untrained_verdict"]) == any(m > 3 for m in margins)
    assert ("below it" in v["untrained_verdict"]) == any(m < -3 for m in margins)
    for key in ("diff_at_peak", "early_at_peak", "dae_small_at_peak", "multi_at_peak"):
        assert 10 < v[key] <= 100, (key, v[key])
    # distances to the diffusion model's features are distances: positive for other networks
    for key in ("early_swd", "dae_small_swd", "multi_swd", "untrained_swd"):
        assert v[key] > 0, key
    # the networks farther than the untrained one: the three glued distances bound the count
    # (the snapshot and every DAE are counted; distances of the other DAEs are not glued)
    farther = sum(v[k] > v["untrained_swd"] for k in ("early_swd", "dae_small_swd", "multi_swd"))
    assert farther <= v["swd_farther"] <= farther + v["n_daes"] + 1 - 3
    n_trained = v["n_daes"] + 1  # the snapshot and every DAE
    assert v["swd_reading"].startswith(f"{v['swd_farther']} of the {n_trained} other trained")
    # the verdict names exactly the rates whose joint gain interval lies above zero, or below
    found = [f"a {kind} at {v[f'{kind}_significant']} of labels flipped"
             for kind in ("gain", "loss") if v[f"{kind}_significant"] != "none"]  # fmt: skip
    assert v["ensemble_verdict"] == ("; ".join(found) or "no gain or loss beyond noise")
    # the growth's reading quotes the growth and what the test could find, against the paper's
    assert (
        f"is {v['gain_growth']:+.2f} ± {v['gain_growth_half']:.2f} points" in v["growth_reading"]
    )
    side = "below" if v["gain_growth_found"] < v["paper_growth"] else "above"
    assert f"{side} the paper's growth of {v['paper_growth']:.1f}" in v["growth_reading"]
    # six comparisons at 3 paired standard errors, two-sided, Bonferroni (two may coincide)
    one_sided = 0.5 * math.erfc(3 / math.sqrt(2))
    assert v["gaps_familywise"] in (pytest.approx(100 * 2 * one_sided * n) for n in (5, 6))
    grid = schedules.edm_probe_sigmas().tolist()
    assert min(abs(v["diff_peak_sigma"] - s) for s in grid) < 1e-12
    assert v["layer"] in ["down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0",
                          "up_blocks.1"]  # fmt: skip


def _check_07(v):
    assert v["n_networks"] == len(QUICK["sweep_sizes"])  # the profile reached the notebook
    assert v["n_samples"] == QUICK["generated_samples"]
    assert v["probe_fixed"] == QUICK["probe_fixed_images"]
    # the budget: every subset repeated whole to at least the epoch's images, for every epoch
    smallest = min(QUICK["sweep_sizes"])
    per_epoch = math.ceil(QUICK["sweep_epoch_images"] / smallest) * smallest
    assert v["budget"] == per_epoch * QUICK["sweep_epochs"]
    assert v["steps"] == QUICK["sweep_epochs"] * math.ceil(per_epoch / 128)
    assert v["ema_left"] == pytest.approx(QUICK["sweep_ema_decay"] ** v["steps"])
    assert v["passes_small"] == pytest.approx(v["budget"] / smallest)
    for key in ("copies_smallest", "copies_largest", "score_smallest", "score_largest"):
        assert 0 <= v[key] <= 100, key
    assert 0.1 < v["classifier_accuracy"] <= 1  # better than chance (10 classes)
    assert v["paper_rise_points"] == pytest.approx(1.48)

    def sizes_of(text):
        return sorted(int(n.replace(",", "")) for n in text.split(", ") if n != "none")

    # the lists partition the sizes; agreement is counted over the tested sizes only
    sizes = sorted(QUICK["sweep_sizes"])
    assert sorted(sizes_of(v["copying_sizes"]) + sizes_of(v["generalizing_sizes"])) == sizes
    tested = sizes_of(v["tested_sizes"])
    assert sorted(tested + sizes_of(v["untested_sizes"])) == sizes
    assert 0 <= v["n_agree"] <= v["n_tested"] == len(tested) <= v["n_networks"]
    readings = {"unimodal", "decreasing", "increasing", "flat", inference.UNTESTED}
    for key in ("shapes_fixed", "shapes_own"):
        assert {part.split(": ")[1] for part in v[key].split(", ")} <= readings
    assert v["paper_budget_m"] == paper.FIG6_TRAINING_IMAGES / 1e6
    assert 10 < v["fixed_min"] <= v["fixed_max"] <= 100
    # what each end's test could see, from its rise's own paired s.e. (normal formulas here)
    parts = v["shapes_fixed"].split(", ")
    for key, part in zip(("smallest", "largest"), (parts[0], parts[-1]), strict=True):
        reading = part.split(": ")[1]
        found, power = float(v[f"found_{key}"]), float(v[f"power_{key}"])
        assert (reading == inference.UNTESTED) == math.isnan(found) == math.isnan(power), key
        if reading == inference.UNTESTED:
            continue
        # the rise bound is the largest upper end over levels, so at least the peak's rise
        assert v[f"bound_{key}"] >= v[f"rise_points_{key}"] - 1e-9, key
        se = found / (3 + NormalDist().inv_cdf(0.8))
        assert power == pytest.approx(NormalDist().cdf(1.48 / se - 3), abs=1e-6), key
        rise = float(v[f"rise_{key}"])
        assert (reading in ("unimodal", "increasing")) == (rise > 3), (key, reading, rise)
    # the page's reading follows from the readings it quotes (both probe sets and the controls)
    rising = {"unimodal", "increasing"}
    shown = {
        p.split(": ")[1] for key in ("shapes_fixed", "shapes_own") for p in v[key].split(", ")
    }
    controls = {v["untrained_shape"], v["pixels_shape"]}
    no_rise = not (shown & rising) and not (controls & rising)
    assert v["shape_reading"].startswith("no curve rises") == no_rise
    claim = f"the paper's pairing holds for {v['n_agree']} of" if tested else "no rise was tested"
    assert v["claim_reading"].startswith(claim)
    # untested sizes: those that generalize with a bound below the paper's rise count against,
    # those that copy are consistent; neither is among the tested
    excluded = sizes_of(v["excluded_sizes"])
    assert v["n_excluded"] == len(excluded) and set(excluded) <= set(sizes_of(v["untested_sizes"]))
    assert not set(excluded) & set(sizes_of(v["copying_sizes"]))
    assert v["n_consistent"] <= len(sizes_of(v["untested_sizes"])) - len(excluded)
    assert v["n_curves"] == 2 * len(sizes) + 2
    assert v["familywise"] == pytest.approx(100 * (1 - (1 - 0.00135) ** v["n_curves"]))
    assert (v["fd_reading"] == "the largest subset also gives the closest samples") == (
        v["fd_best_size"] == v["size_largest"]
    )
    assert v["layer"] in ["down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0",
                          "up_blocks.1"]  # fmt: skip


def _check_08(v):
    sizes, epochs = QUICK["dynamics_sizes"], QUICK["sweep_epochs"]
    followed = sorted({*QUICK["sweep_snapshots"], epochs})
    assert v["n_checkpoints"] == len(sizes) * len(followed)  # every checkpoint of every size
    assert v["n_followed"] == len(followed) and v["n_sizes"] == len(sizes)
    # images seen at each checkpoint: the epoch times the smallest subset's repeated epoch
    per_epoch = math.ceil(QUICK["sweep_epoch_images"] / min(sizes)) * min(sizes)
    assert v["checkpoints_text"] == ", ".join(f"{e * per_epoch:,}" for e in followed)
    # the correlations: descriptive, with permutation p-values, Holm over those that can reach
    # 0.05 (a series of n checkpoints, exact up to 9: its smallest p is 2/n!)
    long_n = len({*QUICK["long_snapshots"], QUICK["long_epochs"]})
    across_n = len(sizes) * len(followed)
    can_reach = {"rho_long": math.factorial(long_n) >= 40, "rho": math.factorial(across_n) >= 40}
    assert v["n_family"] == sum(can_reach.values())
    for name, reachable in can_reach.items():
        assert -1 <= v[name] <= 1 and 0 < v[f"{name}_p"] <= 1
        if not reachable:
            assert v[f"{name}_verdict"].startswith("untestable"), name
            continue
        holm = float(v[f"{name}_holm"])
        assert v[f"{name}_p"] <= holm <= min(1.0, v["n_family"] * v[f"{name}_p"]) + 1e-12
        direction = "negative, as in the paper" if v[name] < 0 else "positive, against the paper"
        assert v[f"{name}_verdict"] == (
            direction if holm <= 0.05 else "not distinguishable from 0"
        )
    # what the probes' tests could see
    assert v["n_probed"] == v["n_checkpoints"] + long_n - v["n_identical"]  # each counted once
    assert 0 <= v["n_blind"] <= v["n_tested"] <= v["n_probed"]
    assert v["familywise"] == pytest.approx(100 * (1 - (1 - 0.00135) ** v["n_probed"]))
    # the long run's turn: the last checkpoint above the lowest, re-chosen in every resample
    assert v["turned"] == int(v["turn_lower"] > 0)
    assert v["turn_reading"].endswith("a turn is not established") != bool(v["turned"])
    # where the distance is lowest, read off the values it quotes
    at_end = v["long_fd_best_seen"] == v["long_max_seen"]
    assert (v["long_fd_reading"] == "it is lowest at the end of the budget") == at_end
    assert v["n_stopping"] == len(sizes) + 1  # chapter 7's networks and the long run
    assert 0 <= v["n_signal"] <= v["n_stopping"] and 0 <= v["match_unimodal"] <= v["n_signal"]
    assert 0 <= v["match_peak"] <= v["n_stopping"]
    assert len(v["rho_within"].split(", ")) == len(sizes)
    assert v["n_samples"] == QUICK["dynamics_samples"]
    assert v["probe_test"] == QUICK["dynamics_test_images"]
    assert v["probe_fixed"] == QUICK["probe_fixed_images"]
    # the checkpoints whose samples are shown: chapter 7's, at both ends of the Frechet distance
    assert v["fd_max"] >= v["fd_min"] > 0 and v["n_show"] >= 1
    for which in ("max", "min"):
        assert v[f"fd_{which}_size"] in sizes and 0 <= v[f"fd_{which}_score"] <= 100
        n = v[f"fd_{which}_size"]
        seen = {e * math.ceil(QUICK["sweep_epoch_images"] / n) * n for e in followed}
        assert v[f"fd_{which}_seen"] in seen, which
    # the long run: its own budget and checkpoints, and the readings that follow from them
    long_size, long_epochs = QUICK["long_size"], QUICK["long_epochs"]
    assert v["long_followed"] == len({*QUICK["long_snapshots"], long_epochs})
    per_epoch = math.ceil(QUICK["sweep_epoch_images"] / long_size) * long_size
    assert v["long_max_seen"] == long_epochs * per_epoch
    assert len(v["long_shapes"].split(", ")) == v["long_followed"]
    assert set(v["long_shapes"].split(", ")) <= {*stats.VERDICTS, inference.UNTESTED}
    assert 0 <= v["long_copies_first"] <= 100 and 0 <= v["long_copies_last"] <= 100
    assert v["long_max_seen"] > v["max_seen"]  # longer than chapter 7's networks
    # the long run repeats chapter 7's network of its size up to chapter 7's last epoch: on
    # one machine bitwise, so every shared checkpoint is recognized (and not assessed again)
    shared = {*QUICK["long_snapshots"], long_epochs} & {*QUICK["sweep_snapshots"], epochs}
    assert v["n_shared"] == (len(shared) if long_size in sizes else 0)
    assert 0 <= v["n_identical"] <= v["n_shared"]
    cache = (
        "every network came from the cache",
        "missing networks were trained first, within that time",
    )
    assert v["cache_reading"] in cache
    assert v["long_train_minutes"] >= 0  # 0 when the last call only saved a resumed run
    # the ICR at every long-run checkpoint: the ridge's floor tau / (1 + tau), chapter 9's middle
    # level, and a permutation p no smaller than the exact test's 2 / n! (n <= 9)
    assert v["icr_checkpoints"] == long_n
    assert v["dynamics_icr_items"] == QUICK["dynamics_icr_items"]
    assert v["icr_views_used"] == QUICK["icr_views"]
    assert v["icr_floor"] == pytest.approx(DEFAULT_TAU / (1 + DEFAULT_TAU), rel=1e-12)
    assert 0 <= v["icr_at_floor"] <= long_n
    assert v["icr_mid_sigma"] == pytest.approx(0.585, abs=0.01)
    assert v["icr_floor"] < min(v["icr_mid_first"], v["icr_mid_last"]) < 1
    assert -1 <= v["icr_rho"] <= 1 and 2 / math.factorial(long_n) <= v["icr_rho_p"] <= 1


def _check_09(v):
    assert v["probe_images"] == QUICK["variant_probe_images"]  # the profile reached the notebook
    assert v["n_networks"] == 3 + len(QUICK["variants"])  # chapter 5's three, one per variant
    named = [] if v["unimodal_networks"] == "none" else v["unimodal_networks"].split("; ")
    assert v["n_unimodal"] == len(named)  # the count is of the networks the page names
    # the EMA keeps d^n of the initialization after n steps: ceil(N / batch) steps per epoch
    steps = math.ceil(QUICK["unet_train_images"] / 128)
    assert v["init_share"] == pytest.approx(0.999 ** (QUICK["early_epoch"] * steps), rel=1e-12)
    assert v["init_share_final"] == pytest.approx(
        0.999 ** (QUICK["unet_epochs"] * steps), rel=1e-12
    )
    for key in ("debias_small", "debias_mid"):
        assert math.isfinite(v[key]) and v[f"{key}_se"] > 0, key
    grid = schedules.edm_probe_sigmas().tolist()
    for key in ("mid_sigma", "top_rise_sigma"):
        assert min(abs(v[key] - s) for s in grid) < 1e-12, key
    # the paired bound of a curve is at least its rise at any level, the cross-fitted peak's too,
    # and at least 0 (the first level against itself)
    assert v["top_bound"] >= max(v["top_rise_points"], 0.0) - 1e-9
    row = paper.TABLE9["CIFAR-10", "logistic"].values
    assert v["paper_c10_rise"] == pytest.approx(max(row) - row[0], abs=1e-5)
    # chapter 5's network at the quick profile: UNetDenoiser.small(16, 1, (32, 64))
    assert v["edm_ratio"] == pytest.approx(paper.EDM_CIFAR10_PARAMETERS / 651_041, rel=1e-12)
    # every block (5) under the global average, and under the spatial readout if one is named
    grid = QUICK["variant_readout_grid"]
    assert v["n_readouts"] == (10 if grid else 5)
    assert v["readout_grid"] == (grid.replace("x", " x ") if grid else "none")
    one_sided = 0.5 * math.erfc(3 / math.sqrt(2))  # the shape test's false rate at z = 3
    assert v["readouts_familywise"] == pytest.approx(
        100 * (1 - (1 - one_sided) ** v["n_readouts"]), rel=1e-12
    )
    # the tests' reading counts every network's chosen curve once: untested plus tested, and
    # the underpowered among the tested
    untested, tested, blind = chapter9_counts(v["tests_reading"], v["n_networks"])
    assert untested + tested == v["n_networks"] and blind <= tested


def chapter9_counts(reading: str, networks: int) -> tuple[int, int, int]:
    """Chapter 9's tests' reading as (untested, tested, underpowered) curves, in each of its
    wordings; an AssertionError names a reading of another form."""
    head = re.match(rf"(\d+) of the {networks} chosen curves peaks? at σ = 0.002 itself, so no "
                    r"rise was tested there(.*)$", reading)  # fmt: skip
    assert head, reading
    untested, rest = int(head[1]), head[2]
    if not rest:
        return untested, 0, 0
    some = re.fullmatch(r"; of the other (\d+), (\d+) had less than 80% power against .*", rest)
    if some:
        return untested, int(some[1]), int(some[2])
    every = re.fullmatch(
        r"; (the other one|all (\d+)(?: others)?) had (at least|less than) 80% power against .*",
        rest,
    )
    assert every, reading
    tested = 1 if every[2] is None else int(every[2])
    return untested, tested, tested if every[3] == "less than" else 0


def test_chapter9_counts_reads_every_wording_of_its_tests_reading():
    head = "{} of the 6 chosen curves peak at σ = 0.002 itself, so no rise was tested there"
    tail = " against the paper's 1.48 points"
    cases = {
        head.format(6): (6, 0, 0),
        head.format(3) + "; all 3 others had at least 80% power" + tail: (3, 3, 0),
        head.format(2) + "; all 4 others had less than 80% power" + tail: (2, 4, 4),
        head.format(2) + "; of the other 4, 1 had less than 80% power" + tail: (2, 4, 1),
        head.format(5) + "; the other one had at least 80% power" + tail: (5, 1, 0),
        head.format(0) + "; all 6 had less than 80% power" + tail: (0, 6, 6),
    }
    for reading, counts in cases.items():
        assert chapter9_counts(reading, 6) == counts, reading
    with pytest.raises(AssertionError):
        chapter9_counts(head.format(3) + "; 0 had less than 80% power" + tail, 6)


def _check_10(v):
    deltas = QUICK["deltas"]
    replicated = {0.0, QUICK["compared_delta"]}
    seeds = QUICK["replicate_seeds"]
    assert v["n_networks"] == sum(seeds if d in replicated else 1 for d in deltas)
    assert v["replicate_seeds"] == seeds and v["mechanism_epochs"] == QUICK["mechanism_epochs"]
    assert v["probe_train"] == QUICK["probe_train_images"]
    assert v["probe_test"] == QUICK["mechanism_test_images"]
    assert v["train_images"] == QUICK["unet_train_images"]
    blocks = v["probed_list"].split(", ")
    assert blocks == QUICK["probed_blocks"] and v["n_blocks"] == len(blocks)
    assert v["n_curves"] == v["n_networks"] * v["n_blocks"]  # one curve per block and network
    assert 0 <= v["n_unimodal"] <= v["n_curves"]
    grew = [] if v["blocks_grew"] == "none" else v["blocks_grew"].split(", ")
    assert v["n_grew"] == len(grew) and set(grew) <= set(blocks)
    assert v["top_low"] <= v["top_diff"] <= v["top_high"]
    assert (v["top_high"] - v["top_low"]) / 2 <= v["widest_half"] + 1e-9
    # the exact test of seeds + seeds networks: C(2 seeds, seeds) splits, smallest p 2 / splits,
    # times the number of blocks for Holm's smallest
    assert v["splits"] == math.comb(2 * seeds, seeds)
    assert v["smallest_holm"] == pytest.approx(min(1.0, v["n_blocks"] * 2 / v["splits"]))
    if v["smallest_holm"] > 0.05:  # then no block can be shown to change
        assert v["n_grew"] == 0 and v["blocks_shrank"] == "none"
        assert v["change_reading"] == "no change shown in any block"
    assert v["n_untested"] + v["n_unimodal"] + v["n_decreasing"] <= v["n_curves"]
    assert 0 <= v["n_powered"] <= v["n_curves"] - v["n_untested"]
    # the union bound over every curve tested: each network's blocks, the untrained twins'
    # blocks at the two compared deltas, and the pixels at every delta
    tested = v["n_curves"] + 2 * v["n_blocks"] + len(deltas)
    assert v["familywise"] == pytest.approx(100 * min(1.0, 0.00135 * tested), abs=1e-9)
    # the MoLRG's SNR at sigma -> 0 is 1 / ((K - 1) delta^2) (snr_limits): its peak cannot be
    # below the start, and the chapter's first and last delta are the profile's positive ones
    positive = [d for d in deltas if d > 0]
    assert v["theory_first_delta"] == min(positive) and v["theory_last_delta"] == max(positive)
    assert v["theory_ratio_first"] >= v["theory_ratio_last"] >= 1


def _check_11(v):
    levels, deltas = QUICK["map_levels"], QUICK["map_deltas"]
    slices = len(QUICK["map_angles"]) + len(QUICK["map_rank_spreads"]) + len(QUICK["map_pi_first"])
    mixtures = (len(QUICK["map_classes"]) + slices) * len(deltas)
    assert v["map_mixtures"] == mixtures and v["map_curves"] == 2 * mixtures
    # Bonferroni over every step of every Bayes curve, one-sided at 95%, from the normal law
    steps = mixtures * (levels - 1)
    assert v["bayes_steps"] == steps
    assert v["bayes_bar"] == pytest.approx(NormalDist().inv_cdf(1 - 0.05 / steps), rel=1e-12)
    assert v["bayes_worst"] < v["bayes_bar"]  # data processing: no step up anywhere
    # z = 3 one-sided per verdict, independent verdicts
    per_curve = 1 - NormalDist().cdf(3)
    expected = 100 * (1 - (1 - per_curve) ** (2 * mixtures))
    assert v["map_false_rate"] == pytest.approx(expected, rel=1e-9)
    # sigma = 0.01 on the Fig. 3 MoLRG: the own-subspace energy (chi^2_5, unit scale) against
    # another class's (delta^2 chi^2_5 = 0.04 chi^2_5) almost never ties, so the Bayes call is
    # right nearly always; a linear probe on zero-mean classes sits between chance and 50%
    assert v["bayes_first"] > 99
    assert 100 / 3 - 5 < v["probe_h_first"] < 50
    # Theorem 1's error on Assumption 1's mixtures at delta = 0.2 exceeds 100% (chapter 3)
    assert v["map_theorem_worst"] > 1
    # the ICR's dip test: one-sided 95%, Bonferroni over the levels below the first
    assert v["icr_dip_z"] == pytest.approx(NormalDist().inv_cdf(1 - 0.05 / (levels - 1)))


CHECKS = {
    "01_data_model": _check_01,
    "02_proposition_1": _check_02,
    "03_theorem_1": _check_03,
    "04_molrg_experiments": _check_04,
    "05_real_data": _check_05,
    "06_ensembles_and_daes": _check_06,
    "07_memorization_vs_generalization": _check_07,
    "08_training_dynamics": _check_08,
    "09_what_changes_the_curve": _check_09,
    "10_mechanism_on_real_images": _check_10,
    "11_where_unimodality_lives": _check_11,
}


def glued(path: Path) -> dict:
    """Values glued with ``myst_nb.glue`` in an executed notebook: numbers and strings parsed
    from their repr; anything else (tables, figures) as its text/plain."""
    values = {}
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []):
            record = out.get("metadata", {}).get("scrapbook", {})
            if "name" in record:
                text = out["data"][record["mime_prefix"] + "text/plain"]
                try:
                    values[record["name"]] = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    values[record["name"]] = text
    return values


def test_glued_parses_numbers(tmp_path):
    nb = nbformat.v4.new_notebook()
    prefix = "application/papermill.record/"
    nb.cells = [nbformat.v4.new_code_cell(outputs=[
        nbformat.v4.new_output("display_data", data={prefix + "text/plain": text},
                               metadata={"scrapbook": {"name": name, "mime_prefix": prefix}})
        for name, text in (("x", "0.0123"), ("n", "20000"), ("s", "'unimodal'"), ("t", "<T>"))
    ])]  # fmt: skip
    nbformat.write(nb, tmp_path / "a.ipynb")
    assert glued(tmp_path / "a.ipynb") == {"x": 0.0123, "n": 20000, "s": "unimodal", "t": "<T>"}


@pytest.mark.parametrize(
    "path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem
)
def test_notebook_runs_at_quick_profile_and_numbers_hold(path):
    assert path.stem in CHECKS, f"add the checks of {path.name} to CHECKS"
    (record,) = [r for r in book.execute([path], "quick", OUT) if r["notebook"] == path.stem]
    assert record["status"] == "ok"
    CHECKS[path.stem](glued(OUT / path.name))
