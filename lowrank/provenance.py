"""Provenance of a run: the device, versions, git revision and platform that produced a result.

* :func:`resolve_device`: the device every chapter and run uses (``$LOWRANK_DEVICE``);
* :func:`environment`: device, versions and git revision, recorded in every trained run's
  ``run.json`` and in each chapter's banner;
* :func:`platform_record`: processor, instruction sets, MKL and oneDNN, torch, device, threads
  and the numeric settings that are set (:data:`NUMERIC_SETTINGS`), which decide whether a
  results cell is compared exactly or within tolerances (``tools/regression.py``).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

import torch

import lowrank

__all__ = [
    "DEVICE_VARIABLE",
    "resolve_device",
    "environment",
    "NUMERIC_SETTINGS",
    "platform_record",
]


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


#: Environment variables that change the bits of a float computation on the same processor: MKL's
#: code path and reproducibility mode, ATen's and oneDNN's instruction sets, the thread counts
#: (a sum split over other threads rounds otherwise).
NUMERIC_SETTINGS = (
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
    "NVIDIA_TF32_OVERRIDE",
)


# the instruction-set extensions whose presence changes which kernels MKL, oneDNN and ATen run
_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile")


_LIBRARY = re.compile(r"(Math Kernel Library Version \S+|MKL-DNN v\S+|OpenBLAS\S*)")


def _cpu_info(cpuinfo: str) -> tuple[str, str]:
    """``(model name, ISA extensions)`` from the text of ``/proc/cpuinfo`` (empty fields when
    the text lacks them, as on macOS)."""

    def field(name: str) -> str:
        found = re.search(rf"^{name}\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        return found.group(1).strip() if found else ""

    model = field("model name")
    if model and field("cpu family"):  # "AMD EPYC" alone names several generations
        model += f" (family {field('cpu family')}, model {field('model')})"
    present = set(field("flags").split())
    return model, " ".join(f for f in _ISA_FLAGS if f in present)


def platform_record(cpuinfo: str | None = None) -> dict[str, str]:
    """What decides the bits of this process's float results: processor, instruction sets,
    libraries, versions, device, threads and the :data:`NUMERIC_SETTINGS` that are set.

    Two runs with equal records reproduce each other's seeded results exactly; the regression
    test compares exactly between them and within measured tolerances otherwise
    (``tools/regression.py``).

    Arguments:
        cpuinfo: the text of ``/proc/cpuinfo`` (read from the machine by default).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, isa = _cpu_info(cpuinfo)
    chosen = resolve_device()
    device = "cpu"
    if chosen.type == "cuda":
        major, minor = torch.cuda.get_device_capability(chosen)
        device = f"cuda: {torch.cuda.get_device_name(chosen)} (sm_{major}{minor})"
    settings = {k: os.environ[k] for k in NUMERIC_SETTINGS if os.environ.get(k)}
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "isa": isa,
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "libraries": ", ".join(_LIBRARY.findall(torch.__config__.show())),
        "torch": torch.__version__,
        "device": device,
        "threads": str(torch.get_num_threads()),
        "settings": ", ".join(f"{k}={v}" for k, v in sorted(settings.items())),
    }
