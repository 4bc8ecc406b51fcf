"""Shared fixtures. ``--device cuda`` reruns the device-agnostic tests on a GPU box."""

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="torch device for device-agnostic tests")


@pytest.fixture
def device(request):
    name = request.config.getoption("--device")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("CUDA requested but not available")
    return torch.device(name)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)
