"""Provenance of a run: the device, versions and git revision that produced a notebook's outputs.

The run profiles themselves (``notebooks/params/*.yaml``) and the book's build tooling
(papermill execution, staging, normalization) live outside the package, in ``tools/book.py``:
``lowrank`` works when installed without the repository.
"""

from __future__ import annotations

import datetime
import platform
import subprocess
from pathlib import Path

import torch

__all__ = ["environment", "describe_run", "banner"]


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


def environment() -> dict:
    """Device, versions and git revision of this process."""
    import lowrank

    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(0)}"
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
