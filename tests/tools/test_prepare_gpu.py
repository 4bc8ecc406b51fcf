"""tools/prepare_gpu.py: what it carries to a lent GPU machine, without touching the network."""

import subprocess

import pytest

from tools import prepare_gpu


def test_wheel_names_and_pins_compare_canonically():
    assert prepare_gpu.wheel_name("myst_nb-1.4.0-py3-none-any.whl") == "myst-nb"
    assert prepare_gpu.wheel_name("PyYAML-6.0.4-cp312-cp312-manylinux2014_x86_64.whl") == "pyyaml"
    pins = prepare_gpu.locked_versions()
    assert all(name in pins for name in prepare_gpu.BOOK_PACKAGES)
    have = prepare_gpu.image_packages()
    assert {"torch", "triton", "seaborn", "typing-extensions"} <= have
    assert not have & set(prepare_gpu.BOOK_PACKAGES)  # else carrying them would be pointless


def test_download_keeps_only_what_the_image_lacks(tmp_path, monkeypatch):
    made = ["diffusers-0.42.1-py3-none-any.whl", "torch-2.13.0-cp312-cp312-linux.whl",
            "Sphinx_Contrib-1.0-py3-none-any.whl", "debugpy-1.8-py3-none-any.whl",
            "nbval-0.11.0-py2.py3-none-any.whl"]  # fmt: skip
    asked = {}

    def fake_pip(command, check):
        asked["command"] = command
        for name in made:
            (tmp_path / name).write_bytes(b"")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    pins = {name: "1.0" for name in prepare_gpu.BOOK_PACKAGES}
    kept = prepare_gpu.download_wheels(tmp_path, pins, {"torch"})
    assert kept == ["diffusers-0.42.1-py3-none-any.whl", "nbval-0.11.0-py2.py3-none-any.whl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == kept
    assert "papermill==1.0" in asked["command"] and "3.12" in asked["command"]
    with pytest.raises(KeyError, match="papermill is not pinned in requirements.lock"):
        prepare_gpu.download_wheels(tmp_path, {"diffusers": "1"}, set())


def test_missing_data_names_the_files_and_the_fix(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="lacks train-labels.*make setup"):
        prepare_gpu.copy_fashion_mnist(tmp_path, tmp_path / "out")


def test_run_command_installs_points_at_the_data_and_forces_cuda():
    command = prepare_gpu.run_command(".gpu")
    assert "--target /tmp/site .gpu/wheels/*.whl" in command
    assert "LOWRANK_DATA=$PWD/.gpu/data" in command
    assert "--device cuda" in command and "benchmarks/gpu_check.sh" in command
