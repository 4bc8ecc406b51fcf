"""The model cache: configuration keys, training into the cache once, snapshots that do not
change the final weights, loading without training, and the command line."""

import json
import socket
import tempfile

import pytest
import torch

from lowrank import data
from lowrank.__main__ import main
from lowrank.nets import cache, verify
from lowrank.nets import train as train_module
from lowrank.nets import unet as unet_module
from lowrank.nets.cache import load_unet, train_unet
from lowrank.nets.runs import UNetRun
from lowrank.nets.unet import EDMUNetDenoiser


@pytest.fixture
def tiny_data(monkeypatch):
    """40 random 8x8 'Fashion-MNIST' images (4 per class) instead of the real files."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 8, 8), generator=gen, dtype=torch.uint8)
    labels = torch.arange(40) % 10
    monkeypatch.setattr(data, "load_fashion_mnist", lambda split, root=None: (images, labels))
    return images


def _run(**changes):
    base = dict(size=8, channels=(8, 16), epochs=3, batch_size=16)
    return UNetRun(**{**base, **changes})


class _Recorder:
    """Stands in for the network: records the noise levels the run's loss asks for."""

    def __init__(self):
        self.sigmas = []

    def loss(self, x0, generator, sigma=None):
        self.sigmas.append(sigma)
        return torch.zeros(())


def test_training_once_then_loading(tiny_data, tmp_path, monkeypatch):
    run = _run(snapshots=(1,))
    folder = train_unet(run, tmp_path, progress=False)
    assert folder.name.startswith("unet-fashion-mnist-8px-") and run.key() in folder.name
    for name in ("run.json", "ema/config.json", "ema/diffusion_pytorch_model.safetensors",
                 "ema-epoch1/diffusion_pytorch_model.safetensors", "train.pt"):  # fmt: skip
        assert (folder / name).exists(), name
    record = json.loads((folder / "run.json").read_text())
    assert record["complete"] and len(record["losses"]) == 3 and record["train_images"] == 40
    assert record["config"]["snapshots"] == [1] and record["images_per_second"] > 0
    loaded = load_unet(run, cache=tmp_path)
    final = loaded.denoiser
    # the typed record holds what run.json holds
    assert loaded.record.losses == tuple(record["losses"]) and loaded.record.train_images == 40
    assert loaded.record.final_loss == record["losses"][-1] and loaded.record.device == "cpu"
    assert loaded.record.config == record["config"] and loaded.record.parameters > 0
    early = load_unet(run, epoch=1, cache=tmp_path).denoiser
    assert not final.training
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert not torch.equal(final(x, 0.5), early(x, 0.5))
    # a finished run is loaded, never retrained
    monkeypatch.setattr(cache, "fit", lambda *a, **k: pytest.fail("retrained a cached run"))
    assert train_unet(run, tmp_path, progress=False) == folder
    load_unet(run, cache=tmp_path)
    with pytest.raises(ValueError, match="a snapshot"):
        load_unet(run, epoch=2, cache=tmp_path)


def test_snapshots_do_not_change_the_final_weights(tiny_data, tmp_path):
    with_snapshots = load_unet(_run(snapshots=(1, 2)), cache=tmp_path, progress=False).denoiser
    without = load_unet(_run(), cache=tmp_path, progress=False).denoiser
    for a, b in zip(with_snapshots.state_dict().values(), without.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)


def test_a_schedule_changed_in_the_code_refuses_networks_trained_under_the_old_one(
    tiny_data, tmp_path, monkeypatch
):
    """The cache key names the run, not the code's noise schedule: the record's
    schedule_sha256 (the class and its schedule settings) catches a changed beta_end."""
    run = _run(epochs=1)
    trained = load_unet(run, cache=tmp_path, progress=False).denoiser
    record = json.loads((run.folder(tmp_path) / "run.json").read_text())
    assert record["schedule_sha256"] == verify.schedule_hash(trained)
    # the hash reads the schedule, not the weights
    other = cache.initial_network(run, 8, 1)
    assert verify.schedule_hash(other) == verify.schedule_hash(trained)
    edm = cache.initial_network(_run(parameterization="edm"), 8, 1)
    assert verify.schedule_hash(edm) != verify.schedule_hash(other)
    # the plant of issue 31: the default beta_end changed in the code
    monkeypatch.setattr(unet_module.UNetDenoiser.__init__, "__defaults__", (1000, 1e-4, 0.025))
    assert verify.schedule_hash(cache.initial_network(run, 8, 1)) != record["schedule_sha256"]
    with pytest.raises(ValueError, match="another noise schedule"):
        load_unet(run, cache=tmp_path)
    monkeypatch.undo()
    path = run.folder(tmp_path) / "run.json"
    without = {k: v for k, v in record.items() if k != "schedule_sha256"}
    path.write_text(json.dumps(without))  # the check switched off by deleting the field
    with pytest.raises(ValueError, match="not those recorded"):
        load_unet(run, cache=tmp_path)
    del without["loading_sha256"]  # a record from before both existed: loads unchecked
    path.write_text(json.dumps(without))
    load_unet(run, cache=tmp_path)


def test_missing_and_corrupt_runs(tiny_data, tmp_path):
    run = _run(epochs=2, lr=2e-3)
    with pytest.raises(FileNotFoundError, match="python -m lowrank train .*--lr 0.002"):
        load_unet(run, cache=tmp_path, train=False)
    folder = run.folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "run.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON.*delete"):
        load_unet(run, cache=tmp_path)


def test_command_line_trains_into_the_cache(tiny_data, tmp_path, capsys):
    argv = ["train", "--size", "8", "--channels", "8", "16", "--epochs", "2", "--batch-size",
            "16", "--cache", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    folder = _run(epochs=2).folder(tmp_path)
    assert str(folder) in out and "training images/s" in out
    assert main(argv) == 0
    assert "loaded from the cache" in capsys.readouterr().out
    assert cache.is_cached(_run(epochs=2), tmp_path)
    assert not cache.is_cached(_run(epochs=3), tmp_path)


def test_an_interrupted_run_resumes_past_its_snapshots(tiny_data, tmp_path):
    run = _run(snapshots=(1,))
    folder = train_unet(run, tmp_path, progress=False)
    finished = (folder / "ema" / "diffusion_pytorch_model.safetensors").read_bytes()
    # killed after the last epoch's checkpoint, before the record was written
    (folder / "run.json").unlink()
    assert train_unet(run, tmp_path, progress=False) == folder
    assert (folder / "ema" / "diffusion_pytorch_model.safetensors").read_bytes() == finished
    # a checkpoint past a snapshot that was never saved cannot be completed
    (folder / "run.json").unlink()
    import shutil

    shutil.rmtree(folder / "ema-epoch1")
    with pytest.raises(ValueError, match="snapshot ema-epoch1 was never saved"):
        train_unet(run, tmp_path, progress=False)


def test_an_unknown_epoch_is_refused_before_training(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "fit", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(ValueError, match="a snapshot"):
        load_unet(_run(snapshots=(1,)), epoch=2, cache=tmp_path)


def test_a_dae_trains_at_its_noise_levels_only():
    x0, gen = torch.zeros(4000, 1, 2, 2), torch.Generator().manual_seed(0)
    recorder = _Recorder()
    _run().loss(recorder, x0, gen)
    assert recorder.sigmas == [None]  # the diffusion model: UNetDenoiser.loss's timesteps
    _run(noise_levels=(0.5,)).loss(recorder, x0, gen)
    assert torch.equal(recorder.sigmas[-1], torch.full((4000,), 0.5))
    _run(noise_levels=(0.002, 0.06, 0.585)).loss(recorder, x0, gen)
    counts = torch.stack([(recorder.sigmas[-1] == s).sum() for s in (0.002, 0.06, 0.585)])
    assert int(counts.sum()) == 4000 and int((counts - 4000 / 3).abs().max()) < 4 * 30


def test_a_dae_is_cached_apart_from_the_diffusion_model(tiny_data, tmp_path, capsys):
    diffusion, dae = _run(epochs=1), _run(epochs=1, noise_levels=(0.1,))
    loaded = load_unet(dae, cache=tmp_path, progress=False)
    dae_net, record = loaded.denoiser, loaded.record
    assert record.config["noise_levels"] == [0.1] and not cache.is_cached(diffusion, tmp_path)
    diffusion_net = load_unet(diffusion, cache=tmp_path, progress=False).denoiser
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # same initialization (seed), different training
        assert not torch.equal(dae_net(x, 0.1), diffusion_net(x, 0.1))
    argv = ["train", "--size", "8", "--channels", "8", "16", "--epochs", "1", "--batch-size",
            "16", "--noise-levels", "0.1", "--cache", str(tmp_path)]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0  # the command line names the same DAE: loaded, not retrained
    out = capsys.readouterr().out
    assert str(dae.folder(tmp_path)) in out and "loaded from the cache" in out


def test_a_small_subset_is_repeated_to_the_epoch_budget(tiny_data, tmp_path, monkeypatch, capsys):
    assert "epoch_images" not in UNetRun().config()  # absent: the old keys stay valid
    run = _run(train_images=10, epochs=1, epoch_images=25)
    assert run.key() != _run(train_images=10, epochs=1).key()
    seen = []
    real_fit = cache.fit
    monkeypatch.setattr(cache, "fit", lambda model, loss, x0, *a, **k:
                        seen.append(x0.clone()) or real_fit(model, loss, x0, *a, **k))  # fmt: skip
    record = load_unet(run, cache=tmp_path, progress=False).record
    subset, _ = cache.training_images(run)
    assert record.train_images == 10 and record.images_per_epoch == 30  # ceil(25/10) = 3
    assert torch.equal(seen[0], subset.repeat(3, 1, 1, 1))
    argv = ["train", "--size", "8", "--channels", "8", "16", "--epochs", "1", "--batch-size", "16",
            "--train-images", "10", "--epoch-images", "25", "--cache", str(tmp_path)]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0 and "loaded from the cache" in capsys.readouterr().out
    with pytest.raises(ValueError, match="epoch_images"):
        _run(epoch_images=0)


def test_an_edm_run_has_its_own_key_and_class(tiny_data, tmp_path):
    assert "parameterization" not in UNetRun().config()  # "ddpm": the old keys stay valid
    edm = _run(epochs=1, parameterization="edm")
    assert edm.config()["parameterization"] == "edm" and edm.key() != _run(epochs=1).key()
    with pytest.raises(ValueError, match="parameterization must be one of"):
        _run(parameterization="vp")
    loaded = load_unet(edm, cache=tmp_path, progress=False)
    net, record = loaded.denoiser, loaded.record
    assert type(net) is EDMUNetDenoiser and record.config["parameterization"] == "edm"
    ddpm = load_unet(_run(epochs=1), cache=tmp_path, progress=False).denoiser
    # the same initialization and data: the two trainings part only by their losses
    start = cache.initial_network(edm, 8, 1).state_dict()
    assert all(torch.equal(v, start[k]) for k, v in cache.initial_network(_run(), 8, 1)
               .state_dict().items())  # fmt: skip
    assert any(not torch.equal(a, b) for a, b in zip(net.parameters(), ddpm.parameters(),
                                                     strict=True))  # fmt: skip


@pytest.mark.parametrize("parameterization", ["ddpm", "edm"])
def test_the_debiased_ema_of_one_step_is_the_trained_weights(
    tiny_data, tmp_path, parameterization
):
    """After one step the EMA is d * theta_0 + (1 - d) * theta_1: taking the initial weights'
    share d out leaves theta_1, the weights fit stored in its checkpoint."""
    run = _run(train_images=10, epochs=1, batch_size=16, parameterization=parameterization)
    loaded = load_unet(run, cache=tmp_path, progress=False)
    ema, record = loaded.denoiser, loaded.record
    assert cache.ema_init_weight(run, record, 1) == run.ema_decay  # one step
    debiased = load_unet(run, cache=tmp_path, debias=True).denoiser
    trained = torch.load(run.folder(tmp_path) / "train.pt", weights_only=True)["model"]
    # float32 rounding of the EMA (about 1e-7 at these magnitudes) divided by 1 - d = 1e-3
    for name, value in debiased.named_parameters():
        torch.testing.assert_close(value, trained[name], rtol=0, atol=2e-4)
    start = cache.initial_network(run, 8, 1).parameters()
    moved = max((a - b).abs().max().item() for a, b in zip(ema.parameters(), start, strict=True))
    assert 0 < moved < 1e-2  # the plain EMA has barely left the initial weights
    raw = json.loads((run.folder(tmp_path) / "run.json").read_text())
    raw["init_fingerprint"] = "0" * 64  # as if torch drew the initialization differently
    del raw["loading_sha256"]  # a record from before the loading fields were hashed
    (run.folder(tmp_path) / "run.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="cannot be debiased"):
        load_unet(run, cache=tmp_path, debias=True)
    load_unet(run, cache=tmp_path)  # the plain EMA still loads


def test_the_ema_init_weight_counts_the_steps_fit_takes(tiny_data, tmp_path, monkeypatch):
    """d^n with n the EMA updates fit makes: 10 images repeated to 30 per epoch, batches of 16
    (the last one short), 2 epochs: 4 updates."""
    updates = []
    real_update = train_module.update_ema
    monkeypatch.setattr(train_module, "update_ema",
                        lambda *a: updates.append(1) or real_update(*a))  # fmt: skip
    run = _run(train_images=10, epochs=2, epoch_images=25, batch_size=16, ema_decay=0.9)
    record = load_unet(run, cache=tmp_path, progress=False).record
    assert len(updates) == 4
    assert cache.ema_init_weight(run, record, 2) == pytest.approx(0.9 ** len(updates), rel=1e-12)


def test_the_ema_init_weight_counts_the_steps_of_repeated_subsets():
    record = {"train_images": 10}
    run = _run(train_images=10, epochs=3, epoch_images=25, ema_decay=0.9)
    # 30 images per epoch (3 repeats of 10) in batches of 16: 2 steps per epoch
    assert cache.ema_init_weight(run, record, 3) == pytest.approx(0.9**6, rel=1e-12)
    assert cache.ema_init_weight(_run(ema_decay=0.9), {"train_images": 40}, 2) == pytest.approx(
        0.9**6, rel=1e-12
    )  # 40 images: 3 steps per epoch


def test_an_overlaid_run_has_its_own_key_and_data(tiny_data, tmp_path):
    """delta enters the key (and the data); delta = 0 keeps every existing key."""
    assert UNetRun(epochs=6, snapshots=(1,), delta=0).key() == "0fe945b31da9"
    assert "delta" not in _run().config() and "delta_seed" not in _run(delta_seed=3).config()
    keys = {_run().key(), _run(delta=0.5).key(), _run(delta=0.25).key(),
            _run(delta=0.5, delta_seed=1).key()}  # fmt: skip
    assert len(keys) == 4
    plain, y = cache.training_images(_run(train_images=20))
    mixed, y_mixed = cache.training_images(_run(train_images=20, delta=0.5, delta_seed=3))
    assert torch.equal(y, y_mixed)  # the labels stay the image's own
    # the same rows as data.overlay of the whole split, then the subset
    whole = data.to_model_range(tiny_data, 8)
    labels = torch.arange(40) % 10
    expected, _ = data.overlay(whole, labels, 0.5, seed=3)
    keep = data.balanced_subset(labels, 20, torch.Generator().manual_seed(1))
    torch.testing.assert_close(mixed, expected[keep], rtol=0, atol=0)
    torch.testing.assert_close(plain, whole[keep], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"delta must lie in \[0, 1\)"):
        _run(delta=1.5)
    with pytest.raises(TypeError, match="delta must be a number"):
        _run(delta="0.5")
    folder = train_unet(_run(epochs=1, delta=0.5), tmp_path, progress=False)
    record = json.loads((folder / "run.json").read_text())
    assert record["config"]["delta"] == 0.5 and record["config"]["delta_seed"] == 0


def test_a_full_disk_is_one_line_and_the_last_checkpoint_still_resumes_bitwise(
    tiny_data, tmp_path, monkeypatch
):
    """torch reports a full disk as a RuntimeError of its zip writer; the second epoch's
    checkpoint fails so, the error names train.pt and the fix, and the rerun resumes from the
    first epoch's checkpoint to the weights of an uninterrupted run."""
    run = _run(epochs=3)
    whole = train_unet(run, tmp_path / "whole", progress=False)
    real_save, saves = torch.save, []

    def fills_the_disk(state, f, *args, **kwargs):
        saves.append(1)
        if len(saves) == 2:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64")
        return real_save(state, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fills_the_disk)
    with pytest.raises(OSError) as caught:
        train_unet(run, tmp_path / "cut", progress=False)
    message = str(caught.value)
    assert "\n" not in message and "train.pt" in message and "disk full" in message
    monkeypatch.setattr(torch, "save", real_save)
    resumed = train_unet(run, tmp_path / "cut", progress=False)
    weights = "ema/diffusion_pytorch_model.safetensors"
    assert (resumed / weights).read_bytes() == (whole / weights).read_bytes()


def test_a_read_only_cache_is_one_line_at_the_command_line(tiny_data, tmp_path, monkeypatch,
                                                           capsys):  # fmt: skip
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache.tempfile, "mkstemp", refused)
    monkeypatch.setattr(train_module.tempfile, "mkstemp", refused)
    argv = ["train", "--size", "8", "--channels", "8", "16", "--epochs", "1", "--batch-size",
            "16", "--cache", str(tmp_path)]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # above it: the progress bar of the epochs
    assert "Traceback" not in err, err
    assert ": error: cannot write" in last
    assert "Permission denied" in last and "LOWRANK_CACHE" in last


def test_a_planted_temporary_link_is_not_followed(tiny_data, tmp_path):
    """run.json goes through a new, uniquely named file: a run.json.tmp link planted in the
    folder (the old fixed name) is neither followed nor its target overwritten."""
    run = _run(epochs=1)
    folder = run.folder(tmp_path)
    folder.mkdir(parents=True)
    target = tmp_path / "victim.txt"
    target.write_text("keep me")
    (folder / "run.json.tmp").symlink_to(target)
    train_unet(run, tmp_path, progress=False)
    assert target.read_text() == "keep me" and (folder / "run.json").is_file()


def test_a_record_nested_too_deeply_or_edited_is_refused_by_name(tiny_data, tmp_path):
    run = _run(epochs=1)
    folder = train_unet(run, tmp_path, progress=False)
    record_path = folder / "run.json"
    original = record_path.read_text()
    record = json.loads(original)
    record["train_images"] += 1  # would silently change the debiased EMA weights
    record_path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="not those recorded when the training ended"):
        load_unet(run, cache=tmp_path)
    record_path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nests too deeply"):
        load_unet(run, cache=tmp_path)
    record_path.write_text(original)
    load_unet(run, cache=tmp_path)


def test_loading_a_cached_run_makes_no_network_attempt(tiny_data, tmp_path, monkeypatch):
    run = _run(epochs=1)
    train_unet(run, tmp_path, progress=False)

    def no_network(*args, **kwargs):
        raise AssertionError("a loading path tried the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    loaded = load_unet(run, cache=tmp_path)
    net, record = loaded.denoiser, loaded.record
    assert record.parameters > 0 and isinstance(net, torch.nn.Module)


def test_a_record_that_cannot_be_written_is_one_line_and_the_rerun_completes(
    tiny_data, tmp_path, monkeypatch
):
    run = _run(epochs=1)
    real_mkstemp = tempfile.mkstemp

    def refuses_the_record(*args, prefix="", **kwargs):
        if prefix.startswith(".run.json"):
            raise OSError(28, "No space left on device")
        return real_mkstemp(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuses_the_record)
    with pytest.raises(OSError, match=r"cannot write .*run\.json: No space left on device"):
        train_unet(run, tmp_path, progress=False)
    monkeypatch.setattr(tempfile, "mkstemp", real_mkstemp)
    folder = train_unet(run, tmp_path, progress=False)  # from train.pt: no epoch trained again
    assert json.loads((folder / "run.json").read_text())["complete"]
