"""Bad input on the command line (``python -m lowrank train``): a bad value stops in one line
that names its flag, exit status 2 (argparse's), before any data are read or any cache folder is
made; a cache or data problem found later stops in one line too, exit status 1. Never a
traceback. The same table as ``tests/test_bad_inputs.py``: each case is ``(call, expected)``;
``call(tmp_path, monkeypatch)`` returns the arguments (after setting up what they need),
``expected`` is ``(exit status, "fragment of stderr")``. A new flag gets rows here.
"""

import json

import pytest

from lowrank.__main__ import main
from lowrank.nets.runs import UNetRun

TINY = ["--size", "8", "--channels", "8", "16", "--epochs", "2", "--batch-size", "16"]


def _args(*extra):
    """The tiny run's arguments with ``extra`` after them (a later flag wins)."""
    return lambda t, mp: [*TINY, *extra]


def _corrupt_cache(t, mp):
    folder = UNetRun(size=8, channels=(8, 16), epochs=2, batch_size=16).folder(t / "cache")
    folder.mkdir(parents=True)
    (folder / "run.json").write_text("[]")
    return TINY


def _copied_record(t, mp):
    folder = UNetRun(size=8, channels=(8, 16), epochs=2, batch_size=16).folder(t / "cache")
    folder.mkdir(parents=True)
    record = {"config": UNetRun(size=8, channels=(8, 16), epochs=3).config(), "complete": True}
    (folder / "run.json").write_text(json.dumps(record))
    return TINY


def _bad_data_env(t, mp):
    mp.setenv("LOWRANK_DATA", str(t / "nonexistent"))
    return TINY


def _file_as_cache(t, mp):
    (t / "cache").write_text("")
    return TINY


CASES = {
    "--train-images 0": (
        _args("--train-images", "0"),
        (2, "--train-images must be >= 1, got 0 (or 'all')"),
    ),
    "--train-images past the split": (
        _args("--train-images", "70000"),
        (2, "--train-images must be at most the 60000 images"),
    ),
    "--train-images text": (
        _args("--train-images", "many"),
        (2, "argument --train-images: expected an integer or 'all', got 'many'"),
    ),
    "--size 0": (_args("--size", "0"), (2, "--size must be >= 1, got 0 (or 'native')")),
    "--size 30": (
        _args("--size", "30"),
        (2, "--size must be at most fashion-mnist's native side 28"),
    ),
    "--size 7": (_args("--size", "7"), (2, "--size: 2 widths halve the image side")),
    "--size text": (
        _args("--size", "big"),
        (2, "argument --size: expected an integer or 'native'"),
    ),
    "--layers-per-block 0": (
        _args("--layers-per-block", "0"),
        (2, "--layers-per-block must be >= 1"),
    ),
    "--channels 7 16": (
        _args("--channels", "7", "16"),
        (2, "--channels (7, 16): every width must be"),
    ),
    "--channels 4 4": (
        _args("--channels", "4", "4"),
        (2, "--channels (4, 4): the last width must"),
    ),
    "--channels 0 16": (_args("--channels", "0", "16"), (2, "--channels must be positive widths")),
    "--channels 8.7 16": (
        _args("--channels", "8.7", "16"),
        (2, "argument --channels: invalid int"),
    ),
    "--epochs 0": (_args("--epochs", "0"), (2, "--epochs must be >= 1, got 0")),
    "--lr 0": (_args("--lr", "0"), (2, "--lr must be a finite number > 0")),
    "--lr nan": (_args("--lr", "nan"), (2, "--lr must be finite")),
    "--batch-size 0": (_args("--batch-size", "0"), (2, "--batch-size must be >= 1")),
    "--ema-decay 1": (_args("--ema-decay", "1"), (2, "--ema-decay must lie in [0, 1)")),
    "--seed -1": (_args("--seed", "-1"), (2, "--seed must be >= 0")),
    "--snapshots 2 of 2 epochs": (
        _args("--snapshots", "2"),
        (2, "--snapshots must lie in [1, epochs - 1 = 1]"),
    ),
    "--noise-levels 1e30": (
        _args("--noise-levels", "1e30"),
        (2, "--noise-levels must be levels in"),
    ),
    "--noise-levels 0": (_args("--noise-levels", "0"), (2, "--noise-levels must be levels in")),
    "--epoch-images 0": (_args("--epoch-images", "0"), (2, "--epoch-images must be >= 1")),
    "--data names nothing": (
        lambda t, mp: [*TINY, "--data", str(t / "nowhere")],
        (2, "nowhere' does not exist: pass the data set's folder"),
    ),
    "--cache is a file": (_file_as_cache, (2, "is a file: pass a folder")),
    # --- found later: one line, status 1
    "cached run.json holds []": (_corrupt_cache, (1, "holds a JSON list, not a run record")),
    "cached run.json of another run": (_copied_record, (1, "records another run than this one")),
    "LOWRANK_DATA names nothing": (_bad_data_env, (1, "LOWRANK_DATA=")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path, monkeypatch, capsys):
    call, (status, fragment) = CASES[name]
    monkeypatch.delenv("LOWRANK_DATA", raising=False)
    argv = ["train", *call(tmp_path, monkeypatch), "--cache", str(tmp_path / "cache")]
    existed = (tmp_path / "cache").exists()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == status, err
    assert fragment in err and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("python -m lowrank train: error: "), err
    assert (tmp_path / "cache").exists() == existed  # refused before any folder was made
