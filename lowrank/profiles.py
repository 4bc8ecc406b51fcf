"""Provenance of a run: the device, versions and git revision that produced a notebook's outputs.

The run profiles themselves (``notebooks/params/*.yaml``) and the book's build tooling
(papermill execution, staging, normalization) live outside the package, in ``tools/book.py``:
``lowrank`` works when installed without the repository.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
from pathlib import Path

import torch

__all__ = ["DEVICE_VARIABLE", "resolve_device", "environment", "describe_run", "banner"]

#: The environment variable every chapter takes its device from (``make ... DEVICE=cuda`` sets it).
DEVICE_VARIABLE = "LOWRANK_DEVICE"


def _git_revision() -> str:
    """``git describe --always --dirty`` of the checkout holding this file, or ``"unknown"``."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def resolve_device(requested: str | None = None) -> torch.device:
    """The device a chapter runs on, decided in one place for every notebook.

    Arguments:
        requested: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"``; ``None`` reads the environment variable ``LOWRANK_DEVICE``
            (``"auto"`` when unset or empty).

    Raises:
        ValueError: an unknown device name.
        RuntimeError: CUDA asked for where this torch sees no GPU (a CPU-only build, or no
            driver), so that a GPU run never falls back to the CPU unnoticed.
    """
    source = "requested"
    if requested is None:
        requested, source = os.environ.get(DEVICE_VARIABLE, "") or "auto", DEVICE_VARIABLE
    name = str(requested).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise ValueError(f"{source}={requested!r} is not a device: use auto, cpu, cuda or cuda:N")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"{source}={requested!r} asks for CUDA, but this torch ({torch.__version__}) "
                "sees no GPU: run on a machine with one, or set DEVICE=cpu (or leave it unset)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"{source}={requested!r}: this machine has {torch.cuda.device_count()} GPU(s)"
            )
    return device


def environment() -> dict:
    """Device (as :func:`resolve_device` chooses it), versions and git revision of this process."""
    import lowrank

    chosen = resolve_device()
    if chosen.type == "cuda":
        device = f"cuda: {torch.cuda.get_device_name(chosen)}"
    else:
        device = (
            f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
        )
    return {
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lowrank": lowrank.__version__,
        "git": _git_revision(),
    }


def describe_run(profile: str, seed: int) -> str:
    """One provenance line: profile, seed, device, versions, git."""
    env = environment()
    return (
        f"profile={profile} | seed={seed} | {env['device']} | python {env['python']} | "
        f"torch {env['torch']} | lowrank {env['lowrank']} | git {env['git']}"
    )


def banner(profile: str, seed: int, now: datetime.datetime | None = None) -> str:
    """A Markdown line for the top of a chapter: which run made the outputs below it.

    Arguments:
        now: the time to print (UTC; the current time by default).
    """
    env = environment()
    now = now or datetime.datetime.now(datetime.UTC)
    return (
        f"**Outputs on this page**: profile `{profile}`, seed {seed}, commit `{env['git']}`, "
        f"{now:%Y-%m-%d %H:%M} UTC, {env['device']}, torch {env['torch']}."
    )
