"""Shared fixtures. ``--device cuda`` reruns the device-agnostic tests on a GPU box."""

import os

import pytest
import torch

from lowrank import data
from lowrank.theory.mixtures import MoLRG


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


@pytest.fixture
def tiny_fashion(monkeypatch):
    """200 random 8x8 'Fashion-MNIST' images whose class is their brightness."""
    gen = torch.Generator().manual_seed(4)
    labels = torch.arange(200) % 10
    noise = torch.randint(0, 40, (200, 8, 8), generator=gen)
    images = (labels[:, None, None] * 20 + noise).to(torch.uint8)
    monkeypatch.setattr(data, "load_fashion_mnist", lambda split, root=None: (images, labels))
    return images, labels


@pytest.fixture
def molrg_data():
    mix = MoLRG(n=30, K=3, d=3, delta=0.2, seed=0)
    x, y = mix.sample(3000, torch.Generator().manual_seed(0))
    return mix, x, y
