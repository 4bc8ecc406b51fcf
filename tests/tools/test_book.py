"""tools/book.py: profiles, execution, normalization, the results cell and staging."""

import json

import matplotlib

matplotlib.use("Agg")
import nbformat  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lowrank import provenance
from lowrank.book import profiles
from tools import book  # noqa: E402


def test_load_profile_and_errors(tmp_path):
    quick = book.load_profile("quick")
    assert quick["profile"] == "quick" and quick["seed"] == 0
    with pytest.raises(ValueError, match="profile"):
        book.load_profile("huge")
    with pytest.raises(FileNotFoundError):
        book.load_profile("quick", tmp_path)


def test_status_table_and_provenance(tmp_path):
    record = {"notebook": "nb", "profile": "quick", "status": "ok", "seconds": 1.5,
              "device": "cpu", "torch": "2.13.0", "git": "abc"}  # fmt: skip
    (tmp_path / "provenance.json").write_text(json.dumps([record]))
    assert book.read_provenance(tmp_path) == [record]
    assert book.read_provenance(tmp_path / "none") == []
    failed = {**record, "notebook": "nb2", "status": "failed", "seconds": 2.0}
    table = book.status_table([record, failed]).splitlines()
    assert table[2] == "| nb | quick | 1.5 | cpu | `abc` |"
    assert table[3] == "| nb2 | quick | failed after 2.0 | cpu | `abc` |"
    assert table[-1] == "torch 2.13.0."
    line = profiles.describe_run("quick", 3)
    assert line.startswith("profile=quick | seed=3 | ") and f"torch {torch.__version__}" in line


def test_normalized_and_strip_injected(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]})
    injected = nbformat.v4.new_code_cell("seed = 1\n", metadata={"tags": ["injected-parameters"]})
    injected.metadata["papermill"] = {"duration": 0.1}
    nb.cells = [params, injected]
    nb.metadata["papermill"] = {"start_time": "today"}
    clean = book.normalized(nb)
    assert "papermill" not in clean.metadata and "papermill" not in clean.cells[1].metadata
    assert clean.cells[1].source == "seed = 1" and book.normalized(clean) == clean
    nbformat.write(nb, tmp_path / "a.ipynb")
    book.strip_injected_parameters([tmp_path / "a.ipynb"], tmp_path / "out")
    stripped = nbformat.read(tmp_path / "out" / "a.ipynb", as_version=4)
    assert [c.source for c in stripped.cells] == ["seed = 0"]


def test_execute_stops_on_a_missing_gpu_before_any_notebook(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        book.main(["execute", "--device", "cuda", "--out", str(tmp_path), "missing.ipynb"])
    assert stop.value.code == 2
    assert "asks for CUDA" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_results_cell_is_added_once_and_references_keep_only_compared_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    injected = nbformat.v4.new_code_cell('profile = "quick"')
    injected.metadata["tags"] = [book.INJECTED]
    plot = nbformat.v4.new_code_cell("plot()")
    plot.outputs = [nbformat.v4.new_output("stream", text="a figure\n")]
    nb.cells = [injected, plot]
    once = book.with_results_cell(nb)
    assert book.with_results_cell(once) is once and len(once.cells) == 3
    assert once.cells[-1].source == book.RESULTS_SOURCE
    assert {book.RESULTS, book.NBVAL_CHECK} <= set(once.cells[-1].metadata["tags"])
    with pytest.raises(ValueError, match="no results cell"):
        nbformat.write(nb, tmp_path / "bare.ipynb")
        book.write_references([tmp_path / "bare.ipynb"], tmp_path / "refs")
    once.cells[-1].outputs = [nbformat.v4.new_output("stream", text="acc = 0.8\n")]
    nbformat.write(once, tmp_path / "ch.ipynb")
    book.write_references([tmp_path / "ch.ipynb"], tmp_path / "refs")
    ref = nbformat.read(tmp_path / "refs" / "ch.ipynb", as_version=4)
    assert [c.source for c in ref.cells] == ["plot()", book.RESULTS_SOURCE]  # no injected cell
    assert ref.cells[0].outputs == [] and book.results_text(ref) == "acc = 0.8\n"


def test_execute_refuses_an_override_the_profile_lacks(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        book.main(["execute", "--set", "sed=1", "--out", str(tmp_path), "missing.ipynb"])
    assert stop.value.code == 2 and "'sed'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        book.main(["execute", "--set", "seed", "--out", str(tmp_path), "missing.ipynb"])
    assert "write NAME=VALUE" in capsys.readouterr().err


def test_execute_overrides_keeps_going_and_records_the_platform(tmp_path):
    """Two small chapters, the first failing: with keep_going the second still runs, with the
    overridden seed, and both executed copies record the platform that ran them."""
    notebooks = []
    for name, body in (("a_fails", "assert seed == 0"), ("b_runs", "print(seed)")):
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]})
        nb.cells = [params, nbformat.v4.new_code_cell(body)]
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nb.metadata["language_info"] = {"name": "python"}
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
        notebooks.append(tmp_path / f"{name}.ipynb")
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="a_fails.ipynb"):
        book.execute(notebooks, "quick", out, overrides={"seed": 3}, keep_going=True)
    ran = nbformat.read(out / "b_runs.ipynb", as_version=4)
    assert ran.cells[-2].outputs[0]["text"] == "3\n"  # the cell before the results cell
    for path in (out / "a_fails.ipynb", out / "b_runs.ipynb"):
        platform = nbformat.read(path, as_version=4).metadata[book.PLATFORM_KEY]
        assert platform == provenance.platform_record()
    assert [r["status"] for r in book.read_provenance(out)] == ["failed", "ok"]
    assert book.normalized(ran).metadata[book.PLATFORM_KEY] == provenance.platform_record()


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


def test_staging_never_replaces_a_folder_of_someone_elses_files(tmp_path, monkeypatch):
    """stage --dest replaces its folder: only a new one, or one it staged before."""
    monkeypatch.setattr(book.results, "results_table", lambda executed: "")  # no glue here
    executed = tmp_path / "executed"
    executed.mkdir()
    for nb in sorted((book.ROOT / "notebooks").glob("*.ipynb")):
        nbformat.write(nbformat.v4.new_notebook(), executed / nb.name)
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("months of work")
    with pytest.raises(FileExistsError, match="chapter1.tex"):
        book.stage_book(executed, mine)
    assert (mine / "chapter1.tex").read_text() == "months of work"
    staged = tmp_path / "staged"
    book.stage_book(executed, staged)
    (staged / "_build").mkdir()  # what jupyter-book builds there
    book.stage_book(executed, staged)  # a folder it staged: replaced
    assert (staged / book.STAGED).is_file() and not (staged / "_build").exists()
