r"""Probes of features: how well a linear read-out recovers the class, across noise levels.

* :func:`logistic_probe`: the paper's linear probe, multinomial logistic regression on
  standardized features, trained on the training split and scored on the test split;
* :func:`logistic_logits`: that probe's logits, for the soft vote of probes at neighbouring
  noise levels (:mod:`lowrank.measure.ensembles`);
* :func:`projection_classifier`: the paper's "projection" classifier
  :math:`\arg\max_k \|V_k^\top h\|^2` with per-class principal subspaces :math:`V_k`;
* :func:`probe_across_sigma`: either probe at every noise level of a grid, with a 95% interval
  for every accuracy (Wilson's on one test set, Student's t over several), returned as a
  :class:`ProbeCurve` (:func:`binomial_curve` builds one from per-item correctness);
* :func:`probe_layers`: :func:`probe_across_sigma` for every layer of a network;
* :func:`probe_subsets` and :func:`subset_correctness`: the logistic probe trained on a few
  labelled images (seeded class-balanced subsets), at every noise level, one row per seed: its
  accuracies, or which test items it gets right (for paired differences).

Every curve keeps which test items each probe got right (:attr:`ProbeCurve.correct`), so that
two accuracies measured on the same items are compared with paired errors. Which layer and
which level to report is chosen in :mod:`lowrank.measure.levels`; the statistics that judge
the probes live in :mod:`lowrank.measure.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lowrank._checks import check_count, check_features, check_labels, check_real
from lowrank.data import balanced_subset
from lowrank.measure.stats import (
    accuracy_interval,
    t_quantile,
)

__all__ = [
    "logistic_probe",
    "logistic_logits",
    "projection_classifier",
    "ProbeCurve",
    "probe_across_sigma",
    "probe_layers",
    "probe_subsets",
    "subset_correctness",
    "binomial_curve",
    "recorded_sigmas",
    "standardize",
]


def standardize(train_features: torch.Tensor, test_features: torch.Tensor) -> torch.Tensor:
    """``(M, p)`` float64 test features standardized with the training features' column means
    and sample deviations (floored at 1e-12), as :func:`logistic_probe` standardizes what it
    fits on: the features "as the probe sees them", to compare two networks' (chapter 6's
    sliced Wasserstein distance)."""
    X = check_features(train_features, "train_features").detach().to(torch.float64)
    Y = check_features(test_features, "test_features", width=X.shape[1]).detach()
    mean, scale = _training_statistics(X)
    return (Y.to(torch.float64) - mean) / scale


def _training_statistics(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column means and sample deviations (floored at 1e-12) of float64 ``X``."""
    mean, scale = X.mean(0), X.std(0)
    if not bool(torch.all(torch.isfinite(mean) & torch.isfinite(scale))):
        # squares overflow float64 beyond about 1e154: the same statistics in units of each
        # column's largest magnitude (the ordinary path stays as it was, bit for bit)
        unit = X.abs().amax(0).clamp_min(torch.finfo(torch.float64).tiny)
        mean, scale = unit * (X / unit).mean(0), unit * (X / unit).std(0)
    return mean, scale.clamp_min(1e-12)


def logistic_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor | list[torch.Tensor],
    test_labels: torch.Tensor | list[torch.Tensor],
    weight_decay: float = 1e-4,
    max_iter: int = 200,
) -> torch.Tensor:
    """Test accuracy of a multinomial logistic-regression probe (the paper's linear probe).

    Features are standardized with the training mean and scale, then a linear classifier is
    fitted by L-BFGS on the mean cross-entropy plus ``weight_decay * ||A||^2 / 2`` (the bias
    not penalized) in float64
    (:func:`logistic_logits`).

    Arguments:
        train_features: ``(N, p)``; train_labels: ``(N,)`` int64 in ``0 .. K-1``.
        test_features, test_labels: one test set, or lists of them (the paper's five).

    Returns:
        ``(T,)`` accuracies in [0, 1], one per test set.
    """
    if isinstance(test_features, torch.Tensor):
        test_features, test_labels = [test_features], [test_labels]
    if len(test_features) != len(test_labels):
        raise ValueError("need one label tensor per test feature set")
    K = check_labels(train_labels, "train_labels")
    for i, labels in enumerate(test_labels):
        check_labels(labels, f"test_labels[{i}]", K=K)
    logits = logistic_logits(train_features, train_labels, test_features, weight_decay, max_iter)
    return torch.stack(
        [(z.argmax(1) == y).double().mean() for z, y in zip(logits, test_labels, strict=True)]
    )


def logistic_logits(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor | list[torch.Tensor],
    weight_decay: float = 1e-4,
    max_iter: int = 200,
) -> list[torch.Tensor]:
    """Logits of :func:`logistic_probe`'s classifier on each test set: ``(M, K)`` float64 each.

    Standardizing with the training statistics and then applying a linear map is the paper's
    "BatchNorm then linear" probe at evaluation time (BatchNorm's affine part folds into the
    linear map); here it is fitted to convergence by L-BFGS instead of by SGD.
    """
    X = check_features(train_features, "train_features").detach().to(torch.float64)
    K = check_labels(train_labels, "train_labels")
    y = train_labels.to(torch.long)
    if y.shape != (X.shape[0],):
        raise ValueError(f"train_labels must be ({X.shape[0]},), got {tuple(y.shape)}")
    weight_decay = check_real(weight_decay, "weight_decay", 0.0)
    max_iter = check_count(max_iter, "max_iter")
    if isinstance(test_features, torch.Tensor):
        test_features = [test_features]
    for i, F in enumerate(test_features):
        check_features(F, f"test_features[{i}]", width=X.shape[1])
    mean, scale = _training_statistics(X)
    Z = (X - mean) / scale
    A = torch.zeros(Z.shape[1] + 1, K, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([A], max_iter=max_iter, line_search_fn="strong_wolfe")
    Z1 = torch.cat([Z, torch.ones(len(Z), 1, dtype=torch.float64)], 1)
    Y = torch.nn.functional.one_hot(y, K).to(torch.float64)

    def closure():
        # the cross-entropy's gradient in closed form, Z1^T (softmax - Y) / N: the same steps as
        # autograd, without its overhead (half the time of a probe on a few hundred rows)
        with torch.no_grad():
            log_p = (Z1 @ A).log_softmax(1)
            loss = -(log_p * Y).sum() / len(Z1) + 0.5 * weight_decay * A[:-1].square().sum()
            grad = Z1.T @ (log_p.exp() - Y) / len(Z1)
            grad[:-1] += weight_decay * A[:-1]
        A.grad = grad
        return loss

    opt.step(closure)
    logits = []
    with torch.no_grad():
        for F in test_features:
            Zt = (F.detach().to(torch.float64) - mean) / scale
            logits.append(torch.cat([Zt, torch.ones(len(Zt), 1, dtype=torch.float64)], 1) @ A)
    return logits


def projection_classifier(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    rank: int,
) -> torch.Tensor:
    """Predicted labels ``argmax_k ||V_k^T h||^2`` with ``V_k`` the top-``rank`` right singular
    vectors of class ``k``'s training features (the paper's "projection" classifier).

    Returns:
        ``(M,)`` int64 predictions for the ``(M, p)`` test features.
    """
    X = check_features(train_features, "train_features").detach().to(torch.float64)
    K = check_labels(train_labels, "train_labels")
    if train_labels.shape != (X.shape[0],):
        raise ValueError(f"train_labels must be ({X.shape[0]},), got {tuple(train_labels.shape)}")
    rank = check_count(rank, "rank")
    if rank > X.shape[1]:
        raise ValueError(f"rank must lie in [1, {X.shape[1]}] (the feature width), got {rank}")
    counts = torch.bincount(train_labels, minlength=K)
    if int(counts.min()) < rank:
        k = int(counts.argmin())
        raise ValueError(
            f"rank {rank} exceeds the {int(counts[k])} training rows of class {k}: its subspace "
            f"would have fewer dimensions; lower rank to <= {int(counts.min())} or add rows"
        )
    F = check_features(test_features, "test_features", width=X.shape[1])
    F = F.detach().to(torch.float64)
    energies = []
    for k in range(K):
        V = torch.linalg.svd(X[train_labels == k], full_matrices=False).Vh[:rank]  # (rank, p)
        energies.append((F @ V.T).square().sum(1))
    return torch.stack(energies, 1).argmax(1)


@dataclass(frozen=True)
class ProbeCurve:
    """Accuracy of a probe at each noise level of a grid.

    Attributes:
        sigmas: ``(S,)`` noise levels.
        accuracy: ``(S,)`` test accuracies in [0, 1] (with several test sets, their mean).
        low, high: ``(S,)`` 95% intervals: Wilson's on one test set; with ``T`` test sets,
            Student's t over the sets, ``mean +- t_{0.975, T-1} s / sqrt(T)``, not clipped to
            [0, 1], and of width 0 when every set gives the same accuracy.
        stderr: ``(S,)`` standard errors: binomial ``sqrt(a (1 - a) / M)`` on one test set;
            with ``T`` test sets, that of their mean, ``s / sqrt(T)``. That one is estimated
            from ``T`` values: with five sets a chance difference of 3 such errors has
            probability about 1-2% (Student's t with 4 to 8 degrees of freedom), not the 0.1%
            of binomial errors, so :func:`curve_shape`'s ``z = 3`` is a weaker bar there.
        correct: ``(S, M)`` bool, whether the probe of each level got each test item right
            (with several test sets, the sets concatenated in order): the per-item scores that
            :func:`lowrank.measure.stats.paired_interval` and
            :func:`lowrank.measure.stats.paired_curve_shape` compare across levels or between
            networks probed on the same items.
    """

    sigmas: torch.Tensor
    accuracy: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    stderr: torch.Tensor
    correct: torch.Tensor | None = None


def probe_across_sigma(
    sigmas: Sequence[float] | torch.Tensor,
    train_features: Sequence[torch.Tensor],
    train_labels: torch.Tensor,
    test_features: Sequence[torch.Tensor] | Sequence[Sequence[torch.Tensor]],
    test_labels: torch.Tensor | Sequence[torch.Tensor],
    method: str = "logistic",
    rank: int = 5,
    weight_decay: float = 1e-4,
) -> ProbeCurve:
    """Train a probe on the training features at every noise level and score it on the test
    features at the same level.

    Arguments:
        sigmas: ``(S,)`` noise levels (only recorded).
        train_features: ``S`` tensors ``(N, p)``; train_labels: ``(N,)`` labels in ``0 .. K-1``.
        test_features, test_labels: one test set, ``S`` tensors ``(M, p)`` and ``(M,)`` labels;
            or ``T >= 2`` independent test sets (the paper's five on MoLRG), ``S`` sequences of
            ``T`` tensors and a sequence of ``T`` label tensors. The probe of each level is
            fitted once and scored on every set; the curve is the mean over the sets, its
            error their spread (see :class:`ProbeCurve`).
        method: ``"logistic"`` (:func:`logistic_probe`) or ``"projection"``
            (:func:`projection_classifier` with ``rank``).
    """
    sig = recorded_sigmas(sigmas)
    if not len(train_features) == len(test_features) == len(sig):
        raise ValueError(
            f"need one train and one test feature set per sigma: {len(sig)} sigmas, "
            f"{len(train_features)} train and {len(test_features)} test sets"
        )
    if method not in ("logistic", "projection"):
        raise ValueError(f"method must be 'logistic' or 'projection', got {method!r}")
    several = not isinstance(test_labels, torch.Tensor)
    labels = list(test_labels) if several else [test_labels]
    if several and len(labels) < 2:
        raise ValueError(
            f"test_labels: give one tensor for one test set, or at least 2 for an interval "
            f"over sets; got a sequence of {len(labels)}"
        )
    K = check_labels(train_labels, "train_labels")
    for j, y in enumerate(labels):
        check_labels(y, f"test_labels[{j}]" if several else "test_labels", K=K)
    per_set, correct = [], []  # (S, T) accuracies, (S, M) per-item correctness
    for i, (train, test) in enumerate(zip(train_features, test_features, strict=True)):
        tests = list(test) if several else [test]
        if len(tests) != len(labels):
            raise ValueError(
                f"test_features[{i}] holds {len(tests)} test sets, test_labels {len(labels)}"
            )
        for j, (F, y) in enumerate(zip(tests, labels, strict=True)):
            if isinstance(F, torch.Tensor) and len(F) != len(y):
                raise ValueError(f"test set {j} at level {i}: {len(F)} rows, {len(y)} labels")
        if method == "logistic":
            logits = logistic_logits(train, train_labels, tests, weight_decay)
            pred = torch.cat([z.argmax(1) for z in logits])
        else:
            # one set of class subspaces for all test sets
            pred = projection_classifier(train, train_labels, torch.cat(tests), rank)
        hits = pred == torch.cat(labels)
        correct.append(hits)
        per_set.append(
            torch.stack([h.double().mean() for h in hits.split([len(y) for y in labels])])
        )
    per_set = torch.stack(per_set).to(torch.float64)
    correct = torch.stack(correct)
    if several:
        T = len(labels)
        acc, stderr = per_set.mean(1), per_set.std(1) / math.sqrt(T)
        half = t_quantile(0.975, T - 1) * stderr  # as seed_interval over the sets
        return ProbeCurve(sig, acc, acc - half, acc + half, stderr, correct)
    return binomial_curve(sig, correct)


def binomial_curve(sig: torch.Tensor, correct: torch.Tensor) -> ProbeCurve:
    """The curve of ``(S, M)`` per-item correctness on one set of ``M`` items: accuracies,
    Wilson intervals and binomial standard errors."""
    acc, M = correct.double().mean(1), correct.shape[1]
    intervals = [accuracy_interval(int(c.sum()), M) for c in correct]
    low = torch.tensor([i.low for i in intervals], dtype=torch.float64)
    high = torch.tensor([i.high for i in intervals], dtype=torch.float64)
    return ProbeCurve(sig, acc, low, high, (acc * (1 - acc) / M).sqrt(), correct)


def recorded_sigmas(sigmas) -> torch.Tensor:
    """A probe curve's grid: a non-empty 1-D float64 tensor of finite levels >= 0 (0 is a
    clean input; :func:`best_level` records grid indices)."""
    try:
        sig = torch.as_tensor(sigmas, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"sigmas must be numbers or a 1-D tensor, got {sigmas!r}") from e
    if sig.ndim != 1 or sig.numel() == 0:
        raise ValueError(f"sigmas must be a non-empty 1-D sequence, got shape {tuple(sig.shape)}")
    if not bool(torch.all(torch.isfinite(sig) & (sig >= 0))):
        raise ValueError(f"sigmas must be finite and >= 0, got {sig.tolist()}")
    return sig


def probe_layers(
    sigmas: Sequence[float] | torch.Tensor,
    train_features: dict[str, torch.Tensor],
    train_labels: torch.Tensor,
    test_features: dict[str, torch.Tensor],
    test_labels: torch.Tensor,
    method: str = "logistic",
) -> dict[str, ProbeCurve]:
    """:func:`probe_across_sigma` for every layer: ``{name: curve}`` from ``{name: (S, N, p)}``
    training and ``{name: (S, M, p)}`` test features (as :func:`lowrank.measure.features.
    features_across_sigma` returns them)."""
    return {
        name: probe_across_sigma(
            sigmas,
            list(train_features[name]),
            train_labels,
            list(test_features[name]),
            test_labels,
            method,
        )  # fmt: skip
        for name in train_features
    }


def subset_correctness(
    train_features: Sequence[torch.Tensor],
    train_labels: torch.Tensor,
    test_features: Sequence[torch.Tensor],
    test_labels: torch.Tensor,
    size: int,
    seeds: Sequence[int],
    weight_decay: float = 1e-4,
) -> torch.Tensor:
    """Which test items the logistic probe trained on ``size`` labelled training images gets
    right, at every noise level, for each seeded subset.

    For each seed a class-balanced subset of ``size`` training rows is drawn
    (:func:`lowrank.data.balanced_subset`, generator seeded with the seed) and used at every
    noise level: feature sets probed with the same seeds are paired on labelled and test items.

    Arguments:
        train_features, test_features: ``S`` tensors ``(N, p)`` and ``(M, p)``, one per level.
        size, seeds: labelled images per probe; one subset per seed.

    Returns ``(len(seeds), S, M)`` bool.
    """
    if len(train_features) != len(test_features):
        raise ValueError("need one test feature set per train feature set")
    size = check_count(size, "size")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed (one subset per seed)")
    K = check_labels(train_labels, "train_labels")
    check_labels(test_labels, "test_labels", K=K)
    for i, test in enumerate(test_features):
        if len(test) != len(test_labels):
            raise ValueError(
                f"test_features[{i}] has {len(test)} rows, test_labels {len(test_labels)}"
            )
    rows = []
    for seed in seeds:
        keep = balanced_subset(train_labels, size, torch.Generator().manual_seed(int(seed)))
        rows.append(
            torch.stack(
                [
                    logistic_logits(train[keep], train_labels[keep], test, weight_decay)[0]
                    .argmax(1)
                    .eq(test_labels)
                    for train, test in zip(train_features, test_features, strict=True)
                ]
            )
        )
    return torch.stack(rows)


def probe_subsets(
    train_features: Sequence[torch.Tensor],
    train_labels: torch.Tensor,
    test_features: Sequence[torch.Tensor],
    test_labels: torch.Tensor,
    size: int,
    seeds: Sequence[int],
    weight_decay: float = 1e-4,
) -> torch.Tensor:
    """Test accuracy of the logistic probe trained on ``size`` labelled training images only:
    :func:`subset_correctness` averaged over the test items.

    Returns:
        ``(len(seeds), S)`` accuracies in [0, 1].
    """
    correct = subset_correctness(
        train_features, train_labels, test_features, test_labels, size, seeds, weight_decay
    )
    return correct.double().mean(-1)
