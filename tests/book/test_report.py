"""lowrank.book.report: tables, gaps, verdicts, glue and the results cell, with its bad-input
table."""

import numpy as np
import pandas as pd
import pytest
import torch

from lowrank.book import report
from tests.bad_input_cases import check_case


def test_compare_frame_columns_and_gaps():
    frame = report.compare_frame([0.1, 0.5], torch.tensor([10.0, 2.2]), [8.0, 2.0], [0.1, 0.05])
    assert list(frame.columns) == ["σ", "paper", "ours", "±", "gap"]
    np.testing.assert_allclose(frame["gap"], [0.25, 0.1], rtol=1e-6)  # 2.2 in float32
    assert list(report.compare_frame([0.1], [1.0]).columns) == ["σ", "ours"]  # nothing empty
    with pytest.raises(ValueError, match="same length"):
        report.compare_frame([0.1, 0.2], [1.0])
    html = report.styled(frame).to_html()
    assert "+25.0%" in html and "0.100" in html and "10.00" in html
    # accuracies in percent: the gap in points, signed, with one decimal
    accuracy = report.compare_frame([0.1, 0.5], [91.5, 60.0], [90.0, 62.5], points=True)
    assert list(accuracy.columns) == ["σ", "paper", "ours", "gap (points)"]
    np.testing.assert_allclose(accuracy["gap (points)"], [1.5, -2.5], rtol=1e-12)
    html = report.styled(accuracy).to_html()
    assert "+1.5" in html and "-2.5" in html and "%" not in html
    with pytest.raises(ValueError, match="pass paper"):
        report.compare_frame([0.1], [91.5], points=True)


def test_agreement_and_gaps():
    ours, ref = [1.02, 2.0], [1.0, 2.0]
    assert report.worst_gap(ours, ref) == pytest.approx(0.02)
    assert report.within(ours, ref, 0.03) and not report.within(ours, ref, 0.01)
    assert report.within(ours, ref, 0.01, stderr=[0.01, 0.0])  # 3 standard errors of slack
    assert report.agreement_verdict(ours, ref, 0.03) == "reproduced (within 3%)"
    assert report.agreement_verdict(ours, ref, 0.01) == "not reproduced (worst gap 2%)"


def test_monotone_decreasing_and_peak():
    assert report.monotone_decreasing([3.0, 2.0, 1.0])
    assert not report.monotone_decreasing([3.0, 2.0, 2.5])
    assert report.monotone_decreasing([3.0, 2.0, 2.1], [0.1, 0.1, 0.1])  # within noise
    assert report.peak([0.1, 0.3, 1.0], [1.0, 5.0, 2.0]) == (0.3, 5.0)


def test_styled_two_level_columns():
    frame = pd.concat(
        {"class 0": report.compare_frame([0.1], [2.0], [1.0]).set_index("σ")}, axis=1
    ).reset_index()
    html = report.styled(frame).to_html()
    assert 'class="dataframe"' in html and "0.100" in html and "+100.0%" in html


def test_styled_leaves_integers_and_booleans_alone():
    frame = pd.DataFrame({"n": [35], "ok": [True], "x": [0.5]})
    html = report.styled(frame).to_html()
    assert ">35<" in html and ">True<" in html and ">0.50<" in html


def test_results_prints_what_glue_recorded_rounded_without_volatile_names(monkeypatch):
    from lowrank.book import report

    monkeypatch.setattr(report, "RECORDED", {})
    shown = []
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=True: shown.append(name))
    report.glue("acc_peak", torch.tensor(0.823456789), display=False)
    report.glue("verdict", "decreasing", display=False)
    report.glue("n_images", 5000, display=False)
    report.glue("residual", 3.9e-15, display=False)
    report.glue("chapter_minutes", 18.2, display=False)  # a wall time: not a result
    report.glue("table", object(), display=False)  # neither a number nor a text
    assert shown == ["acc_peak", "verdict", "n_images", "residual", "chapter_minutes", "table"]
    assert report.results() == (
        "acc_peak = 0.8235\nverdict = decreasing\nn_images = 5000\nresidual < 1e-10"
    )


BAD_INPUT = {
    "within with NaN in ours": (
        lambda t: report.within([1.0, float("nan")], [1.0, 1.0], 0.1),
        (ValueError, "ours must be non-empty and finite"),
    ),
    "within of different lengths": (
        lambda t: report.within([1.0, 2.0], [1.0, 2.0, 3.0], 0.1),
        (ValueError, "one length"),
    ),
    "within with a negative tolerance": (
        lambda t: report.within([1.0], [1.0], -0.1),
        (ValueError, "rel_tol must lie in [0.0, None]"),
    ),
    "verdict with a negative stderr": (
        lambda t: report.agreement_verdict([1.0], [1.0], 0.1, stderr=[-1.0]),
        (ValueError, "stderr must be >= 0"),
    ),
    "peak with NaN": (
        lambda t: report.peak([0.1, 0.2], [float("nan"), 1.0]),
        (ValueError, "values must be non-empty and finite"),
    ),
    "peak of different lengths": (
        lambda t: report.peak([0.1, 0.2, 0.3], [1.0, 2.0]),
        (ValueError, "one length"),
    ),
    "monotone with NaN": (
        lambda t: report.monotone_decreasing([3.0, float("nan"), 1.0]),
        (ValueError, "finite"),
    ),
    "glue under a complex key": (
        lambda t: report.glue(1j, 1.0, display=False),
        (TypeError, "glue's name must be a key"),
    ),
    "glue under a key with a space": (
        lambda t: report.glue("peak sigma", 1.0, display=False),
        (TypeError, "glue's name must be a key"),
    ),
}


@pytest.mark.parametrize("name", BAD_INPUT)
def test_bad_input(name, tmp_path):
    check_case(name, *BAD_INPUT[name], tmp_path)


def test_lead_table_puts_each_lead_with_its_simultaneous_interval_in_its_cell():
    from lowrank.experiments.network_probe import leads

    gen = torch.Generator().manual_seed(0)
    pixels = torch.rand(3, 200, generator=gen) < 0.6
    scores = {"a": pixels | (torch.rand(3, 200, generator=gen) < 0.3), "b": pixels.roll(1, 1)}
    family = leads(scores, {"noisy pixels": pixels}, {"a": 0, "b": 2})
    table = report.lead_table(family)
    assert list(table.index) == ["a", "b"]
    assert list(table.columns) == ["noisy pixels, σ = 0.002", "noisy pixels, its peak"]
    lead = family[2]  # b at its peak, level 2
    d, joint = lead.difference, lead.simultaneous
    expected = f"{100 * d.mean:+.1f} [{100 * joint.low:+.1f}, {100 * joint.high:+.1f}]"
    assert table.loc["b", "noisy pixels, its peak"] == expected
    assert table.loc["a", "noisy pixels, its peak"] == "peak at σ = 0.002"


def test_p_text_prints_three_decimals_or_below_a_thousandth():
    assert report.p_text(0.0496) == "0.050" and report.p_text(0.001) == "0.001"
    assert report.p_text(1 / 20_001) == "< 0.001" and report.p_text(2 / 40_320) == "< 0.001"
    with pytest.raises(ValueError, match="p"):
        report.p_text(1.5)


def test_interval_text_writes_a_value_with_its_interval():
    assert report.interval_text(0.00101, 0.000944, 0.00109) == "0.00101 [0.000944, 0.00109]"
    assert report.interval_text(torch.tensor(1.5), 1.25, 2, ".2f") == "1.50 [1.25, 2.00]"
