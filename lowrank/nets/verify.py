"""What is checked before a cached run is used (:mod:`lowrank.nets.cache`): its ``run.json`` is a
record of this very run, finished, with the fields that loading reads as they were when the
training ended (:data:`LOADING_FIELDS`, hashed); its weights folder holds the network the run
builds, file by file with the SHA-256 the record took. Each failure names the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

from torch import nn

from lowrank.nets.runs import NATIVE, WEIGHTS_FILE, UNetRun, UnverifiedWeightsWarning

__all__ = [
    "LOADING_FIELDS",
    "loading_hash",
    "sha256_file",
    "hash_weights",
    "read_record",
    "finished_record",
    "expected_architecture",
    "check_weights",
    "schedule_hash",
    "check_schedule",
]


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def hash_weights(folder: Path, names: list[str]) -> dict[str, str]:
    """SHA-256 of every file in the weights folders ``names``, keyed ``"<name>/<file>"``."""
    return {f"{name}/{path.name}": sha256_file(path) for name in names
            for path in sorted((folder / name).iterdir()) if path.is_file()}  # fmt: skip


#: The fields of run.json that loading reads besides the configuration: hashed together when the
#: training ends, so that an edited train_images cannot silently change the debiased weights.
LOADING_FIELDS = ("train_images", "images_per_epoch", "parameters", "init_fingerprint",
                  "weights_sha256")  # fmt: skip


def _json_sha256(value) -> str:
    """SHA-256 of ``value`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def loading_hash(record: dict) -> str:
    """SHA-256 of the record's :data:`LOADING_FIELDS` (canonical JSON), and of its
    ``schedule_sha256`` when it has one (records written before it hash as they did)."""
    fields = {name: record.get(name) for name in LOADING_FIELDS}
    if "schedule_sha256" in record:
        fields["schedule_sha256"] = record["schedule_sha256"]
    return _json_sha256(fields)


def read_record(folder: Path) -> dict | None:
    """``run.json`` of ``folder`` (``None`` when there is none); it must be a JSON object."""
    path = folder / "run.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete {folder} to retrain") from e
    except RecursionError as e:
        raise ValueError(
            f"{path} nests too deeply to be a run record; delete {folder} to retrain"
        ) from e
    if not isinstance(record, dict):
        raise ValueError(
            f"{path} holds a JSON {type(record).__name__}, not a run record (an object with the "
            f"run's config); delete {folder} to retrain"
        )
    return record


def finished_record(run: UNetRun, folder: Path) -> dict | None:
    """The record of ``run`` finished in ``folder``; ``None`` when there is none or it is
    unfinished (only ``"complete": true`` counts). A finished record of another configuration
    (a folder copied or edited) is an error."""
    record = read_record(folder)
    if record is None or record.get("complete") is not True:
        return None
    stored, expected = record.get("config"), run.config()
    if stored != expected:
        if isinstance(stored, dict):
            differs = "; ".join(
                f"{key}: recorded {stored.get(key)!r}, this run {expected.get(key)!r}"
                for key in sorted(set(stored) | set(expected))
                if stored.get(key) != expected.get(key)
            )
        else:
            differs = f"config: recorded {stored!r}"
        raise ValueError(
            f"{folder / 'run.json'} records another run than this one ({differs}): the folder "
            f"was copied or edited; delete {folder} to retrain"
        )
    recorded = record.get("loading_sha256")  # absent in records written before it existed
    if recorded is not None and recorded != loading_hash(record):
        raise ValueError(
            f"{folder / 'run.json'}: the fields loading reads ({', '.join(LOADING_FIELDS)}) are "
            f"not those recorded when the training ended (edited?); delete {folder} to retrain"
        )
    return record


def expected_architecture(run: UNetRun) -> dict:
    """The ``UNet2DModel`` configuration fields :func:`initial_network` gives ``run`` (as
    ``UNetDenoiser.small`` builds it), to compare with a cached ``config.json``."""
    image_channels, native, _ = NATIVE[run.dataset]
    L = len(run.channels)
    return {
        "sample_size": run.size or native,
        "in_channels": image_channels,
        "out_channels": image_channels,
        "block_out_channels": list(run.channels),
        "layers_per_block": run.layers_per_block,
        "down_block_types": ["DownBlock2D"] * L,
        "up_block_types": ["UpBlock2D"] * L,
        "norm_num_groups": min(8, run.channels[0]),
    }


def check_weights(run: UNetRun, folder: Path, name: str, record: dict) -> Path:
    """Check the weights folder ``name`` of the finished ``run`` in ``folder`` before loading
    it: it exists (it must never be taken for a hub id), its ``config.json`` is the network the
    run builds, and each file has the SHA-256 the record took (records without hashes: a
    :class:`UnverifiedWeightsWarning`)."""
    weights, fix = folder / name, f"delete {folder} to retrain"
    config_path = weights / "config.json"
    if not config_path.is_file() or not (weights / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"{folder} holds a finished run but no {name}/config.json and {name}/{WEIGHTS_FILE} "
            f"(deleted or moved?): it is loaded from that folder only, never from the hub; "
            f"{fix}"
        )
    try:
        saved = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{config_path} is not valid JSON ({e}); {fix}") from e
    if not isinstance(saved, dict):
        raise ValueError(f"{config_path} holds no network configuration; {fix}")
    differs = [
        f"{key}: file {saved.get(key)!r}, run {value!r}"
        for key, value in expected_architecture(run).items()
        if saved.get(key) != value
    ]
    if differs:
        raise ValueError(
            f"{config_path} describes another network than this run builds ("
            + "; ".join(differs)
            + f"): another run's weights were copied here or the file was edited; {fix}"
        )
    hashes = record.get("weights_sha256")
    if hashes is None:
        warnings.warn(
            f"{folder / 'run.json'} records no SHA-256 of its weights (written before they "
            f"were recorded): {name}/ is loaded without that check; {fix} and record them",
            UnverifiedWeightsWarning,
            stacklevel=3,
        )
        return weights
    if not isinstance(hashes, dict):
        raise ValueError(f"{folder / 'run.json'}: weights_sha256 is not an object; {fix}")
    files = {p.name for p in weights.iterdir() if p.is_file()}
    recorded = {key.split("/", 1)[1] for key in hashes if key.startswith(f"{name}/")}
    if files != recorded:
        raise ValueError(
            f"{weights}: files {sorted(files)} differ from those recorded in "
            f"{folder / 'run.json'} ({sorted(recorded)}); {fix}"
        )
    for file in sorted(files):
        found, expected = sha256_file(weights / file), hashes[f"{name}/{file}"]
        if found != expected:
            raise ValueError(
                f"{weights / file}: SHA-256 {found[:16]}... differs from the {expected[:16]}... "
                f"recorded in {folder / 'run.json'} when the run was trained: the file was "
                f"changed or corrupted; {fix}"
            )
    return weights


def schedule_hash(network: nn.Module) -> str:
    """SHA-256 of the network's class and its schedule settings (``network.schedule()``: the
    DDPM ``T`` and beta range, or EDM's preconditioning and sigma range). The code sets them,
    the weights files do not hold them, and the cache key does not name them: a schedule
    changed in the code would otherwise load networks trained under the old one. Settings, not
    the tables built from them: a last-bit difference of ``log`` on another CPU changes no
    setting."""
    settings = {"class": type(network).__name__, **network.schedule()}
    return _json_sha256(settings)


def check_schedule(network: nn.Module, folder: Path, record: dict) -> None:
    """Refuse a network whose code-built schedule differs from the one it was trained under
    (records written before ``schedule_sha256`` existed are not checked)."""
    recorded = record.get("schedule_sha256")
    if recorded is not None and recorded != schedule_hash(network):
        raise ValueError(
            f"{folder} was trained under another noise schedule than this code builds for "
            f"{type(network).__name__} (its T, beta range or sigma range changed): delete "
            f"{folder} to retrain, and bump nets.runs._FORMAT when the change is meant"
        )
