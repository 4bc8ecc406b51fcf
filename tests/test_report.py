import datetime

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch

from lowrank import paper, profiles, report
from tools import book


def test_compare_frame_columns_and_gaps():
    frame = report.compare_frame([0.1, 0.5], torch.tensor([10.0, 2.2]), [8.0, 2.0], [0.1, 0.05])
    assert list(frame.columns) == ["σ", "paper", "ours", "±", "gap"]
    np.testing.assert_allclose(frame["gap"], [0.25, 0.1], rtol=1e-6)  # 2.2 in float32
    assert list(report.compare_frame([0.1], [1.0]).columns) == ["σ", "ours"]  # nothing empty
    with pytest.raises(ValueError, match="same length"):
        report.compare_frame([0.1, 0.2], [1.0])
    html = report.styled(frame).to_html()
    assert "+25.0%" in html and "0.100" in html and "10.00" in html


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


def test_paper_values_are_consistent():
    for table in (*paper.TABLE4.values(), *paper.TABLE5.values(), *paper.TABLE6.values(),
                  paper.TABLE7_ACCURACY, paper.TABLE7_SNR, *paper.TABLE9.values()):  # fmt: skip
        assert table.sigmas is not None and len(table) == len(table.sigmas)
        assert table.where.startswith("Table")
    assert paper.TABLE4["orthogonal"][4] == 58.27 and list(paper.TABLE7_SNR)[-1] == 0.297
    with pytest.raises(ValueError, match="2 values, 1 sigmas"):
        paper.PaperValues((1.0, 2.0), "Table x", (0.1,))


def test_banner_names_profile_commit_date_device():
    when = datetime.datetime(2026, 1, 2, 3, 4, tzinfo=datetime.UTC)
    line = profiles.banner("standard", 0, now=when)
    env = profiles.environment()
    assert "profile `standard`" in line and "2026-01-02 03:04 UTC" in line
    assert f"commit `{env['git']}`" in line and env["device"] in line


def test_for_the_page_removes_injected_parameters():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("seed = 1", metadata={"tags": ["injected-parameters"]}),
    ]
    page = book.for_the_page(nb)
    assert page.cells[1].metadata["tags"] == ["injected-parameters", "remove-cell"]
    assert "remove-cell" not in page.cells[0].metadata["tags"]
    assert nb.cells[1].metadata["tags"] == ["injected-parameters"]  # the input is not changed


def test_the_page_shows_the_parameter_values_it_ran_with():
    defaults = (
        'profile: str = "quick"  # quick | standard | full\n'
        "unet_epochs: int = 2  # UNet training epochs\n"
        "unet_channels: list = [32, 64]  # widths\n"
        'pretrained: str = ""  # a folder ("": train)\n'
        "sizes: list = [16, 64]  # one network per size, as many as the profile's list holds\n"
        "seed: int = 0"
    )
    injected = (
        '# Parameters\nunet_epochs = 6\nunet_channels = [64, 128]\nprofile = "standard"\n'
        "sizes = [16, 64, 256, 1024, 4096]\n"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(defaults, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(injected, metadata={"tags": ["injected-parameters"]}),
    ]
    shown = book.for_the_page(nb, "05_real_data").cells[0].source.splitlines()
    assert shown == [
        "# This page ran with the standard profile (notebooks/params/standard.yaml); the",
        "# notebook's own defaults, which a run by hand takes, are the quick profile's. Change",
        "# them with: make nb-05_real_data PROFILE=... or papermill -p name value",
        'profile: str = "standard"  # quick | standard | full',
        "unet_epochs: int = 6  # UNet training epochs",
        "unet_channels: list = [64, 128]  # widths",
        'pretrained: str = ""  # a folder ("": train)',  # not injected: the default stays
        # the longer value would push the line past 99 characters: its comment goes above it
        "# one network per size, as many as the profile's list holds",
        "sizes: list = [16, 64, 256, 1024, 4096]",
        "seed: int = 0",
    ]
    assert nb.cells[0].source == defaults  # the input is not changed
    # the longest chapter name keeps the header within the line length
    header = book.for_the_page(nb, "07_memorization_vs_generalization").cells[0].source
    assert max(len(line) for line in header.splitlines()) <= book.LINE_LENGTH
    # without an injected cell (a notebook run by hand) the cell is left as it is
    del nb.cells[1]
    assert book.for_the_page(nb).cells[0].source == defaults


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
    from lowrank import report

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
