"""Memorization and generalization scores against brute force and closed forms; the cached
classifier whose embedding they use."""

import torch

from lowrank.nets.classifier import ClassifierRun, embed, load_classifier


def test_the_classifier_trains_once_into_the_cache_and_learns(tiny_fashion, tmp_path):
    run = ClassifierRun(size=8, width=8, epochs=30, batch_size=50, lr=3e-3)
    loaded = load_classifier(run, cache=tmp_path, progress=False)
    model, record = loaded.classifier, loaded.record
    assert record.test_accuracy > 0.8  # brightness classes are easy; chance is 0.1
    loaded_again = load_classifier(run, cache=tmp_path, progress=False)
    again, same = loaded_again.classifier, loaded_again.record
    assert same == record
    for p, q in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    emb = embed(model, torch.zeros(3, 1, 8, 8))
    assert emb.shape == (3, 32) and emb.dtype == torch.float64
    assert (tmp_path / f"classifier-fashion-mnist-8px-{run.key()}" / "model.safetensors").exists()
