"""tools/regression.py and tools/nbval_tolerant.py: results cells compared exactly on the
reference's platform and within seed-measured tolerances elsewhere; lowrank.provenance'
platform record that decides which."""

from types import SimpleNamespace

import nbformat

from lowrank import provenance
from tools import book, nbval_tolerant

PLATFORM_A = {"cpu": "AMD EPYC (family 25, model 17)", "isa": "avx512f", "torch": "2.13.0+cpu"}


PLATFORM_B = {**PLATFORM_A, "cpu": "Intel(R) Xeon(R) Platinum 8481C (family 6, model 143)"}


def _fake_cell(reference_platform, chapter="05_real_data"):
    return SimpleNamespace(
        cell=SimpleNamespace(metadata={"tags": [book.RESULTS]}),
        parent=SimpleNamespace(
            nb=nbformat.v4.new_notebook(metadata={book.PLATFORM_KEY: reference_platform}),
            fspath=f"/tmp/{chapter}.ipynb",
        ),
        comparison_traceback=[],
    )


def _stream(text):
    return [{"output_type": "stream", "name": "stdout", "text": text}]


def test_nbval_plugin_compares_the_results_cell_tolerantly_on_another_platform(monkeypatch):
    monkeypatch.setenv("NBVAL_TOLERANCES", "")  # no measured tolerances: the last digit only
    cell = _fake_cell(PLATFORM_B)
    assert nbval_tolerant.compare_outputs(cell, _stream("a = 3.913\n"), _stream("a = 3.914\n"))
    assert not nbval_tolerant.compare_outputs(cell, _stream("a = 3.92\n"), _stream("a = 3.913\n"))
    assert "a: reference 3.913, this run 3.92" in "\n".join(cell.comparison_traceback)


def test_nbval_plugin_is_exact_on_the_reference_platform(monkeypatch):
    cell = _fake_cell(provenance.platform_record())
    calls = []
    monkeypatch.setattr(nbval_tolerant, "_nbval_compare", lambda *args: calls.append(args) or 7)
    assert nbval_tolerant.compare_outputs(cell, _stream("a = 1\n"), _stream("a = 1\n")) == 7
    assert len(calls) == 1
