"""Every notebook runs under papermill at the quick profile, and its glued claims hold.

The executed copies land in ``_build/executed/quick``, where ``make test`` builds the book from.
"""

import math
from pathlib import Path

import nbformat
import pytest

from lowrank import profiles

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "_build" / "executed" / "quick"

# What must hold at the quick profile, per notebook and glue key.
CLAIMS = {
    "01_data_model": {
        # max |z| of a few thousand entries: above 6 has probability < 1e-5 if sampling is right
        "cov_max_z": lambda v: 0 < v < 6,
        # Frobenius error of a covariance estimate from N samples scales like sqrt(2 n / N)
        "cov_rel_error": lambda v: v < 3 * math.sqrt(2 * 15 / 20_000),
        "cov_num_samples": lambda v: v == 20_000,
    },
    "02_proposition_1": {
        # every step of the derivation holds to float64 rounding
        "prop1_max_error": lambda v: float(v) < 1e-10,
        # SNR at sigma 0.03 .. 1.978: rises from near 1/((K-1) delta^2) = 12.5, then falls
        "prop1_snr_panels": lambda v: _unimodal([float(x) for x in v.split(", ")]),
    },
    "03_theorem_1": {
        "thm1_worst_rel_error": lambda v: float(v) > 1.0,  # Theorem 1 is off by a factor
        "two_block_worst_rel_error": lambda v: float(v) < 0.10,  # the sharper one is not
        "exact_peak": lambda v: 25 < float(v.split()[0]) < 35,
    },
    "04_molrg_experiments": {
        "union_angle": lambda v: float(v) < 10,  # the learned span is the union of the classes
        "t4_orth_within_3pct": lambda v: v == "True",  # Table 4 orthogonal, 3% + 3 std. err.
        "t7_monotone": lambda v: v == "monotonically decreasing",
        # from the K-subspaces start the blocks stay on the classes, even in 20 epochs
        "kss_final_angle": lambda v: float(v) < 5,
        "gap_kss": lambda v: float(v.rstrip("%")) < 10,  # quick: few Monte Carlo draws
    },
}


def _unimodal(values: list[float]) -> bool:
    peak = max(range(len(values)), key=values.__getitem__)
    rising = all(a <= b for a, b in zip(values[:peak], values[1 : peak + 1], strict=True))
    falling = all(a >= b for a, b in zip(values[peak:-1], values[peak + 1 :], strict=True))
    return 0 < peak < len(values) - 1 and rising and falling


def glued(path: Path) -> dict:
    """Values glued with ``myst_nb.glue`` in an executed notebook, parsed from text/plain."""
    values = {}
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []):
            record = out.get("metadata", {}).get("scrapbook", {})
            if "name" in record:
                name, text = record["name"], out["data"][record["mime_prefix"] + "text/plain"]
                try:
                    values[name] = float(text) if "." in text or "e" in text else int(text)
                except ValueError:
                    values[name] = text.strip("'\"")
    return values


@pytest.mark.parametrize(
    "path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem
)
def test_notebook_runs_at_quick_profile_and_claims_hold(path):
    assert path.stem in CLAIMS, f"add the claims of {path.name} to CLAIMS"
    (record,) = [r for r in profiles.execute([path], "quick", OUT) if r["notebook"] == path.stem]
    assert record["status"] == "ok"
    values = glued(OUT / path.name)
    for key, holds in CLAIMS[path.stem].items():
        assert key in values, f"{path.stem} glues no {key!r}"
        assert holds(values[key]), f"{path.stem}: {key} = {values[key]!r}"
