"""Tables that put the paper's numbers next to ours, and the verdicts the book prints.

Results for regression testing: :func:`glue` is ``myst_nb.glue`` that also records every
number and short text a chapter glues; :func:`results` prints them, rounded, as the stable text
of the chapter's last cell, which nbval compares against a reference (``make nbval``).

Tables are :class:`pandas.DataFrame` s of raw numbers (a notebook glues them and renders them as
HTML through :func:`styled`, which formats each column once). Verdicts are computed here, from
numbers and their standard errors, so that no sentence of the book states a shape or an
agreement that the computation beside it does not give.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from lowrank._checks import check_real

__all__ = [
    "p_text",
    "interval_text",
    "glue",
    "results",
    "RECORDED",
    "VOLATILE",
    "RESULTS_DIGITS",
    "compare_frame",
    "styled",
    "lead_table",
    "relative_gaps",
    "worst_gap",
    "within",
    "agreement_verdict",
    "monotone_decreasing",
    "peak",
]


#: What :func:`glue` recorded in this kernel, in glue order: ``{name: number or text}``.
RECORDED: dict[str, object] = {}
#: Glued names whose values are not results: wall times, speeds, the device, the cache's state.
VOLATILE = re.compile(r"minutes|seconds|speed|device|cache_reading")
#: Significant digits of every number :func:`results` prints.
RESULTS_DIGITS = 4
_LONGEST_TEXT = 120  # longer glued strings are prose, not results
# float64 residuals of closed forms (chapter 02's 4e-15) are rounding, whose last digits change
# with the order of a sum: below this they print as "< 1e-10", which is what the checks assert
_ROUNDING_LEVEL = 1e-10


def glue(name: str, variable, display: bool = True):
    """``myst_nb.glue(name, variable, display)``, recording ``variable`` for :func:`results`
    when it is a number (a 0-d tensor counts) or a short text."""
    from myst_nb import glue as myst_glue  # optional: the [book] extra, needed in notebooks only

    if not isinstance(name, str) or not name.isidentifier():
        raise TypeError(
            f"glue's name must be a key such as 'peak_sigma' (letters, digits, underscores), got "
            f"{name!r}: the prose refers to it as {{glue:text}}`name`"
        )

    value = variable
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, numbers.Number | str) and len(str(value)) <= _LONGEST_TEXT:
        RECORDED[name] = value
    return myst_glue(name, variable, display=display)


def _format(value) -> str:
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{value:d}"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if 0 < abs(value) < _ROUNDING_LEVEL:
        return f"< {_ROUNDING_LEVEL:g}"
    text = f"{value:.{RESULTS_DIGITS}g}"
    return "0" if text == "-0" else text


def results(recorded: Mapping[str, object] | None = None) -> str:
    """Every recorded result (default: :data:`RECORDED`) as ``name = value`` lines: numbers
    to :data:`RESULTS_DIGITS` significant digits, texts as they are, the :data:`VOLATILE`
    names left out, and magnitudes below 1e-10 (float64 rounding) printed as ``name < 1e-10``.
    Seeded quick runs on one machine kind reproduce this text exactly; the
    rounding absorbs the last-bit differences of another thread count or BLAS."""
    recorded = RECORDED if recorded is None else recorded
    lines = []
    for name, value in recorded.items():
        if not VOLATILE.search(name):
            text = _format(value)
            lines.append(f"{name} {text}" if text.startswith("< ") else f"{name} = {text}")
    return "\n".join(lines)


def p_text(p: float) -> str:
    """A p-value as a page prints it: three decimals, or ``< 0.001`` below that (a Monte Carlo
    p of 1/20,001 is not "0.000")."""
    p = check_real(p, "p", 0.0, 1.0)
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def interval_text(value: float, low: float, high: float, spec: str = ".3g") -> str:
    """``value [low, high]``, each number formatted with ``spec``: a table cell that carries its
    interval."""
    return f"{float(value):{spec}} [{float(low):{spec}}, {float(high):{spec}}]"


def _array(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def compare_frame(
    sigmas: Sequence[float] | torch.Tensor,
    ours: Sequence[float] | torch.Tensor,
    paper: Sequence[float] | None = None,
    stderr: Sequence[float] | torch.Tensor | None = None,
    *,
    points: bool = False,
) -> pd.DataFrame:
    """One row per sigma: ``sigma, paper, ours, ±, gap``; the gap is ``(ours - paper) / |paper|``,
    or, with ``points=True`` (accuracies in percent), ``ours - paper`` in a column named
    ``gap (points)``: a relative gap of two percentages reads as a percentage of a percentage.

    Columns without data (no paper values, no standard errors) are left out rather than
    printed empty. Every entry is a float.
    """
    s, o = _array(sigmas), _array(ours)
    columns = {"σ": s}
    if paper is not None:
        columns["paper"] = _array(paper)
    columns["ours"] = o
    if stderr is not None:
        columns["±"] = _array(stderr)
    if points and paper is None:
        raise ValueError("points=True gives the gap to the paper's values: pass paper")
    if paper is not None and points:
        columns["gap (points)"] = o - columns["paper"]
    elif paper is not None:
        columns["gap"] = relative_gaps(o, columns["paper"])
    if len({len(v) for v in columns.values()}) != 1:
        raise ValueError("sigmas, ours, paper and stderr must have the same length")
    return pd.DataFrame(columns)


def styled(frame: pd.DataFrame, formats: Mapping[str, str] | None = None, digits: int = 2):
    """The frame as an HTML table without its index, each column formatted once.

    Works with one level of column names or two (``pd.concat({...}, axis=1)``); a format spec
    of ``formats`` is keyed by the column as pandas names it (a tuple for two levels).

    Arguments:
        formats: format specs by column; by default ``σ`` gets 3 decimals, ``gap`` a signed
            percentage, ``gap (points)`` a signed number with one decimal, integer columns
            none, other numeric columns ``digits`` decimals; text and boolean columns stay as
            they are.
    """
    spec = {}
    for column in frame.columns:
        if pd.api.types.is_bool_dtype(frame[column]):
            continue
        if pd.api.types.is_integer_dtype(frame[column]):
            spec[column] = "{:d}"
            continue
        if not pd.api.types.is_numeric_dtype(frame[column]):
            continue
        name = [c for c in column if c][-1] if isinstance(column, tuple) else column
        if name == "σ":
            spec[column] = "{:.3f}"
        elif name == "gap":
            spec[column] = "{:+.1%}"
        elif name == "gap (points)":
            spec[column] = "{:+.1f}"
        else:
            spec[column] = f"{{:.{digits}f}}"
    spec.update(formats or {})
    # the class "dataframe" gives the table the book theme's padding and rules
    styler = frame.style.format(spec, na_rep="–").hide(axis="index")
    return styler.set_table_attributes('class="dataframe"')


def lead_table(family: Sequence, scale: float = 100.0) -> pd.DataFrame:
    """A family of leads (:func:`lowrank.experiments.network_probe.leads`) as one row per feature
    set and one column per control and level ("noisy pixels, σ = 0.002", "noisy pixels, its
    peak"): the lead times ``scale`` (points) with its simultaneous interval, e.g.
    ``"+3.1 [+2.4, +3.8]"``. A feature set whose peak is the first level has no second
    reading: its cell says so."""
    table: dict[str, dict[str, str]] = {}
    controls = list(dict.fromkeys(lead.control for lead in family))
    for lead in family:
        where = "σ = 0.002" if lead.level == 0 else "its peak"
        d, joint = lead.difference, lead.simultaneous
        text = f"{scale * d.mean:+.1f} [{scale * joint.low:+.1f}, {scale * joint.high:+.1f}]"
        table.setdefault(lead.features, {})[f"{lead.control}, {where}"] = text
    present = {column for row in table.values() for column in row}
    columns = [f"{c}, {w}" for c in controls for w in ("σ = 0.002", "its peak")
               if f"{c}, {w}" in present]  # fmt: skip
    frame = pd.DataFrame.from_dict(table, orient="index", columns=columns)
    return frame.fillna("peak at σ = 0.002")


def _finite(values, name: str) -> np.ndarray:
    """``values`` as a non-empty float64 array of finite numbers, or a ValueError naming it."""
    a = _array(values) if not isinstance(values, numbers.Number) else np.array([float(values)])
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be non-empty and finite, got {a.tolist()}")
    return a


def _pair(ours, paper, stderr=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``ours``, ``paper`` and ``stderr`` (zeros when ``None``) checked: finite, one shape."""
    o, p = _finite(ours, "ours"), _finite(paper, "paper")
    e = np.zeros_like(o) if stderr is None else _finite(stderr, "stderr")
    if not o.shape == p.shape == e.shape:
        raise ValueError(
            f"ours, paper and stderr must have one length, got {o.size}, {p.size} and {e.size}"
        )
    if np.any(e < 0):
        raise ValueError(f"stderr must be >= 0, got {e.tolist()}")
    return o, p, e


def relative_gaps(ours, paper) -> np.ndarray:
    """``(ours - paper) / |paper|`` entry by entry."""
    o, p, _ = _pair(ours, paper)
    return (o - p) / np.abs(p)


def worst_gap(ours, paper) -> float:
    """Largest ``|ours - paper| / |paper|`` over the entries."""
    return float(np.max(np.abs(relative_gaps(ours, paper))))


def within(ours, paper, rel_tol: float, stderr=None, z: float = 3.0) -> bool:
    """Whether every entry satisfies ``|ours - paper| <= rel_tol |paper| + z stderr``: the paper's
    value, up to ``rel_tol``, once our Monte Carlo error is allowed for."""
    o, p, e = _pair(ours, paper, stderr)
    rel_tol = check_real(rel_tol, "rel_tol", 0.0)
    z = check_real(z, "z", 0.0)
    return bool(np.all(np.abs(o - p) <= rel_tol * np.abs(p) + z * e))


def agreement_verdict(ours, paper, rel_tol: float, stderr=None, z: float = 3.0) -> str:
    """``"reproduced (within 3%)"`` or ``"not reproduced (worst gap 52%)"``."""
    if within(ours, paper, rel_tol, stderr, z):
        return f"reproduced (within {rel_tol:.0%})"
    return f"not reproduced (worst gap {worst_gap(ours, paper):.0%})"


def peak(sigmas, values) -> tuple[float, float]:
    """``(sigma, value)`` at the largest value."""
    s, v = _finite(sigmas, "sigmas"), _finite(values, "values")
    if s.shape != v.shape:
        raise ValueError(f"sigmas and values must have one length, got {s.size} and {v.size}")
    i = int(np.argmax(v))
    return float(s[i]), float(v[i])


def monotone_decreasing(values, stderr=None, z: float = 3.0) -> bool:
    """Whether no step from one sigma to the next rises by more than ``z`` standard errors of
    the difference (exactly, when ``stderr`` is ``None``)."""
    v, _, e = _pair(values, values, stderr)
    z = check_real(z, "z", 0.0)
    return bool(np.all(np.diff(v) <= z * np.hypot(e[1:], e[:-1])))
