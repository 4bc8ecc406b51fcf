"""The regression comparison of ``make test``, without a second execution: the results cell of
every chapter executed by the notebook tests (``_build/executed/quick``, at the quick profile;
``--executed DIR`` names another folder, as ``make nbval-results EXECUTED=DIR`` does) against its
reference in ``tests/nbval/quick``, through nbval's sanitizers. Exactly where the run and the
reference recorded the same platform, within the tolerances measured over seeds
(``tests/nbval/tolerances.json``) elsewhere (``tools/regression.py``). ``make nbval`` runs nbval
itself on the references, which executes them again, under the same rules.
"""

import json
import re
from pathlib import Path

import nbformat
import pytest

from tools import book, regression

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EXECUTED = ROOT / "_build" / "executed" / "quick"
REFERENCES = regression.REFERENCES
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def executed_folder(config) -> Path:
    return Path(config.getoption("--executed") or DEFAULT_EXECUTED)


def pytest_generate_tests(metafunc):
    if "executed" not in metafunc.fixturenames:
        return
    folder = executed_folder(metafunc.config)
    if metafunc.config.getoption("--executed"):  # the chapters that folder holds
        paths = regression.executed_notebooks(folder)
        if not paths:
            raise pytest.UsageError(f"--executed {folder}: holds no executed notebook (*.ipynb)")
    else:  # make test: every chapter, executed by make unit
        paths = [folder / c.name for c in CHAPTERS]
    metafunc.parametrize("executed", paths, ids=lambda p: p.stem)


def test_sanitizers_replace_what_is_volatile():
    assert (
        regression.sanitized("took 12.5 s at 0x7f3a, table T_1a2b3")
        == "took TIME at 0xADDRESS, table T_ID"
    )


def test_every_chapter_has_a_reference():
    assert sorted(p.name for p in REFERENCES.glob("*.ipynb")) == [p.name for p in CHAPTERS]


def test_every_reference_records_its_platform():
    for path in sorted(REFERENCES.glob("*.ipynb")):
        platform = regression.platform_of(nbformat.read(path, as_version=4))
        assert platform and platform["cpu"] and platform["torch"], path.name


def test_tolerances_cover_every_result_of_the_references():
    """Each result a reference prints has its seeds' values: a result glued since the seeds were
    run would be compared to the last digit on another platform (rerun the seeds of its chapter:
    make nbval-tolerances CHAPTERS=...)."""
    tolerances = regression.load_tolerances()
    data = json.loads(regression.TOLERANCES.read_text())
    for path in sorted(REFERENCES.glob("*.ipynb")):
        text = book.results_text(nbformat.read(path, as_version=4))
        names = regression.parse_results(regression.sanitized(text)).keys()
        assert path.stem in tolerances, f"{path.stem}: no tolerances measured"
        missing = names - tolerances[path.stem].keys()
        assert not missing, f"{path.stem}: no tolerance for {sorted(missing)}"
        assert len(set(data["chapters"][path.stem]["seeds"])) >= 4, path.stem  # seed 0 and 3 more


def test_references_print_no_wall_time():
    """A results line is compared across machines, so a wall time (a glued name that
    :data:`lowrank.book.report.VOLATILE` does not catch) would fail on a faster CPU."""
    wall_time = re.compile(r"\bran in\b|\d ?(minutes?|seconds?|h)\b|TIME")
    for path in sorted(REFERENCES.glob("*.ipynb")):
        text = book.results_text(nbformat.read(path, as_version=4))
        values = regression.parse_results(regression.sanitized(text))
        timed = sorted(name for name, value in values.items() if wall_time.search(value))
        assert not timed, f"{path.stem}: {timed} print a wall time; name them as VOLATILE matches"


def test_results_match_the_quick_reference(executed):
    try:
        comparison = regression.compare_chapter(
            executed, REFERENCES / executed.name, regression.load_tolerances().get(executed.stem)
        )
    except (FileNotFoundError, ValueError) as error:
        pytest.fail(str(error), pytrace=False)
    if not comparison.ok:
        pytest.fail(
            comparison.report() + "\nIf the change is intended, regenerate the references "
            "(make nbval-references) and commit them.",
            pytrace=False,
        )
