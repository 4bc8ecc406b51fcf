"""Regression across machines: each chapter's results cell against its reference, compared
exactly on the platform that made the reference and within measured tolerances on any other.

A results cell (``lowrank.book.report.results``) prints ``name = value`` lines. Two runs on equal
platforms (``lowrank.provenance.platform_record``: processor, instruction sets, libraries, torch,
device, threads, numeric settings) reproduce each other's text exactly, so there the comparison
is the sanitized text, line for line. An executed notebook without a recorded platform counts
as another platform.

On another platform a float that differs in its last bit can flip a probe's prediction, an
argmax over noise levels or a verdict near its threshold, and everything downstream of it moves
as if another seed had been drawn. We take a platform to move a result no further than a seed
does (the numeric settings measured here and an Intel Xeon moved far less), so the tolerances
are measured over seeds (``tolerances``: the reference, at seed 0, and reruns at
other seeds, stored in ``tests/nbval/tolerances.json``), and each value is compared by its kind:

* **numbers**: ``|ours - reference| <= t s sqrt(2) + u``, with ``s`` the sample deviation of the
  value over the seed runs (reference included), ``t`` Student's quantile at
  :data:`FALSE_ALARM` two-sided with ``runs - 1`` degrees of freedom (a new draw minus the
  reference has variance ``2 sigma^2``), and ``u`` one unit in the last printed digit (a value
  on a rounding boundary). A value the seeds never moved gets ``u`` alone.
* **infinite or NaN numbers**: equal, or allowed to switch with finite ones only where the seeds
  made that switch (a minimum detectable effect that is infinite at one seed, finite at another).
* **texts** (verdicts, block names, booleans) are compared by family, the text with every number
  in it replaced by ``#`` (the numbers a verdict quotes are glued, and compared, on their own).
  A family every seed printed must stay; a choice the seeds changed (the block a validation
  split picks, a verdict near its threshold) may take any form, since a few seeds cannot list
  every choice a fresh draw makes: the numbers behind it are what is compared.
* a result missing on either side fails, unless the seeds, too, printed it at some seeds and
  not at others (a text glued only when it is short).

``python tools/regression.py compare --executed DIR`` compares the chapters in ``DIR``;
``python tools/regression.py tolerances --runs DIR...`` measures the tolerances from seed runs
(``make nbval-tolerances``); ``python tools/regression.py show`` prints them.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbval.plugin import get_sanitize_patterns

if __package__ in (None, ""):  # run as a script (python tools/regression.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lowrank.book.report import RESULTS_DIGITS
from lowrank.measure.stats import t_quantile
from tools import book  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REFERENCES = ROOT / "tests" / "nbval" / "quick"
TOLERANCES = ROOT / "tests" / "nbval" / "tolerances.json"
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
#: Probability that a value moved as far as a fresh seed moves it fails the tolerant comparison.
FALSE_ALARM = 1e-3
# a number in a sentence, not a digit of a name (up_blocks.1, T_1a2b3)
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.])[-+−]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_RESULT_LINE = re.compile(r"^(?P<name>\S+) (?:= (?P<value>.*)|(?P<bound>< .*))$")


def sanitize_patterns() -> list[tuple[str, str]]:
    """nbval's sanitizers (``tests/nbval_sanitize.cfg``) as ``(regex, replacement)`` pairs."""
    return get_sanitize_patterns(SANITIZE.read_text())


def sanitized(text: str) -> str:
    """``text`` through nbval's sanitizers: wall times, addresses and table ids replaced."""
    for regex, replace in sanitize_patterns():
        text = re.sub(regex, replace, text)
    return text


def parse_results(text: str) -> dict[str, str]:
    """``{name: value text}`` of a results cell's ``name = value`` and ``name < 1e-10`` lines.

    Raises:
        ValueError: a line of another form, or a name printed twice.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _RESULT_LINE.match(line)
        if match is None:
            raise ValueError(f"results line {number} is not 'name = value': {line!r}")
        name = match["name"]
        if name in values:
            raise ValueError(f"results line {number}: {name!r} is printed twice")
        values[name] = match["value"] if match["value"] is not None else match["bound"]
    return values


def as_number(text: str) -> float | None:
    """The value of a printed number (``inf`` and ``nan`` included; ``< 1e-10``, a float64
    residual, is 0); ``None`` for a text."""
    if text in ("True", "False"):
        return None
    if text.startswith("< "):
        return 0.0
    try:
        return float(text)
    except ValueError:
        return None


def last_digit_unit(text: str) -> float:
    """One unit in the last digit :func:`lowrank.book.report.results` prints for this number: a
    float
    printed with :data:`RESULTS_DIGITS` significant digits, or 0 for an integer with more digits
    than that (an integer prints in full and does not round)."""
    if text.startswith("< "):  # a residual printed as a bound moves within the bound
        return float(text[2:])
    value = as_number(text)
    if value is None or not math.isfinite(value) or value == 0:
        return 0.0
    if re.fullmatch(r"-?\d+", text) and len(text.lstrip("-")) > RESULTS_DIGITS:
        return 0.0
    return 10.0 ** (math.floor(math.log10(abs(value))) - (RESULTS_DIGITS - 1))


def family(text: str) -> str:
    """A text with every number in it replaced by ``#``: the verdict without its figures."""
    return _NUMBER_IN_TEXT.sub("#", text)


@dataclass(frozen=True)
class Tolerance:
    """What the seed runs showed of one result: the texts they printed (reference first),
    ``None`` where a run did not print it (a chapter that glues a text only when it is short)."""

    observed: tuple[str | None, ...]

    @property
    def printed(self) -> list[str]:
        return [t for t in self.observed if t is not None]

    @property
    def optional(self) -> bool:
        """Whether some seeds printed this result and others did not."""
        return None in self.observed and bool(self.printed)

    @property
    def finite(self) -> list[float]:
        numbers = [as_number(t) for t in self.printed]
        return [x for x in numbers if x is not None and math.isfinite(x)]

    @property
    def spread(self) -> float:
        """The sample deviation over the runs of the finite values (0 with fewer than two)."""
        finite = self.finite
        return statistics.stdev(finite) if len(finite) > 1 else 0.0

    @property
    def half_width(self) -> float:
        """``t s sqrt(2)``: how far a fresh draw may lie from the reference (before the unit)."""
        if self.spread == 0:
            return 0.0
        t = t_quantile(1 - FALSE_ALARM / 2, len(self.finite) - 1)
        return t * self.spread * math.sqrt(2)

    @property
    def switches_finiteness(self) -> bool:
        numbers = [as_number(t) for t in self.printed]
        kinds = {math.isfinite(x) for x in numbers if x is not None}
        return len(kinds) > 1

    @property
    def families(self) -> set[str]:
        return {family(t) for t in self.printed}


@dataclass(frozen=True)
class Mismatch:
    """One result that moved beyond what its rule accepts."""

    name: str
    reference: str
    ours: str
    accepted: str

    def line(self) -> str:
        return f"  {self.name}: reference {self.reference}, this run {self.ours} ({self.accepted})"


def compare_value(name: str, reference: str, ours: str, tolerance: Tolerance | None):
    """``None`` when ``ours`` is accepted against ``reference`` on another platform, else the
    :class:`Mismatch` that says what would have been accepted. Without a measured
    ``tolerance`` (a result added since the seeds were run) a value may move by ``u`` alone."""
    if ours == reference:
        return None
    tolerance = tolerance or Tolerance((reference,))
    ref_number, our_number = as_number(reference), as_number(ours)
    if ref_number is not None and our_number is not None:
        if math.isfinite(ref_number) and math.isfinite(our_number):
            allowed = tolerance.half_width + last_digit_unit(reference)
            # the decimal texts' difference, as floats, may exceed the unit by a rounding error
            slack = 1e-9 * max(abs(ref_number), abs(our_number))
            if abs(our_number - ref_number) <= allowed + slack:
                return None
            return Mismatch(
                name,
                reference,
                ours,
                f"moved {our_number - ref_number:+.4g}, tolerance ±{allowed:.3g}",
            )
        if tolerance.switches_finiteness:
            return None
        return Mismatch(name, reference, ours, "the seeds never switched it finite/infinite")
    if family(ours) == family(reference) or len(tolerance.families) > 1:
        return None
    return Mismatch(name, reference, ours, f"every seed printed {family(reference)!r}")


def compare_tolerant(
    reference: dict[str, str], ours: dict[str, str], tolerances: dict[str, Tolerance]
) -> list[Mismatch]:
    """Every result of ``reference`` or ``ours`` that :func:`compare_value` does not accept."""
    mismatches = []
    for name in reference.keys() | ours.keys():
        optional = name in tolerances and tolerances[name].optional
        if name not in ours and not optional:
            mismatches.append(Mismatch(name, reference[name], "(missing)", "not glued any more"))
        elif name not in reference and not optional:
            mismatches.append(Mismatch(name, "(missing)", ours[name], "not in the reference"))
        elif name in ours and name in reference:
            found = compare_value(name, reference[name], ours[name], tolerances.get(name))
            if found is not None:
                mismatches.append(found)
    order = list(reference) + [n for n in ours if n not in reference]
    return sorted(mismatches, key=lambda m: order.index(m.name))


def platform_of(nb) -> dict | None:
    """The platform an executed notebook recorded (``None`` when it recorded none)."""
    return nb.metadata.get(book.PLATFORM_KEY) or None


def same_platform(a: dict | None, b: dict | None) -> bool:
    """Whether two recorded platforms are equal; an unrecorded one equals nothing."""
    return a is not None and b is not None and a == b


def platform_difference(a: dict | None, b: dict | None) -> str:
    """The fields in which two platforms differ, in words."""
    if a is None or b is None:
        return "the platform of " + ("the reference" if a is None else "this run") + " is unknown"
    fields = [
        f"{k}: {a.get(k)!r} vs {b.get(k)!r}"
        for k in sorted(a.keys() | b.keys())
        if a.get(k) != b.get(k)
    ]
    return "; ".join(fields)


def load_tolerances(path: Path = TOLERANCES) -> dict[str, dict[str, Tolerance]]:
    """``{chapter: {name: Tolerance}}`` from the tolerance file (empty when there is none)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {
        chapter: {name: Tolerance(tuple(texts)) for name, texts in entry["values"].items()}
        for chapter, entry in data["chapters"].items()
    }


@dataclass(frozen=True)
class Comparison:
    """A chapter's results against its reference: the mode used and what failed."""

    chapter: str
    mode: str  # "exact" (same platform) or "tolerant"
    why: str  # why that mode
    diff: str  # exact mode: the unified diff; tolerant: the mismatches, one per line
    compared: int  # number of results compared
    moved: int  # how many of them differ from the reference at all

    @property
    def ok(self) -> bool:
        return not self.diff

    def report(self) -> str:
        head = f"{self.chapter}: {self.mode} comparison of {self.compared} results ({self.why})"
        if self.ok and self.moved:
            return head + f": agree ({self.moved} moved, each within its tolerance)"
        if self.ok:
            return head + ": agree"
        return head + f": differ ({self.moved} moved)\n" + self.diff


def compare_chapter(
    executed: Path,
    reference: Path,
    tolerances: dict[str, Tolerance] | None = None,
    mode: str = "auto",
) -> Comparison:
    """Compare the results cell of the executed notebook ``executed`` with ``reference``'s.

    Arguments:
        mode: ``"auto"`` (exact when both recorded the same platform, tolerant otherwise),
            ``"exact"`` or ``"tolerant"``.
    """
    if mode not in ("auto", "exact", "tolerant"):
        raise ValueError(f"mode must be auto, exact or tolerant, got {mode!r}")
    if not reference.exists():
        raise FileNotFoundError(
            f"{reference}: no reference for this chapter (make nbval-references)"
        )
    ours_nb, ref_nb = results_notebook(executed), results_notebook(reference)
    ours_text = sanitized(book.results_text(ours_nb))
    ref_text = sanitized(book.results_text(ref_nb))
    ours_platform, ref_platform = platform_of(ours_nb), platform_of(ref_nb)
    if mode == "auto":
        same = same_platform(ours_platform, ref_platform)
        mode = "exact" if same else "tolerant"
        why = "same platform" if same else platform_difference(ref_platform, ours_platform)
    else:
        why = f"{mode} mode asked for"
    ref_lines, our_lines = ref_text.splitlines(), ours_text.splitlines()
    # in both modes, "moved" counts the reference's lines this run does not print as they are
    moved = len(set(ref_lines) - set(our_lines))
    if mode == "exact":
        diff = "\n".join(
            difflib.unified_diff(ref_lines, our_lines, "reference", "this run", lineterm="")
        )
        return Comparison(executed.stem, mode, why, diff, len(ref_lines), moved)
    reference_values, our_values = parse_results(ref_text), parse_results(ours_text)
    mismatches = compare_tolerant(reference_values, our_values, tolerances or {})
    diff = "\n".join(m.line() for m in mismatches)
    return Comparison(executed.stem, mode, why, diff, len(reference_values), moved)


def executed_notebooks(folder: Path) -> list[Path]:
    """The executed chapters in ``folder``, without the hidden inputs papermill is running."""
    return sorted(p for p in Path(folder).glob("*.ipynb") if not p.name.startswith("."))


def results_notebook(path: Path):
    """The notebook at ``path``, checked to hold a results cell that printed something."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: execute the chapter first (make unit)")
    nb = nbformat.read(path, as_version=4)
    text = book.results_text(nb)
    if text is None:
        raise ValueError(f"{path} has no results cell: execute it with tools/book.py")
    if not text:
        raise ValueError(f"{path}: its results cell printed nothing (did an earlier cell fail?)")
    return nb


def measure_tolerances(references: Path, runs: list[Path], previous: dict | None = None) -> dict:
    """The tolerance file's content: for every chapter in ``runs`` and each of its results, the
    texts its reference and each seed run printed, with the seeds and the platform. Chapters
    of ``previous`` (the file as it was) that ``runs`` do not hold are kept. A chapter whose
    checks failed at a seed (an error output) is listed under ``failed_seeds`` and contributes
    no values: a platform where the checks fail fails CI whatever its results, so the
    tolerances describe the runs that pass them.

    Raises:
        ValueError: a run whose chapters share no seed of their own (seed 0 is the
            reference's).
    """
    chapters = dict((previous or {}).get("chapters", {}))
    measured: dict[str, dict] = {}
    taken = {0}
    for run in runs:
        notebooks = executed_notebooks(run)
        seeds = {seed_of(nbformat.read(p, as_version=4)) for p in notebooks}
        if len(seeds) != 1 or seeds & taken:
            raise ValueError(
                f"{run}: its chapters ran with seeds {sorted(seeds, key=str)}; each run needs "
                f"one seed of its own, not one of {sorted(taken)}"
            )
        seed = seeds.pop()
        taken.add(seed)
        for path in notebooks:
            nb = nbformat.read(path, as_version=4)
            ref_nb = results_notebook(references / path.name)
            if failed(nb):  # its checks fail at this seed: CI would fail it on any platform
                entry = measured.setdefault(path.stem, new_entry(ref_nb))
                entry["failed_seeds"].append(seed)
                continue
            nb = results_notebook(path)
            ours = parse_results(sanitized(book.results_text(nb)))
            entry = measured.setdefault(path.stem, new_entry(ref_nb))
            earlier = len(entry["seeds"])
            entry["seeds"].append(seed)
            entry["platforms"].append(platform_of(nb))
            # a result some seeds do not print (a text glued only when it is short) is None there
            for name in entry["values"].keys() | ours.keys():
                entry["values"].setdefault(name, [None] * earlier).append(ours.get(name))
    chapters.update(measured)
    return {
        "rule": "tools/regression.py: numbers within t(1 - false_alarm/2, seeds - 1) s sqrt(2) "
        "plus one unit of the last printed digit; texts by family",
        "false_alarm": FALSE_ALARM,
        "chapters": dict(sorted(chapters.items())),
    }


def new_entry(reference) -> dict:
    """A chapter's entry of the tolerance file, holding its reference's values (seed 0)."""
    values = parse_results(sanitized(book.results_text(reference)))
    return {
        "seeds": [0],
        "failed_seeds": [],
        "platforms": [platform_of(reference)],
        "values": {name: [text] for name, text in values.items()},
    }


def failed(nb) -> bool:
    """Whether an executed notebook holds an error output (a check that failed, say)."""
    return any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


def seed_of(nb) -> int | None:
    """The seed papermill gave an executed notebook (``None`` when it was run by hand)."""
    return nb.metadata.get("papermill", {}).get("parameters", {}).get("seed")


def tolerance_table(tolerances: dict[str, dict[str, Tolerance]]) -> str:
    """Every result with a measured spread, as Markdown: its seeds' values and tolerance."""
    lines = ["| chapter | result | values over seeds | tolerance |", "|---|---|---|---|"]
    for chapter, values in tolerances.items():
        for name, tol in values.items():
            if len(set(tol.observed)) == 1:
                continue
            if tol.optional:
                rule = "may be missing; "
            else:
                rule = ""
            if tol.finite and len(tol.finite) == len(tol.printed):
                rule += f"±{tol.half_width:.3g}"
            elif tol.switches_finiteness:
                rule += f"±{tol.half_width:.3g}; finite or not"
            else:
                rule += "families: " + " | ".join(sorted(tol.families))
            shown = ", ".join("–" if t is None else t for t in tol.observed)
            lines.append(f"| {chapter} | {name} | {shown} | {rule} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/regression.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    compare = sub.add_parser("compare", help="compare executed chapters with the references")
    compare.add_argument(
        "--executed",
        type=Path,
        required=True,
        help="folder of chapters executed at the quick profile",
    )
    compare.add_argument("--references", type=Path, default=REFERENCES)
    compare.add_argument("--tolerances", type=Path, default=TOLERANCES)
    compare.add_argument("--mode", default="auto", choices=("auto", "exact", "tolerant"))
    measure = sub.add_parser("tolerances", help="measure the tolerances from seed runs")
    measure.add_argument("--references", type=Path, default=REFERENCES)
    measure.add_argument("--out", type=Path, default=TOLERANCES)
    measure.add_argument(
        "--runs",
        type=Path,
        nargs="+",
        required=True,
        help="folders of the chapters executed at quick with other seeds",
    )
    show = sub.add_parser("show", help="print the measured tolerances as a Markdown table")
    show.add_argument("--tolerances", type=Path, default=TOLERANCES)
    args = parser.parse_args(argv)
    if args.command == "tolerances":
        missing = [str(r) for r in args.runs if not r.is_dir()]
        if missing:
            parser.error(f"--runs: no such folder {missing}")
        previous = json.loads(args.out.read_text()) if args.out.exists() else None
        content = measure_tolerances(args.references, args.runs, previous)
        args.out.write_text(json.dumps(content, indent=1) + "\n")
        print(f"wrote {args.out}: {len(args.runs)} seed runs")
        return 0
    if args.command == "show":
        print(tolerance_table(load_tolerances(args.tolerances)))
        return 0
    if not args.executed.is_dir():
        parser.error(f"--executed {args.executed}: no such folder")
    executed = executed_notebooks(args.executed)
    if not executed:
        parser.error(f"--executed {args.executed}: holds no executed notebook (*.ipynb)")
    tolerances = load_tolerances(args.tolerances)
    failed = 0
    for path in executed:
        try:
            comparison = compare_chapter(
                path, args.references / path.name, tolerances.get(path.stem, {}), args.mode
            )
        except (FileNotFoundError, ValueError) as error:
            print(f"{path.stem}: not compared: {error}")
            failed += 1
            continue
        print(comparison.report())
        failed += not comparison.ok
    print(f"{len(executed) - failed} of {len(executed)} chapters agree with their references")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
