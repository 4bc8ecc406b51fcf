"""Build the folder a lent GPU machine needs beside the repository, and print the command to run.

The lent H200 image (``tools/gpu_image_packages.txt``) has torch, triton, numpy, pandas,
matplotlib and seaborn, but not diffusers, papermill, nbval, ipykernel or myst-nb, and it cannot
reach a registry or the data. This writes, under ``--out`` (``.gpu/`` by default, ignored by git):

* ``data/``: the four Fashion-MNIST ``*-ubyte.gz`` files (for ``LOWRANK_DATA``);
* ``wheels/``: the book's packages at the versions of ``requirements.lock``, resolved for the
  image's Python 3.12 with their dependencies, less every package the image already has and
  those only the HTML build needs (the book is built here, not there).

The device tool carries at most 64 MiB of working tree and carried folders together, so the total
is checked against that. Run from the repository root::

    python tools/prepare_gpu.py            # or: make prepare-gpu
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARRY_LIMIT_BYTES = 64 * 2**20  # the device tool's limit on what one call carries
# What the chapters import beyond the image: the UNet, notebook execution, glue, nbval.
BOOK_PACKAGES = ("diffusers", "papermill", "nbval", "ipykernel", "myst-nb")
# Dependencies that executing the chapters never imports (checked: `from myst_nb import glue`, the
# kernel, papermill, nbval and diffusers load none of them): the HTML build's Sphinx stack, the
# notebook cache and the kernel's debugger. Dropping them keeps the carry under the limit.
NOT_FOR_EXECUTION = ("sphinx", "babel", "sqlalchemy", "jupyter-cache", "debugpy", "alabaster")
IMAGE_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares them (``Myst_NB`` -> ``myst-nb``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages(path: Path = ROOT / "tools" / "gpu_image_packages.txt") -> set[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return {canonical(line) for line in lines if line and not line.startswith("#")}


def locked_versions(path: Path = ROOT / "requirements.lock") -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split(";")[0].strip().split("==", 1)
            pins[canonical(name)] = version.strip()
    return pins


def wheel_name(filename: str) -> str:
    """The distribution a wheel file holds (``myst_nb-1.4.0-py3-none-any.whl`` -> ``myst-nb``)."""
    return canonical(filename.split("-", 1)[0])


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def tracked_bytes(root: Path = ROOT) -> int:
    """Bytes of the files git would carry (tracked or untracked but not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    files = [root / p.decode() for p in listed if p]
    return sum(f.stat().st_size for f in files if f.is_file())


def copy_fashion_mnist(source: Path, dest: Path) -> None:
    missing = [name for name in FASHION_FILES if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{source} lacks {', '.join(missing)}: run 'make setup' (it installs the Debian "
            "package dataset-fashion-mnist) or pass --data FOLDER with the four files"
        )
    dest.mkdir(parents=True, exist_ok=True)
    for name in FASHION_FILES:
        shutil.copy2(source / name, dest / name)


def download_wheels(dest: Path, pins: dict[str, str], have: set[str]) -> list[str]:
    """pip-download the book's packages for the image's Python; drop what the image has."""
    wanted = []
    for name in BOOK_PACKAGES:
        if name not in pins:
            raise KeyError(f"{name} is not pinned in requirements.lock: pin it there first")
        wanted.append(f"{name}=={pins[name]}")
    dest.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--only-binary=:all:", "--python-version", IMAGE_PYTHON, "--implementation", "cp",
         *platforms, "--dest", str(dest), *wanted],
        check=True,
    )  # fmt: skip
    kept = []
    for wheel in sorted(dest.glob("*.whl")):
        name = wheel_name(wheel.name)
        if name in have or name.startswith(NOT_FOR_EXECUTION):
            wheel.unlink()
        else:
            kept.append(wheel.name)
    return kept


def run_command(out: str) -> str:
    """The device tool's command: install the wheels, the GPU check, every chapter on CUDA."""
    return (
        f"python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "
        f"{out}/wheels/*.whl && export PYTHONPATH=/tmp/site:$PWD LOWRANK_DATA=$PWD/{out}/data "
        f"LOWRANK_CACHE=$OUT/models PYTHONUNBUFFERED=1 && "
        f"(bash benchmarks/gpu_check.sh 2>&1 | tee $OUT/gpu_check.log); "
        f"python3 tools/book.py execute --profile quick --device cuda --out $OUT/quick "
        f"notebooks/*.ipynb 2>&1 | tee $OUT/chapters.log"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/prepare_gpu.py", description=__doc__)
    parser.add_argument("--out", default=".gpu", help="folder to write, relative to the root")
    parser.add_argument(
        "--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"),
        help="folder with the four Fashion-MNIST *-ubyte.gz files (default: the Debian copy)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    out = ROOT / args.out
    if out.exists():
        shutil.rmtree(out)
    try:
        copy_fashion_mnist(args.data, out / "data")
        kept = download_wheels(out / "wheels", locked_versions(), image_packages())
    except (FileNotFoundError, KeyError) as error:
        parser.error(str(error))
    carried, tree = folder_bytes(out), tracked_bytes()
    print(f"{out}: {len(kept)} wheels and 4 data files, {carried / 2**20:.1f} MiB")
    print(f"working tree: {tree / 2**20:.1f} MiB; together {(carried + tree) / 2**20:.1f} MiB")
    if carried + tree > CARRY_LIMIT_BYTES:
        print(f"over the device tool's {CARRY_LIMIT_BYTES // 2**20} MiB limit", file=sys.stderr)
        return 1
    print(f'run with carry=["{args.out}"] and the command:\n{run_command(args.out)}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
