"""Build tooling of the book: execute the notebooks at a profile, stage and normalize them.

This is not science and not part of :mod:`lowrank`: it reads ``notebooks/`` and ``book/`` of
this repository. Profiles (``notebooks/params/<profile>.yaml``, one flat mapping each; the
same parameter names in every notebook):

* ``quick``: CI; every notebook together about 20 minutes on 2 CPU cores into an empty model cache;
* ``standard``: CPU; what the committed notebooks show;
* ``full``: paper scale, meant for a GPU box.

Command line (what the Makefile calls)::

    python tools/book.py execute --profile quick --out _build/executed/quick notebooks/*.ipynb
    python tools/book.py strip-injected --out _build/nbval notebooks/*.ipynb
    python tools/book.py stage --executed _build/executed/quick --dest _build/src
    python tools/book.py normalize notebooks/*.ipynb
    python tools/book.py references --out tests/nbval/quick _build/executed/quick/*.ipynb

``execute`` runs each notebook with papermill, passing only the parameters its ``parameters``
cell declares, and writes the executed copies and ``provenance.json`` (profile, device,
versions, git revision, wall time per notebook) into ``--out``. ``stage`` assembles the book's
source from executed notebooks (the committed ones by default): the page drops papermill's injected
parameters cell and shows its values in the parameters cell instead of the quick defaults.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import yaml

if __package__ in (None, ""):  # run as a script (python tools/book.py): tools/ is not a package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PARAMS_DIR = ROOT / "notebooks" / "params"
PROFILES = ("quick", "standard", "full")
INJECTED = "injected-parameters"
# The last cell of every executed chapter: its results as stable text, which nbval compares
# (tagged for nbval's lax mode). `execute` appends it, as papermill injects the parameters, so
# that every chapter gets the same cell and a committed notebook gets it at its next rerun.
RESULTS = "results"
NBVAL_CHECK = "nbval-check-output"
# where an executed notebook records the platform that ran it (lowrank.provenance.platform_record)
PLATFORM_KEY = "lowrank_platform"
RESULTS_SOURCE = """\
# Results: every number and verdict this chapter glued, rounded (lowrank.book.report.results);
# nbval compares this cell with tests/nbval/quick (make nbval) or the committed notebook.
from lowrank.book import report

print(report.results())"""


def load_profile(profile: str, params_dir: Path | str = PARAMS_DIR) -> dict:
    """Parameters of a profile: the flat mapping in ``<params_dir>/<profile>.yaml``."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    path = Path(params_dir) / f"{profile}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no parameter file {path}")
    params = yaml.safe_load(path.read_text()) or {}
    params["profile"] = profile
    return params


def execute(
    notebooks: list[Path],
    profile: str,
    out: Path,
    device: str | None = None,
    overrides: dict | None = None,
    keep_going: bool = False,
) -> list[dict]:
    """Execute ``notebooks`` with papermill at ``profile`` into ``out``; return the records.

    ``overrides`` replace values of the profile (``{"seed": 1}`` reruns every chapter with
    another seed, as the regression tolerances are measured). Each executed notebook records
    the platform that ran it in its metadata (:data:`PLATFORM_KEY`), which decides whether the
    regression test compares it exactly or within tolerances.

    ``device`` (auto, cpu, cuda, cuda:N) is handed to every chapter as ``LOWRANK_DEVICE``, the one
    place the chapters take their device from; ``None`` keeps the variable as it is. It is checked
    before the first notebook starts, so that ``cuda`` on a machine without a GPU stops at once.
    Stops at the first failing notebook (papermill writes what ran, with the error, to
    ``out``), after saving the records of the notebooks that ran; with ``keep_going``, runs the
    others and then raises a ``RuntimeError`` that names every failed one.
    """
    import papermill as pm

    from lowrank.provenance import DEVICE_VARIABLE, environment, platform_record, resolve_device

    if device is not None:
        os.environ[DEVICE_VARIABLE] = device
    resolve_device()
    params = load_profile(profile)
    unknown = set(overrides or {}) - set(params)
    if unknown:
        raise KeyError(
            f"--set {sorted(unknown)}: not parameters of {profile}.yaml; "
            f"choose among {sorted(params)}"
        )
    params.update(overrides or {})
    platform = platform_record()
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    records = [
        r for r in read_provenance(out) if r["notebook"] not in {nb.stem for nb in notebooks}
    ]
    failed = []
    for nb in notebooks:
        declared = set(pm.inspect_notebook(str(nb)))
        missing = declared - set(params)
        if missing:
            raise KeyError(f"{nb}: parameters {sorted(missing)} have no value in {profile}.yaml")
        chosen = {k: v for k, v in params.items() if k in declared}
        print(f"[{profile}] {nb.name} ...", flush=True)
        start = time.perf_counter()
        record = {"notebook": nb.stem, "profile": profile, **env}
        source = out / f".{nb.stem}.input.ipynb"
        nbformat.write(with_results_cell(nbformat.read(nb, as_version=4)), source)
        try:
            pm.execute_notebook(
                str(source),
                str(out / nb.name),
                parameters=chosen,
                kernel_name="python3",
                cwd=str(nb.parent),
                progress_bar=False,
            )
            record["status"] = "ok"
        except Exception:
            record["status"] = "failed"
            if not keep_going:
                raise
            failed.append(nb.name)
        finally:
            source.unlink()
            if (out / nb.name).exists():
                stamp_platform(out / nb.name, platform)
            record["seconds"] = round(time.perf_counter() - start, 1)
            records.append(record)
            (out / "provenance.json").write_text(json.dumps(records, indent=2) + "\n")
            print(
                f"[{profile}] {nb.name}: {record['status']} in {record['seconds']} s", flush=True
            )
    if failed:
        raise RuntimeError(f"failed (their errors are in {out}): {', '.join(failed)}")
    return records


def stamp_platform(path: Path, platform: dict) -> None:
    """Record ``platform`` (:func:`lowrank.provenance.platform_record`) in the notebook at
    ``path``, under ``metadata[PLATFORM_KEY]``."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata[PLATFORM_KEY] = platform
    nbformat.write(nb, path)


def with_results_cell(nb):
    """``nb`` ending in the results cell (:data:`RESULTS_SOURCE`), added when it has none."""
    if any(RESULTS in c.metadata.get("tags", []) for c in nb.cells):
        return nb
    nb = copy.deepcopy(nb)
    cell = nbformat.v4.new_code_cell(RESULTS_SOURCE)
    cell.metadata["tags"] = [RESULTS, NBVAL_CHECK, "hide-cell"]  # behind a toggle on the page
    cell.id = "results"
    nb.cells.append(cell)
    return nb


def read_provenance(folder: Path) -> list[dict]:
    """Records in ``folder/provenance.json`` (empty when there is none)."""
    path = Path(folder) / "provenance.json"
    return json.loads(path.read_text()) if path.exists() else []


def status_table(records: list[dict]) -> str:
    """Markdown table of execution records, for the book's status page: five columns (seven did
    not fit the page's column), torch's version once below it, a failed run's status in its
    wall-time cell."""
    lines = [
        "| notebook | profile | wall time (s) | device | git |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        seconds = r["seconds"] if r["status"] == "ok" else f"{r['status']} after {r['seconds']}"
        lines.append(
            f"| {r['notebook']} | {r['profile']} | {seconds} | {r['device']} | `{r['git']}` |"
        )
    versions = ", ".join(sorted({str(r["torch"]) for r in records}))
    return "\n".join(lines) + f"\n\ntorch {versions}.\n"


# ruff's line length, which the staged parameters cell keeps to
LINE_LENGTH = 99
# one `name: type = value  # comment` line of a parameters cell
PARAMETER_LINE = re.compile(
    r"^(?P<head>(?P<name>[A-Za-z_]\w*)\s*(?::[^=]+)?=\s*)(?P<value>.*?)(?P<comment>\s+#.*)?$"
)


def injected_values(source: str) -> dict[str, str]:
    """``name -> value source`` of papermill's injected cell (``name = value`` lines)."""
    values = {}
    for line in source.splitlines():
        match = PARAMETER_LINE.match(line)
        if match:
            values[match["name"]] = match["value"]
    return values


def shown_parameters(source: str, injected: dict[str, str], stem: str, profile: str) -> str:
    """The parameters cell as the page shows it: each value the run was given in place of the
    default (type and comment kept), under comment lines that say which profile that was and how
    to change it. A comment that the longer value pushes past the line length goes on the line
    above, as a page clips long code lines."""
    lines = [
        f"# This page ran with the {profile} profile (notebooks/params/{profile}.yaml); the",
        "# notebook's own defaults, which a run by hand takes, are the quick profile's. Change",
        f"# them with: make nb-{stem} PROFILE=... or papermill -p name value",
    ]
    for line in source.splitlines():
        match = PARAMETER_LINE.match(line)
        if match and match["name"] in injected:
            line = match["head"] + injected[match["name"]]
            comment = (match["comment"] or "").strip()
            if comment and len(line) + 2 + len(comment) > LINE_LENGTH:
                lines.append(comment)
            elif comment:
                line += "  " + comment
        lines.append(line)
    return "\n".join(lines)


def for_the_page(nb, stem: str = "notebook"):
    """The notebook as the book shows it: papermill's injected parameters cell removed, and the
    parameters cell showing the values the run was given instead of its quick defaults, so the
    page shows what produced it (the banner names the profile too)."""
    nb = copy.deepcopy(nb)
    injected = {}
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if INJECTED in tags:
            injected = injected_values(cell.source)
            if "remove-cell" not in tags:
                cell.metadata["tags"] = [*tags, "remove-cell"]
    if injected:
        profile = injected.get("profile", "?").strip("\"'")
        for cell in nb.cells:
            if "parameters" in cell.metadata.get("tags", []):
                cell.source = shown_parameters(cell.source, injected, stem, profile)
    return nb


# what a staged folder holds (with the HTML that Jupyter Book builds into _build): a folder with
# anything else in it is someone's files, and staging refuses to replace it
STAGED = ".staged-by-tools-book"
STAGED_NAMES = {STAGED, "_config.yml", "_toc.yml", "notebooks", "book", "_build"}


def stage_book(executed: Path, dest: Path, root: Path = ROOT) -> None:
    """Assemble the book's source in ``dest``: the configuration and prose from ``root`` and
    the executed notebooks from ``executed``. When ``executed`` holds a ``provenance.json``,
    the status table is written from it; otherwise the committed one is kept."""
    missing = [
        nb.name
        for nb in sorted((root / "notebooks").glob("*.ipynb"))
        if not (executed / nb.name).exists()
    ]
    if missing:
        raise FileNotFoundError(f"not executed yet in {executed}: {missing}")
    if dest.exists():
        foreign = (
            sorted(p.name for p in dest.iterdir() if p.name not in STAGED_NAMES)
            if (dest.is_dir())
            else [dest.name]
        )
        if foreign:
            raise FileExistsError(
                f"{dest} holds what this tool did not stage ({', '.join(foreign[:5]) or 'a file'}"
                "): staging replaces the folder, so pass a new or previously staged --dest"
            )
        shutil.rmtree(dest)
    (dest / "notebooks").mkdir(parents=True)
    (dest / STAGED).write_text("staged by tools/book.py stage; replaced by the next staging\n")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, dest / name)
    shutil.copytree(root / "book", dest / "book")
    for path in sorted(executed.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.write(for_the_page(nb, path.stem), dest / "notebooks" / path.name)
    records = read_provenance(executed)
    if records:
        (dest / "book" / "_status_table.md").write_text(status_table(records))
    # the "What reproduces" table, from the values these notebooks glued
    (dest / "book" / "_results_table.md").write_text(results.results_table(executed))


def strip_injected_parameters(notebooks: list[Path], out: Path) -> None:
    """Copy notebooks without papermill's ``injected-parameters`` cell.

    Committed notebooks carry the outputs of a standard run and the cell papermill injected
    for it; without that cell they run with the defaults of their ``parameters`` cell (the
    quick profile), which is what nbval replays in CI.
    """
    out.mkdir(parents=True, exist_ok=True)
    for nb_path in notebooks:
        nb = nbformat.read(nb_path, as_version=4)
        nb.cells = [c for c in nb.cells if INJECTED not in c.metadata.get("tags", [])]
        nbformat.write(nb, out / nb_path.name)


def results_text(nb) -> str | None:
    """The text the results cell of an executed notebook printed (``None`` without one)."""
    for cell in nb.cells:
        if RESULTS in cell.metadata.get("tags", []):
            return "".join(o.get("text", "") for o in cell.get("outputs", [])
                           if o.get("output_type") == "stream")  # fmt: skip
    return None


def write_references(executed: list[Path], out: Path) -> None:
    """nbval's references of a profile from executed notebooks: each without papermill's
    injected cell (nbval replays it with its defaults, the quick profile) and with every output
    removed but those of the cells tagged ``nbval-check-output`` (the results cell, and any other
    a chapter marks), the only ones lax mode compares (figures would make the references
    megabytes). Refuses a notebook without a results cell or with an error."""
    out.mkdir(parents=True, exist_ok=True)
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        if results_text(nb) is None:
            raise ValueError(f"{path} has no results cell: execute it with tools/book.py first")
        if any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", [])):
            raise ValueError(f"{path} holds an error output: fix the notebook and rerun it")
        nb.cells = [c for c in nb.cells if INJECTED not in c.metadata.get("tags", [])]
        for cell in nb.cells:
            if cell.cell_type == "code" and NBVAL_CHECK not in cell.metadata.get("tags", []):
                cell.outputs, cell.execution_count = [], None
        nbformat.write(normalized(nb), out / path.name)


def normalized(nb):
    """The notebook with run-specific metadata removed (timestamps, per-cell durations), so that
    a rerun with the same outputs gives the same file."""
    nb = copy.deepcopy(nb)
    platform = nb.metadata.get(PLATFORM_KEY)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    if platform:  # what made the outputs, which the regression test reads
        nb.metadata[PLATFORM_KEY] = platform
    for cell in nb.cells:
        for key in ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":  # papermill's injected cell ends in a newline ruff removes
            cell.source = cell.source.rstrip()
    return nb


def _normalize_files(notebooks: list[Path]) -> None:
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        nbformat.write(normalized(nb), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/book.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("execute", help="execute notebooks with papermill at a profile")
    run.add_argument("--profile", default="quick", choices=PROFILES)
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--status-table", type=Path, help="also write the records as Markdown here")
    run.add_argument(
        "--device", help="auto | cpu | cuda | cuda:N for every chapter (default: $LOWRANK_DEVICE)"
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="replace a parameter of the profile (YAML value), e.g. --set seed=1; repeatable",
    )
    run.add_argument(
        "--keep-going", action="store_true", help="run every notebook, even after one fails"
    )
    run.add_argument("notebooks", type=Path, nargs="+")
    strip = sub.add_parser("strip-injected", help="copy notebooks without injected parameters")
    strip.add_argument("--out", type=Path, required=True)
    strip.add_argument("notebooks", type=Path, nargs="+")
    stage = sub.add_parser("stage", help="assemble the book source from executed notebooks")
    stage.add_argument("--executed", type=Path, required=True)
    stage.add_argument("--dest", type=Path, required=True)
    refs = sub.add_parser("references", help="nbval references from executed notebooks")
    refs.add_argument("--out", type=Path, required=True)
    refs.add_argument("notebooks", type=Path, nargs="+")
    norm = sub.add_parser("normalize", help="strip run-specific metadata in place")
    norm.add_argument("notebooks", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "execute":
        from lowrank.provenance import resolve_device

        try:  # a device this machine lacks stops here, in one line, before any notebook runs
            resolve_device(args.device)
        except (ValueError, RuntimeError) as error:
            parser.error(str(error))
        overrides = {}
        for item in args.overrides:
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                parser.error(f"--set {item!r}: write NAME=VALUE, e.g. --set seed=1")
            overrides[name.strip()] = yaml.safe_load(value)
        try:
            records = execute(
                args.notebooks, args.profile, args.out, args.device, overrides, args.keep_going
            )
        except KeyError as error:
            parser.error(str(error.args[0]))
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 1
        if args.status_table:
            args.status_table.write_text(status_table(records))
    elif args.command == "stage":
        stage_book(args.executed, args.dest)
    elif args.command == "strip-injected":
        strip_injected_parameters(args.notebooks, args.out)
    elif args.command == "references":
        write_references(args.notebooks, args.out)
    else:
        _normalize_files(args.notebooks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
