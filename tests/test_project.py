"""Meta-checks on the project's files: pins agree, notebooks are normalized and well formed."""

import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from tools import book

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _pins(requirements):
    return dict(r.replace(" ", "").split("==", 1) for r in requirements if "==" in r)


def _pyproject_pins() -> dict:
    """Pins of pyproject.toml: the dependencies and every extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _pins(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted.update(_pins(extra))
    return wanted


def test_environment_yml_agrees_with_pyproject():
    wanted = _pyproject_pins()
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == wanted
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python == "python=3.11"


def test_lock_file_agrees_with_pyproject():
    wanted = _pyproject_pins()
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    locked = {k.lower(): v for k, v in _pins(l for l in lines if not l.startswith("#")).items()}
    for name, version in wanted.items():
        assert locked.get(name.lower()) == version, name


def test_profiles_define_the_same_parameter_names():
    keys = {p: set(book.load_profile(p)) for p in book.PROFILES}
    assert keys["quick"] == keys["standard"] == keys["full"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure_and_quick_defaults(path):
    import papermill as pm

    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    declared = pm.inspect_notebook(str(path))
    assert {"profile", "seed"} <= set(declared)
    quick = book.load_profile("quick")
    for name, info in declared.items():
        assert name in quick, f"{name} has no value in quick.yaml"
        default = eval(info["default"], {})  # literals written in the parameters cell
        assert default == quick[name], f"{name}: default {default!r} != quick {quick[name]!r}"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_normalized_and_executed(path):
    nb = nbformat.read(path, as_version=4)
    assert book.normalized(nb) == nb, "run: python tools/book.py normalize notebooks/*.ipynb"
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in code]
    assert None not in counts and counts == sorted(counts), "make commit-outputs"
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1, "committed outputs come from a papermill run: make commit-outputs"
    profile = re.search(r'profile = "(\w+)"', injected[0].source)
    assert profile and profile.group(1) in ("standard", "full"), "standard-or-larger outputs"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make book" in readme


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_chapter_chooses_its_own_device(path):
    """Every chapter takes its device from lowrank.provenance.resolve_device (LOWRANK_DEVICE)."""
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for pattern in (r"""["']cpu["']""", r"""["']cuda(:\d+)?["']""", r"cuda\.is_available"):
        assert not re.search(pattern, code), f"{path.name} hard-codes a device ({pattern})"
    if re.search(r"\.to\(device\)", code):
        assert "device = provenance.resolve_device()" in code
