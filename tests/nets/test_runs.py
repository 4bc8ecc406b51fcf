"""The model cache: configuration keys, training into the cache once, snapshots that do not
change the final weights, loading without training, and the command line."""

import pytest

from lowrank.nets import runs
from lowrank.nets.runs import UNetRun


def _run(**changes):
    base = dict(size=8, channels=(8, 16), epochs=3, batch_size=16)
    return UNetRun(**{**base, **changes})


def test_key_names_the_configuration():
    assert _run().key() == _run().key()
    assert len({_run().key(), _run(epochs=4).key(), _run(seed=1).key(), _run(lr=2e-3).key(),
                _run(snapshots=(1,)).key()}) == 5  # fmt: skip
    assert _run(channels=[8, 16]) == _run()  # lists become tuples
    assert _run(snapshots=(2, 1, 1)).snapshots == (1, 2)
    with pytest.raises(ValueError, match="dataset must be one of"):
        UNetRun(dataset="mnist")
    with pytest.raises(ValueError, match="snapshots must lie in"):
        _run(snapshots=(3,))


def test_cache_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("LOWRANK_CACHE", str(tmp_path / "env"))
    assert runs.cache_root() == tmp_path / "env"
    assert runs.cache_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("LOWRANK_CACHE")
    assert runs.cache_root().parts[-3:] == (".cache", "lowrank", "models")


def test_a_diffusion_models_key_does_not_change_when_daes_exist():
    """The standard profile's network was cached under this key before noise_levels existed:
    leaving the field out of a diffusion model's configuration keeps that cache valid."""
    assert UNetRun(epochs=6, snapshots=(1,)).key() == "0fe945b31da9"
    assert "noise_levels" not in UNetRun().config()
    dae = _run(noise_levels=(0.06, 0.002, 0.06))
    assert dae.noise_levels == (0.002, 0.06) and dae.config()["noise_levels"] == [0.002, 0.06]
    assert dae.kind() == "DAE" and _run().kind() == "UNet"
    assert dae.key() not in {_run().key(), _run(noise_levels=(0.002,)).key()}
    assert dae.folder().name.startswith("dae-fashion-mnist-8px-")
    with pytest.raises(ValueError, match="noise_levels must be"):
        _run(noise_levels=(0.0,))
    with pytest.raises(ValueError, match="noise_levels must be"):
        _run(noise_levels=())
