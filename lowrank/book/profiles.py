"""What a chapter says about its own run: :func:`describe_run` and :func:`banner`, the profile,
seed, commit, date and device of its outputs (from :mod:`lowrank.provenance`).

The run profiles themselves (``notebooks/params/*.yaml``) and the book's build tooling
(papermill execution, staging, normalization) live outside the package, in ``tools/book.py``:
``lowrank`` works when installed without the repository.
"""

from __future__ import annotations

import datetime

from lowrank.provenance import environment

__all__ = [
    "describe_run",
    "banner",
]


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
