"""tools/results.py: the "What reproduces" table, read from the chapters' glue outputs."""

import nbformat
import pytest

from lowrank.book import paper
from tools import results


def _glue_output(name, value):
    return nbformat.v4.new_output(
        "display_data",
        data={results.RECORD: repr(value), "text/plain": ""},
        metadata={"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}},
    )


def _notebook(values: dict, extra=()):
    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = [_glue_output(k, v) for k, v in values.items()] + list(extra)
    return nbformat.v4.new_notebook(cells=[cell])


class _Fake(results.Glued):
    """Glued values given by chapter, without notebooks on disk."""

    def __init__(self, values):
        self.values, self.names = values, {c: f"{c:02d}_x" for c in values}
        self.executed = "(fake)"


def test_glued_values_reads_literals_and_skips_the_rest():
    styler = nbformat.v4.new_output(
        "display_data",
        data={results.RECORD: "<pandas.io.formats.style.Styler at 0x7f>"},
        metadata={"scrapbook": {"name": "table"}},
    )
    nb = _notebook({"acc": 81.75, "verdict": "decreasing", "n": 3}, extra=[styler])
    assert results.glued_values(nb) == {"acc": 81.75, "verdict": "decreasing", "n": 3}


def test_missing_chapters_and_keys_name_the_fix(tmp_path):
    nbformat.write(_notebook({"acc": 1.0}), tmp_path / "05_real_data.ipynb")
    g = results.Glued(tmp_path)
    assert g(5, "acc") == 1.0 and g.link(5) == "{doc}`chapter 5 <../notebooks/05_real_data>`"
    with pytest.raises(KeyError, match="05_real_data.ipynb glued no 'gap'"):
        g(5, "gap")
    with pytest.raises(FileNotFoundError, match="chapter 03 is not among"):
        g(3, "x")


def test_rows_compute_gaps_and_verdicts_from_the_glued_values():
    g = _Fake(
        {
            3: {"exact_peak_sigma": 0.32, "approx_peak_sigma": 0.56, "thm1_worst_rel_error": 5.0},
            5: {"acc_peak": 81.8, "acc_first": 82.0, "paper_c10_rise": 1.5,
                "acc_peak_sigma": 0.002, "snr_peak_sigma": 0.0020001, "peaks_reading": "x"},
            6: {"gain_growth": 4.5, "gain_growth_half": 0.5, "ensemble_verdict": "gains at 80%"},
            10: {"n_blocks": 5, "change_reading": "no change shown in any block",
                 "widest_half": 0.7,
                 "design_reading": "Holm's smallest p is 0.14, so no block could be shown to "
                                   "change"},
        }
    )  # fmt: skip
    assert results.thm1_shape(g) == "peak σ +75%; SNR levels up to 500%"
    assert results.real_rise(g) == pytest.approx(-0.2)
    assert results.peaks(g).startswith("both at the low end of the grid")
    g.values[5]["acc_peak_sigma"] = 0.008
    assert results.peaks(g).startswith("both at the low end of the grid")
    g.values[5]["acc_peak_sigma"] = 0.023
    assert results.peaks(g) == "x"
    # the paired growth of the gain, 4.5 ± 0.5 points: held; 0.4 ± 0.5: not seen
    assert results.label_noise(g) == (
        "gains at 80% (jointly over the rates); larger gain at 80% than at 0% flipped: held "
        "(+4.50 ± 0.50 points, paired)"
    )
    g.values[6]["gain_growth"] = 0.4
    assert ": not seen (+0.40 ± 0.50 points, paired)" in results.label_noise(g)
    assert results.mechanism(g) == (
        "no change shown in any block (exact permutation test over networks, Holm over 5 blocks; "
        "Holm's smallest p is 0.14, so no block could be shown to change); the joint 95% "
        "intervals bound the change, the widest to ± 0.70 points"
    )


def test_the_icr_row_places_the_minimum_and_the_first_level_against_the_ridges_floor():
    g = _Fake({5: {"icr_levels_from_peak": 0, "icr_min_sigma": 0.002,
                   "icr_first_over_floor": 1.0312, "icr_first_at_floor": True},
               8: {"icr_at_floor": 7, "icr_checkpoints": 8,
                   "icr_first_sigma": 0.002}})  # fmt: skip
    assert results.icr_reading(g) == (
        "not on the MoLRG's optimal denoiser; chapter 5's network: lowest at σ = 0.002, at the "
        "probe's level, and at σ = 0.002 it sits at the ridge's floor (1.03 times it); chapter "
        "8's long run: at σ = 0.002, 7 of 8 checkpoints sit at that floor (within 5%). At the "
        "floor the ICR measures the ridge, not the network"
    )
    g.values[5] |= {"icr_levels_from_peak": -3, "icr_min_sigma": 0.06,
                    "icr_first_over_floor": 8.0, "icr_first_at_floor": False}  # fmt: skip
    assert (
        "lowest at σ = 0.060, 3 levels below the probe's, and at σ = 0.002 it is 8.00 times "
        "the ridge's floor;" in results.icr_reading(g)
    )
    g.values[5]["icr_levels_from_peak"] = 1
    assert "1 level above the probe's," in results.icr_reading(g)


def test_the_pairing_row_counts_tested_sizes_and_says_what_the_largest_could_see():
    g = _Fake({7: {"n_agree": 0, "n_tested": 3, "untested_sizes": "16, 64", "size_largest": 4096,
                   "bound_largest": 0.28, "found_largest": 1.11, "n_excluded": 1,
                   "excluded_sizes": "64"}})  # fmt: skip
    assert results.pairing(g) == (
        "as predicted for 0 of the 3 sizes whose rise was tested (untested: 16, 64; of those, 64 "
        "excludes the paper's rise); at N = 4,096 the rise bound is 0.28 points, and a rise of "
        "1.11 points is found with 80% power"
    )
    g.values[7].update(untested_sizes="16, 4,096", n_excluded=0, n_tested=1)
    assert results.pairing(g) == (  # the largest untested: no power to report
        "as predicted for 0 of the 1 size whose rise was tested (untested: 16, 4,096); at N = "
        "4,096 the rise bound is 0.28 points"
    )


def test_the_table_has_one_row_per_claim_with_the_paper_values(monkeypatch):
    recorded = []

    def lookup(self, chapter, key):
        recorded.append((chapter, key))
        return "unimodal" if "verdict" in key or "shape" in key else 1.0

    monkeypatch.setattr(results.Glued, "__init__", lambda self, executed: None)
    monkeypatch.setattr(results.Glued, "__call__", lookup)
    monkeypatch.setattr(results.Glued, "link", lambda self, c: f"chapter {c}")
    table = results.results_table("unused")
    lines = table.strip().splitlines()
    assert len(lines) == 2 + len(results.ROWS)
    assert lines[1] == "|---|---|---|---|"
    assert all(line.count(" | ") == 3 for line in lines[:1] + lines[2:])  # four columns each
    assert all(line.startswith("| ") and "(chapter " in line for line in lines[2:])
    dae = next(line for line in lines if "multi-level DAE recovers" in line)
    low, high = paper.TABLE3_DAE_VS_DIFFUSION
    assert f"{low:.1f}%" in dae and f"{high:.1f}%" in dae and f"{1 - low:+.1f}" in dae
    assert {c for c, _ in recorded} == set(range(2, 12))


def test_the_projection_row_compares_rises_with_the_papers():
    g = _Fake({5: {"projection_first": 76.0, "projection_at_peak": 77.0}})
    row = paper.TABLE9["CIFAR-10", "projection"].values  # 86.95 ... 90.93
    assert results.projection_rise() == pytest.approx(max(row) - row[0])
    assert results.projection_gap(g) == pytest.approx(1.0 - (90.93 - 86.95))


def test_numpy_2_scalars_are_read_as_their_values_and_duplicates_are_refused(tmp_path):
    """numpy 2 glues np.float64(91.2) as its repr; a stale second notebook of one chapter
    would otherwise be taken silently (the sorted glob keeps the last)."""
    scalar = nbformat.v4.new_output(
        "display_data",
        data={results.RECORD: "np.float64(91.2)"},
        metadata={"scrapbook": {"name": "acc"}},
    )
    counted = nbformat.v4.new_output(
        "display_data", data={results.RECORD: "np.int64(3)"}, metadata={"scrapbook": {"name": "n"}}
    )
    assert results.glued_values(_notebook({}, extra=[scalar, counted])) == {"acc": 91.2, "n": 3}
    nbformat.write(_notebook({"acc": 1.0}), tmp_path / "05_real_data.ipynb")
    nbformat.write(_notebook({"acc": 2.0}), tmp_path / "05_real_data_old.ipynb")
    with pytest.raises(ValueError, match="two notebooks of chapter 05"):
        results.Glued(tmp_path)
