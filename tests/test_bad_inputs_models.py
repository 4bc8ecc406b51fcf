"""Bad input for the model cache (:mod:`lowrank.models`): a run's configuration, checked when it
is built, and a cached folder that was copied, edited, truncated or corrupted. The same table as
``tests/test_bad_inputs.py``: each case is ``(call, expected)``; ``call(tmp_path)`` runs the
API, ``expected`` is ``(ExceptionType, "message fragment")`` or a function that checks the
returned value. A new public function of the module gets rows here.

The cache cases copy tiny networks trained once for the module (8x8 random "Fashion-MNIST",
widths (8, 16) or (16, 32), two epochs) and break the copy.
"""

import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from bad_input_cases import check_case

from lowrank import data
from lowrank.nets import cache, runs, verify
from lowrank.nets.cache import load_unet, train_unet
from lowrank.nets.runs import UNetRun, UnverifiedWeightsWarning
from lowrank.nets.unet import UNetDenoiser

NAN, INF = float("nan"), float("inf")
BASE = dict(size=8, channels=(8, 16), epochs=2, batch_size=16)
RUN = UNetRun(**BASE, snapshots=(1,))  # 41,609 parameters
OTHER = UNetRun(**BASE, snapshots=(1,), seed=1)  # the same network, other weights
BIG = UNetRun(**{**BASE, "channels": (16, 32)})  # 144,977 parameters
FILES = ("config.json", "diffusion_pytorch_model.safetensors")  # of a weights folder
_TRAINED = {}  # the cache the module trained, set by the autouse fixture


def _tiny_data(mp):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 8, 8), generator=gen, dtype=torch.uint8)
    labels = torch.arange(40) % 10
    mp.setattr(data, "load_fashion_mnist", lambda split, root=None: (images, labels))


@pytest.fixture(scope="module")
def trained_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        _tiny_data(mp)
        for run in (RUN, OTHER, BIG):
            train_unet(run, cache, progress=False)
    return cache


@pytest.fixture(autouse=True)
def _setup(trained_cache, monkeypatch):
    _TRAINED["cache"] = trained_cache
    _tiny_data(monkeypatch)


def _copy(tmp, run=RUN):
    """A copy of ``run``'s trained folder in the cache ``tmp / "cache"``; returns the folder."""
    folder = run.folder(tmp / "cache")
    shutil.copytree(run.folder(_TRAINED["cache"]), folder)
    return folder


def _load(tmp, run=RUN, **kwargs):
    return load_unet(run, cache=tmp / "cache", train=False, **kwargs)


def _edit_record(tmp, **changes):
    """The record edited, without its loading_sha256 (as a record written before it existed),
    so that the check each case aims at is the one that speaks."""
    folder = _copy(tmp)
    record = json.loads((folder / "run.json").read_text())
    record.pop("loading_sha256")
    (folder / "run.json").write_text(json.dumps({**record, **changes}))
    return folder


def _flip_byte(tmp, name="ema"):
    path = _copy(tmp) / name / "diffusion_pytorch_model.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0x01  # in the last tensor's values: safetensors still parses it
    path.write_bytes(bytes(blob))
    return _load(tmp, epoch=1 if name != "ema" else None)


def _swap_weights(tmp, source, target, epoch=None):
    """``source``'s weights folder of ``epoch`` copied over ``target``'s (a copy in ``tmp``),
    then ``target`` loaded at that epoch."""
    name = "ema" if epoch is None else f"ema-epoch{epoch}"
    folder = _copy(tmp, target)
    shutil.rmtree(folder / name)
    shutil.copytree(source.folder(_TRAINED["cache"]) / name, folder / name)
    return _load(tmp, target, epoch=epoch)


def _whole_folder_under_another_key(tmp):
    shutil.copytree(RUN.folder(_TRAINED["cache"]), BIG.folder(tmp / "cache"))
    return _load(tmp, BIG)


def _other_record(tmp, check=_load):
    folder = _copy(tmp)
    shutil.copy(OTHER.folder(_TRAINED["cache"]) / "run.json", folder / "run.json")
    return check(tmp)


def _edited_config_json(tmp, key, value):
    path = _copy(tmp) / "ema" / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, key: value}))
    return _load(tmp)


def _ema_deleted(tmp):
    """``ema/`` deleted, ``run.json`` kept: the hub must never be asked (the loader is watched
    and any call to it fails the case)."""
    shutil.rmtree(_copy(tmp) / "ema")
    with pytest.MonkeyPatch.context() as mp:
        never = classmethod(lambda cls, *a, **k: pytest.fail(f"from_pretrained got {a} {k}"))
        mp.setattr(UNetDenoiser, "from_pretrained", never)
        return _load(tmp)


def _loads_locally_only(tmp):
    """What load_unet asks diffusers for: the folder itself, local files only."""
    _copy(tmp)
    calls = []
    real = UNetDenoiser.from_pretrained.__func__
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(UNetDenoiser, "from_pretrained", classmethod(
            lambda cls, src, **k: calls.append((src, k)) or real(cls, src, **k)))  # fmt: skip
        _load(tmp)
    (source, kwargs), = calls  # fmt: skip
    return source.is_dir() and kwargs.get("local_files_only") is True


def _old_record_without_hashes(tmp):
    """A record written before the hashes existed: loads, with an UnverifiedWeightsWarning."""
    folder = _copy(tmp)
    record = json.loads((folder / "run.json").read_text())
    del record["weights_sha256"], record["loading_sha256"]
    (folder / "run.json").write_text(json.dumps(record))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        network = _load(tmp).denoiser
    return network, [w for w in caught if issubclass(w.category, UnverifiedWeightsWarning)]


def _hashes_recorded(tmp):
    record = json.loads((RUN.folder(_TRAINED["cache"]) / "run.json").read_text())
    return sorted(record["weights_sha256"])


def _record(tmp, text):
    folder = _copy(tmp)
    (folder / "run.json").write_text(text)
    return _load(tmp)


def _debias_without_train_images(tmp):
    folder = _copy(tmp)
    record = json.loads((folder / "run.json").read_text())
    del record["train_images"], record["loading_sha256"]  # an old record, as it was written
    (folder / "run.json").write_text(json.dumps(record))
    return _load(tmp, debias=True)


def _truncated_checkpoint_without_record(tmp):
    """Killed before the record was written, and train.pt truncated: the rerun names it."""
    folder = _copy(tmp)
    (folder / "run.json").unlink()
    path = folder / "train.pt"
    path.write_bytes(path.read_bytes()[:1000])
    return train_unet(RUN, tmp / "cache", progress=False)


def _stale_temp_files_removed(tmp):
    """A kill during a checkpoint write left a temp file; the restarted run removes it."""
    folder = _copy(tmp)
    (folder / "run.json").unlink()  # the run is resumed (train.pt holds every epoch)
    stale = folder / ".train.pt.k1ll3d.tmp"
    stale.write_bytes(b"\0" * 10_000)
    train_unet(RUN, tmp / "cache", progress=False)
    return sorted(p.name for p in folder.iterdir())


def _missing_data_leaves_no_folder(tmp):
    def missing(split, root=None):
        raise FileNotFoundError("Fashion-MNIST not found")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(data, "load_fashion_mnist", missing)
        with pytest.raises(FileNotFoundError, match="not found"):
            train_unet(RUN, tmp / "cache", progress=False)
    return (tmp / "cache").exists()


def _refused_run_leaves_no_folder(tmp):
    with pytest.raises(ValueError, match="train_images"):
        load_unet(UNetRun(**BASE, train_images=0), cache=tmp / "cache")
    return (tmp / "cache").exists()


def _images_of_another_side(tmp):
    """Native size asks for 28x28 images; the (tiny) data are 8x8: refused, no folder left."""
    try:
        train_unet(UNetRun(**BASE | {"size": None}), tmp / "cache", progress=False)
    finally:
        assert not any((tmp / "cache").iterdir()), "left a folder behind"


def _numpy_values(tmp):
    run = UNetRun(**{**BASE, "channels": np.array([8, 16]), "epochs": np.int64(2),
                     "lr": np.float32(1e-3)})  # fmt: skip
    same = UNetRun(**BASE, lr=float(np.float32(1e-3)))
    return run.channels, type(run.epochs), run.key() == same.key()


CASES = {
    # --- configuration: refused when the run is built, before any data or folder
    "size 0": (lambda t: UNetRun(**BASE | {"size": 0}), (ValueError, "size must be >= 1")),
    "size float": (
        lambda t: UNetRun(**BASE | {"size": 8.0}),
        (TypeError, "size must be an integer"),
    ),
    "size past native": (
        lambda t: UNetRun(**BASE | {"size": 32}),
        (ValueError, "size must be at most fashion-mnist's native side 28"),
    ),
    "size odd for two widths": (
        lambda t: UNetRun(**BASE | {"size": 7}),
        (ValueError, "size: 2 widths halve the image side 1 times"),
    ),
    "size too small for the widths": (
        lambda t: UNetRun(**BASE | {"size": 2}),
        (ValueError, "at least 4 (the deepest level 2x2"),
    ),
    "native side with 4 widths": (
        lambda t: UNetRun(**BASE | {"size": None, "channels": (8, 8, 8, 8)}),
        (ValueError, "channels: 4 widths halve the image side"),
    ),
    "train_images 0": (
        lambda t: UNetRun(**BASE, train_images=0),
        (ValueError, "train_images must be >= 1"),
    ),
    "train_images past the split": (
        lambda t: UNetRun(**BASE, train_images=60001),
        (ValueError, "train_images must be at most the 60000 images"),
    ),
    "train_images bool": (
        lambda t: UNetRun(**BASE, train_images=True),
        (TypeError, "train_images must be an integer"),
    ),
    "layers_per_block 0": (
        lambda t: UNetRun(**BASE, layers_per_block=0),
        (ValueError, "layers_per_block must be >= 1"),
    ),
    "layers_per_block 1.5": (
        lambda t: UNetRun(**BASE, layers_per_block=1.5),
        (TypeError, "layers_per_block must be an integer"),
    ),
    "epochs 0": (lambda t: UNetRun(**BASE | {"epochs": 0}), (ValueError, "epochs must be >= 1")),
    "epochs 2.0": (
        lambda t: UNetRun(**BASE | {"epochs": 2.0}),
        (TypeError, "epochs must be an integer"),
    ),
    "lr 0": (lambda t: UNetRun(**BASE, lr=0.0), (ValueError, "lr must be a finite number > 0")),
    "lr negative": (lambda t: UNetRun(**BASE, lr=-1e-3), (ValueError, "lr must be a finite")),
    "lr NaN": (lambda t: UNetRun(**BASE, lr=NAN), (ValueError, "lr must be finite")),
    "lr text": (lambda t: UNetRun(**BASE, lr="1e-3"), (TypeError, "lr must be a number")),
    "batch_size 0": (
        lambda t: UNetRun(**BASE | {"batch_size": 0}),
        (ValueError, "batch_size must be >= 1"),
    ),
    "batch_size 16.0": (
        lambda t: UNetRun(**BASE | {"batch_size": 16.0}),
        (TypeError, "batch_size must be an integer"),
    ),
    "ema_decay 1": (
        lambda t: UNetRun(**BASE, ema_decay=1.0),
        (ValueError, "ema_decay must lie in [0, 1)"),
    ),
    "ema_decay inf": (
        lambda t: UNetRun(**BASE, ema_decay=INF),
        (ValueError, "ema_decay must be finite"),
    ),
    "ema_decay bool": (
        lambda t: UNetRun(**BASE, ema_decay=True),
        (TypeError, "ema_decay must be a number"),
    ),
    "seed negative": (lambda t: UNetRun(**BASE, seed=-1), (ValueError, "seed must be >= 0")),
    "seed past int64": (
        lambda t: UNetRun(**BASE, seed=2**63),
        (ValueError, "seed must be at most"),
    ),
    "seed 1.5": (lambda t: UNetRun(**BASE, seed=1.5), (TypeError, "seed must be an integer")),
    "channels 8.7": (
        lambda t: UNetRun(**BASE | {"channels": (8.7, 16)}),
        (TypeError, "channels must be integers, got 8.7"),
    ),
    "channels bool": (
        lambda t: UNetRun(**BASE | {"channels": (True, 16)}),
        (TypeError, "channels must be integers, got True"),
    ),
    "channels a number": (
        lambda t: UNetRun(**BASE | {"channels": 8}),
        (TypeError, "channels must be a sequence of integers"),
    ),
    "channels text": (
        lambda t: UNetRun(**BASE | {"channels": "816"}),
        (TypeError, "channels must be a sequence of integers"),
    ),
    "channels empty": (
        lambda t: UNetRun(**BASE | {"channels": ()}),
        (ValueError, "channels must hold one width or more"),
    ),
    "channels 0": (
        lambda t: UNetRun(**BASE | {"channels": (0, 16)}),
        (ValueError, "channels must be positive widths"),
    ),
    "channels not divisible by GroupNorm's groups": (
        lambda t: UNetRun(**BASE | {"channels": (7, 16)}),
        (ValueError, "multiple of the GroupNorm group count min(8, channels[0]) = 7"),
    ),
    "channels 8 and 12": (
        lambda t: UNetRun(**BASE | {"channels": (8, 12)}),
        (ValueError, "the widths [12] are not"),
    ),
    "last width below the attention head": (
        lambda t: UNetRun(**BASE | {"channels": (4, 4)}),
        (ValueError, "the last width must be >= 8"),
    ),
    "snapshots 1.9": (
        lambda t: UNetRun(**BASE, snapshots=(1.9,)),
        (TypeError, "snapshots must be integers, got 1.9"),
    ),
    "snapshots a number": (
        lambda t: UNetRun(**BASE, snapshots=1),
        (TypeError, "snapshots must be a sequence of integers"),
    ),
    "snapshots 0": (
        lambda t: UNetRun(**BASE, snapshots=(0,)),
        (ValueError, "snapshots must lie in [1"),
    ),
    "snapshots at epochs": (
        lambda t: UNetRun(**BASE, snapshots=(2,)),
        (ValueError, "snapshots must lie in [1, epochs - 1 = 1]"),
    ),
    "noise_levels 1e30": (
        lambda t: UNetRun(**BASE, noise_levels=(1e30,)),
        (ValueError, "noise_levels must be levels in [1e-06, 157.4]"),
    ),
    "noise_levels 1e-30": (
        lambda t: UNetRun(**BASE, noise_levels=(1e-30,)),
        (ValueError, "noise_levels must be levels in"),
    ),
    "noise_levels negative": (
        lambda t: UNetRun(**BASE, noise_levels=(-0.1,)),
        (ValueError, "noise_levels must be levels in"),
    ),
    "noise_levels NaN": (
        lambda t: UNetRun(**BASE, noise_levels=(0.1, NAN)),
        (ValueError, "noise_levels must be finite"),
    ),
    "noise_levels a number": (
        lambda t: UNetRun(**BASE, noise_levels=0.1),
        (TypeError, "noise_levels must be a sequence of levels"),
    ),
    "noise_levels bool": (
        lambda t: UNetRun(**BASE, noise_levels=(True,)),
        (TypeError, "noise_levels must be a number"),
    ),
    "epoch_images 2.5": (
        lambda t: UNetRun(**BASE, epoch_images=2.5),
        (TypeError, "epoch_images must be an integer"),
    ),
    "noise level at the schedule's largest sigma": (
        lambda t: UNetRun(**BASE, noise_levels=(runs.SIGMA_MAX, 1e-6)).noise_levels,
        lambda levels: levels == (1e-6, runs.SIGMA_MAX),
    ),
    "numpy values become Python values, key kept": (
        _numpy_values,
        lambda out: out == ((8, 16), int, True),
    ),
    "the quick profile's cached keys are unchanged": (
        lambda t: [
            UNetRun(size=16, train_images=4000, epochs=2, snapshots=(1,)).key(),
            UNetRun(epochs=6, snapshots=(1,)).key(),
        ],  # fmt: skip
        lambda keys: keys == ["404a9a0b7ddc", "0fe945b31da9"],
    ),
    "a refused run leaves no folder": (_refused_run_leaves_no_folder, lambda exists: not exists),
    "training images of another side": (
        _images_of_another_side,
        (ValueError, "the training images of fashion-mnist are (1, 8, 8), not the (1, 28, 28)"),
    ),
    "missing data leave no folder": (_missing_data_leaves_no_folder, lambda exists: not exists),
    # --- the cache: a folder that is not what the run trained
    "ema/ deleted, run.json kept": (
        _ema_deleted,
        (FileNotFoundError, "no ema/config.json and ema/diffusion_pytorch_model.safetensors"),
    ),
    "loading asks for local files only": (_loads_locally_only, lambda ok: ok),
    "another run's (smaller) ema/ copied in": (
        lambda t: _swap_weights(t, RUN, BIG),
        (ValueError, "describes another network than this run builds (block_out_channels"),
    ),
    "another seed's ema/ copied in (same network)": (
        lambda t: _swap_weights(t, OTHER, RUN),
        (ValueError, "was changed or corrupted; delete"),
    ),
    "another seed's snapshot copied in": (
        lambda t: _swap_weights(t, OTHER, RUN, epoch=1),
        (ValueError, "ema-epoch1/diffusion_pytorch_model.safetensors: SHA-256"),
    ),
    "another run's whole folder under this key": (
        _whole_folder_under_another_key,
        (ValueError, "records another run than this one (channels: recorded [8, 16], this run"),
    ),
    "another run's run.json": (
        _other_record,
        (ValueError, "records another run than this one (seed: recorded 1, this run 0)"),
    ),
    "another run's run.json, is_cached": (
        lambda t: _other_record(t, lambda t: cache.is_cached(RUN, t / "cache")),
        (ValueError, "records another run than this one"),
    ),
    "complete 'no' is not complete": (
        lambda t: _edit_record(t, complete="no") and _load(t),
        (FileNotFoundError, "holds no finished run"),
    ),
    "complete 'no', is_cached": (
        lambda t: _edit_record(t, complete="no") and cache.is_cached(RUN, t / "cache"),
        lambda cached: cached is False,
    ),
    "sample_size edited": (
        lambda t: _edited_config_json(t, "sample_size", 16),
        (ValueError, "sample_size: file 16, run 8"),
    ),
    "norm_num_groups edited": (
        lambda t: _edited_config_json(t, "norm_num_groups", 4),
        (ValueError, "norm_num_groups: file 4, run 8"),
    ),
    "one flipped byte in ema/": (
        _flip_byte,
        (ValueError, "ema/diffusion_pytorch_model.safetensors: SHA-256"),
    ),
    "one flipped byte in a snapshot": (
        lambda t: _flip_byte(t, "ema-epoch1"),
        (ValueError, "recorded in"),
    ),
    "a hash for every weights file": (
        _hashes_recorded,
        lambda names: names == sorted(f"{d}/{f}" for d in ("ema", "ema-epoch1") for f in FILES),
    ),
    "an old record without hashes loads with a warning": (
        _old_record_without_hashes,
        lambda out: (
            isinstance(out[0], UNetDenoiser)
            and len(out[1]) == 1
            and "records no SHA-256" in str(out[1][0].message)
        ),
    ),
    "recorded parameter count edited": (
        lambda t: _edit_record(t, parameters=651041) and _load(t),
        (ValueError, "holds a network of 41,609 parameters, but"),
    ),
    "run.json holds []": (
        lambda t: _record(t, "[]"),
        (ValueError, "holds a JSON list, not a run record"),
    ),
    "run.json holds a number": (lambda t: _record(t, "3"), (ValueError, "holds a JSON int")),
    "debias without train_images": (
        _debias_without_train_images,
        (ValueError, "run.json holds no train_images"),
    ),
    "ema_init_weight without train_images": (
        lambda t: cache.ema_init_weight(RUN, {}, 1),
        (ValueError, "the record holds no train_images"),
    ),
    "ema_init_weight of a record that is a list": (
        lambda t: cache.ema_init_weight(RUN, [], 1),
        (ValueError, "holds no train_images"),
    ),
    "epoch 1.0": (
        lambda t: _load(t, epoch=1.0),
        (ValueError, "epoch must be 2 or a snapshot [1]"),
    ),
    "truncated train.pt without run.json": (
        _truncated_checkpoint_without_record,
        (ValueError, "train.pt: not a readable checkpoint (truncated or corrupt"),
    ),
    "stale checkpoint temp files are removed": (
        _stale_temp_files_removed,
        lambda names: names == ["ema", "ema-epoch1", "run.json", "train.pt"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path):
    check_case(name, *CASES[name], tmp_path)


@pytest.mark.parametrize(
    "size, channels, layers",
    [(8, (8, 16), 1), (8, (7, 16), 1), (8, (4, 6), 1), (8, (4, 4), 1), (8, (8, 12), 1),
     (8, (16, 8), 1), (8, (4, 8, 12), 1), (6, (8, 16), 1), (7, (8, 16), 1), (2, (8, 16), 1),
     (4, (8, 16), 1), (8, (8, 16), 0), (8, (2, 8), 2)],
)  # fmt: skip
def test_a_run_is_accepted_exactly_when_its_network_builds_and_runs(size, channels, layers):
    """The construction checks agree with diffusers: the runs refused are those whose network
    ``UNetDenoiser.small`` cannot build or run on one image, and no other."""
    try:
        UNetRun(size=size, channels=channels, layers_per_block=layers)
        accepted = True
    except ValueError:
        accepted = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zero-sized attention layers warn as they build
            network = UNetDenoiser.small(size, 1, channels, layers)
            with torch.no_grad():
                network(torch.zeros(1, 1, size, size), 0.5)
        builds = True
    except (ValueError, RuntimeError, ZeroDivisionError):
        builds = False
    assert accepted == builds


def test_the_expected_architecture_is_what_initial_network_builds():
    """The fields the load check compares are those of the network the run trains."""
    for run in (RUN, BIG, UNetRun(size=None, channels=(8, 16, 16), layers_per_block=2)):
        side = run.size or 28
        built = cache.initial_network(run, side, 1).unet.config
        for key, value in verify.expected_architecture(run).items():
            assert list(built[key]) == value if isinstance(value, list) else built[key] == value
