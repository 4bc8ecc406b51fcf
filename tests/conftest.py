"""Shared fixtures. ``--device cuda`` reruns the device-agnostic tests on a GPU box."""

import os

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="torch device for device-agnostic tests")
    parser.addoption(
        "--executed",
        default=None,
        help="folder of chapters executed at the quick profile, for tests/nbval/test_results.py "
        "(default: _build/executed/quick, every chapter)",
    )


def pytest_configure(config):
    # On CPU the Triton kernel runs in Triton's interpreter; the flag must be set before the
    # kernel module is imported (lowrank imports it lazily, on first use).
    if not config.getoption("--device").startswith("cuda"):
        os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def device(request):
    name = request.config.getoption("--device")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("CUDA requested but not available")
    return torch.device(name)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)
