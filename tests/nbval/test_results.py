"""The nbval comparison of ``make test``, without a second execution: the results cell of every
chapter executed by the notebook tests (``_build/executed/quick``, at the quick profile) against
its reference in ``tests/nbval/quick``, through the sanitizers nbval uses
(``tests/nbval_sanitize.cfg``). ``make nbval`` runs nbval itself on the references, which
executes them again; this test reads what ``make unit`` already executed.
"""

import difflib
import re
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

from tools import book

ROOT = Path(__file__).resolve().parents[2]
EXECUTED = ROOT / "_build" / "executed" / "quick"
REFERENCES = Path(__file__).resolve().parent / "quick"
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PATTERNS = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text())


def sanitized(text: str) -> str:
    for regex, replace in PATTERNS:
        text = re.sub(regex, replace, text)
    return text


def results_of(path: Path) -> str:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make unit` first (it executes every chapter)")
    text = book.results_text(nbformat.read(path, as_version=4))
    if text is None:
        pytest.fail(f"{path} has no results cell: execute it with tools/book.py")
    if not text:
        pytest.fail(f"{path}: its results cell printed nothing (did an earlier cell fail?)")
    return sanitized(text)


def test_sanitizers_replace_what_is_volatile():
    assert (
        sanitized("took 12.5 s at 0x7f3a, table T_1a2b3") == "took TIME at 0xADDRESS, table T_ID"
    )


def test_every_chapter_has_a_reference():
    assert sorted(p.name for p in REFERENCES.glob("*.ipynb")) == [p.name for p in CHAPTERS]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_results_match_the_quick_reference(chapter):
    ours, reference = results_of(EXECUTED / chapter.name), results_of(REFERENCES / chapter.name)
    if ours != reference:
        diff = difflib.unified_diff(
            reference.splitlines(), ours.splitlines(), "reference", "this run", lineterm=""
        )
        pytest.fail(
            f"{chapter.name}: results differ from the reference. If the change is intended, "
            "regenerate the references (make nbval-references) and commit them.\n"
            + "\n".join(diff),
            pytrace=False,
        )
