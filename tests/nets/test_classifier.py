"""Memorization and generalization scores against brute force and closed forms; the cached
classifier whose embedding they use."""

import pytest
import torch

from lowrank import data
from lowrank.nets.classifier import ClassifierRun, embed, load_classifier


@pytest.fixture
def tiny_fashion(monkeypatch):
    """200 random 8x8 'Fashion-MNIST' images whose class is their brightness."""
    gen = torch.Generator().manual_seed(4)
    labels = torch.arange(200) % 10
    noise = torch.randint(0, 40, (200, 8, 8), generator=gen)
    images = (labels[:, None, None] * 20 + noise).to(torch.uint8)
    monkeypatch.setattr(data, "load_fashion_mnist", lambda split, root=None: (images, labels))
    return images, labels


def test_the_classifier_trains_once_into_the_cache_and_learns(tiny_fashion, tmp_path):
    run = ClassifierRun(size=8, width=8, epochs=30, batch_size=50, lr=3e-3)
    model, record = load_classifier(run, cache=tmp_path, progress=False)
    assert record["test_accuracy"] > 0.8  # brightness classes are easy; chance is 0.1
    again, same = load_classifier(run, cache=tmp_path, progress=False)
    assert same == record
    for p, q in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    emb = embed(model, torch.zeros(3, 1, 8, 8))
    assert emb.shape == (3, 32) and emb.dtype == torch.float64
    assert (tmp_path / f"classifier-fashion-mnist-8px-{run.key()}" / "model.safetensors").exists()
