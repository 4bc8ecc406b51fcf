import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lowrank import plotting, profiles  # noqa: E402
from tools import book  # noqa: E402


def test_curve_vs_sigma_draws_values_band_and_paper():
    plotting.set_theme()
    fig, ax = plt.subplots()
    sig = torch.tensor([0.1, 1.0, 10.0])
    values, stderr = torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0.1, 0.2, 0.1])
    plotting.curve_vs_sigma(ax, sig, values, "ours", stderr=stderr, paper=[1.1, 2.9, 2.2])
    ours, paper = ax.get_lines()
    np.testing.assert_array_equal(ours.get_ydata(), [1.0, 3.0, 2.0])
    np.testing.assert_array_equal(paper.get_ydata(), [1.1, 2.9, 2.2])
    assert paper.get_linestyle() == "None" and ax.get_xscale() == "log"
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.8) and band.max() == pytest.approx(3.4)
    plt.close(fig)


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


def test_block_energy_heatmap_annotates_every_entry():
    fig, ax = plt.subplots()
    E = torch.tensor([[2.0, 1.0, 2.0], [1.0, 4.0, 0.0], [2.0, 0.0, 3.0]])
    plotting.block_energy_heatmap(ax, E, "stuck")
    texts = [float(t.get_text()) for t in ax.texts]
    assert texts == E.flatten().tolist() and ax.get_title() == "stuck"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["class 1", "class 2", "class 3"]
    np.testing.assert_array_equal(ax.collections[0].get_array().reshape(3, 3), E.numpy())
    plt.close(fig)


def test_image_rows_places_every_pixel_and_maps_the_model_range():
    gen = torch.Generator().manual_seed(0)
    top, bottom = (torch.rand(3, 1, 2, 4, generator=gen) * 2 - 1 for _ in range(2))
    fig, (ax, rgb_ax) = plt.subplots(1, 2)
    plotting.image_rows(ax, [top, bottom], "samples")
    shown = ax.images[0].get_array()
    assert shown.shape == (4, 12) and ax.get_title() == "samples" and not ax.axison
    assert ax.images[0].get_clim() == (0, 1)  # grey levels fixed, not stretched per picture
    # pixel (y, x) of image j in row i sits at (2 i + y, 4 j + x), mapped from [-1, 1] to [0, 1]
    for i, row in enumerate((top, bottom)):
        for j in range(3):
            block = shown[2 * i : 2 * i + 2, 4 * j : 4 * j + 4]
            np.testing.assert_allclose(block, ((row[j, 0] + 1) / 2).numpy(), atol=1e-7)
    rgb = torch.full((2, 3, 2, 2), -1.0)
    rgb[1, 0] = 2.0  # clipped to 1: the second image red
    plotting.image_rows(rgb_ax, [rgb])
    pixels = rgb_ax.images[0].get_array()
    assert pixels.shape == (2, 4, 3) and pixels[:, 2:, 0].min() == 1 and pixels[:, :2].max() == 0
    with pytest.raises(ValueError, match="one shape"):
        plotting.image_rows(ax, [top, bottom[:2]])
    with pytest.raises(ValueError, match="1 or 3 channels"):
        plotting.image_rows(ax, [torch.zeros(1, 2, 2, 2)])
    plt.close(fig)


def test_resolve_device_reads_the_one_variable(monkeypatch):
    monkeypatch.delenv(profiles.DEVICE_VARIABLE, raising=False)
    auto = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert profiles.resolve_device() == auto
    monkeypatch.setenv(profiles.DEVICE_VARIABLE, "CPU")
    assert profiles.resolve_device() == torch.device("cpu")
    assert profiles.resolve_device("auto") == auto  # an argument overrides the variable
    monkeypatch.setenv(profiles.DEVICE_VARIABLE, "gpu")
    with pytest.raises(ValueError, match="LOWRANK_DEVICE='gpu' is not a device"):
        profiles.resolve_device()


def test_resolve_device_refuses_cuda_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(profiles.DEVICE_VARIABLE, "cuda")
    with pytest.raises(RuntimeError, match="LOWRANK_DEVICE='cuda' asks for CUDA.*DEVICE=cpu"):
        profiles.resolve_device()
    with pytest.raises(RuntimeError, match="'cuda:1' asks for CUDA"):
        profiles.resolve_device("cuda:1")
    assert profiles.resolve_device("auto") == torch.device("cpu")


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
        assert platform == profiles.platform_record()
    assert [r["status"] for r in book.read_provenance(out)] == ["failed", "ok"]
    assert book.normalized(ran).metadata[book.PLATFORM_KEY] == profiles.platform_record()
