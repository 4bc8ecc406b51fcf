"""Bad input, round 2: probes, statistics, features, generalization scores, the denoiser and
Theorem 1's closed form. The same table as ``tests/test_bad_inputs.py``: each case is
``(call, expected)`` with ``expected`` an ``(ExceptionType, "message fragment")`` or a function
that checks the returned value; a new public function gets rows here.
"""

import pytest
import torch
from bad_input_cases import check_case

from lowrank.experiments import size_sweep
from lowrank.measure import copies, levels, probes, stats
from lowrank.measure.features import features_across_sigma
from lowrank.theory import closed_forms
from lowrank.theory.denoisers import MixtureDenoiser
from lowrank.theory.mixtures import MoLRG

NAN, INF = float("nan"), float("inf")
MIX = MoLRG(12, 3, 2, 0.3, seed=0)


def _blobs(N=60, p=4, seed=0):
    """Three separable classes in ``p`` dimensions: features and labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(3).repeat(N // 3)
    return torch.randn(N, p, generator=g, dtype=torch.float64) + 4 * torch.eye(3, p)[y], y


def _poisoned(value, row=0):
    X, y = _blobs()
    X = X.clone()
    X[row, 0] = value
    return X, y


def _logistic(X=None, y=None, **kwargs):
    Xb, yb = _blobs()
    return probes.logistic_probe(Xb if X is None else X, yb if y is None else y, Xb, yb, **kwargs)


def _test_with_nan_row():
    X, y = _blobs()
    T = X.clone()
    T[3] = NAN
    return probes.logistic_probe(X, y, T, y)


def _across(sigmas, n=None):
    X, y = _blobs()
    n = len(sigmas) if n is None else n
    return probes.probe_across_sigma(sigmas, [X] * n, y, [X] * n, y)


class _Identity(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(3, 3)

    def forward(self, x, sigma):
        return self.a(x)


def _features(names):
    net = _Identity()
    return features_across_sigma(net, names, torch.zeros(4, 3), [0.1], progress=False)


def _near_copy_of_a_repeated_image():
    """A copy of training image 0 (which occurs twice), off by 1e-3: its two nearest rows are
    both image 0, so counting rows rather than images would give a ratio of 1."""
    g = torch.Generator().manual_seed(0)
    train = torch.rand(5, 1, 4, 4, generator=g)
    train = torch.cat([train, train[:1]])
    sample = train[:1] + 1e-3 * torch.randn(1, 1, 4, 4, generator=g)
    ratios = copies.copy_ratio(torch.cat([train[:1], sample]), train)
    return ratios


CASES = {
    # logistic_probe: features, weight decay, iterations
    "probe NaN train feature": (
        lambda t: probes.logistic_probe(*_poisoned(NAN), *_blobs()),
        (ValueError, "train_features has non-finite values (NaN or inf) in 1 row(s), first [0]"),
    ),
    "probe inf train feature": (
        lambda t: probes.logistic_probe(*_poisoned(INF, row=7), *_blobs()),
        (ValueError, "first [7]: drop those rows"),
    ),
    "probe NaN test row": (lambda t: _test_with_nan_row(), (ValueError, "test_features[0] has")),
    "probe weight decay NaN": (
        lambda t: _logistic(weight_decay=NAN),
        (ValueError, "weight_decay must be finite"),
    ),
    "probe weight decay negative": (
        lambda t: _logistic(weight_decay=-1.0),
        (ValueError, "weight_decay must lie in [0.0, None]"),
    ),
    "probe max_iter zero": (
        lambda t: _logistic(max_iter=0),
        (ValueError, "max_iter must be >= 1"),
    ),
    "probe valid data is well above chance": (lambda t: _logistic(), lambda acc: acc.item() > 0.9),
    # projection classifier
    "projection rank above a class's rows": (
        lambda t: probes.projection_classifier(*_blobs(N=6), _blobs()[0], 3),
        (ValueError, "rank 3 exceeds the 2 training rows of class 0"),
    ),
    "projection fractional rank": (
        lambda t: probes.projection_classifier(*_blobs(), _blobs()[0], 2.5),
        (TypeError, "rank must be an integer, got 2.5"),
    ),
    "projection NaN train feature": (
        lambda t: probes.projection_classifier(*_poisoned(NAN), _blobs()[0], 2),
        (ValueError, "train_features has non-finite values"),
    ),
    # probe_across_sigma, probe_subsets, crossfit
    "across sigma empty": (lambda t: _across([]), (ValueError, "non-empty 1-D sequence")),
    "across sigma NaN level": (lambda t: _across([0.1, NAN]), (ValueError, "finite and >= 0")),
    "across sigma negative level": (lambda t: _across([-0.1]), (ValueError, "finite and >= 0")),
    "across sigma 2-D levels": (lambda t: _across([[0.1, 0.2]], n=1), (ValueError, "1-D")),
    "across sigma keeps per-item correctness": (
        lambda t: _across([0.1, 0.2]),
        lambda c: (
            c.correct.shape == (2, 60) and torch.equal(c.correct.double().mean(1), c.accuracy)
        ),
    ),
    "subsets without seeds": (
        lambda t: probes.probe_subsets(
            [_blobs()[0]], _blobs()[1], [_blobs()[0]], _blobs()[1], 6, []
        ),
        (ValueError, "seeds is empty"),
    ),
    "crossfit too few rows": (
        lambda t: levels.crossfit_level([_blobs()[0][:3]], _blobs()[1][:3]),
        (ValueError, "N = 3 >= 4 rows"),
    ),
    # curve_shape and paired_curve_shape
    "shape negative z": (
        lambda t: stats.curve_shape([0.5, 0.5, 0.5], [0.01] * 3, z=-1),
        (ValueError, "z must lie in (0.0, None]"),
    ),
    "shape NaN z": (
        lambda t: stats.curve_shape([0.5, 0.5, 0.5], [0.01] * 3, z=NAN),
        (ValueError, "z must be finite"),
    ),
    "shape fractional peak": (
        lambda t: stats.curve_shape([0.5, 0.6, 0.5], [0.01] * 3, peak=1.7),
        (TypeError, "peak must be an integer index, got 1.7"),
    ),
    "paired shape without a peak": (
        lambda t: stats.paired_curve_shape(torch.ones(3, 20), None),
        (TypeError, "peak is required"),
    ),
    "paired shape of a 1-D curve": (
        lambda t: stats.paired_curve_shape(torch.ones(5), 1),
        (ValueError, "(S, M) tensor with S >= 3"),
    ),
    "paired interval of different items": (
        lambda t: stats.paired_interval(torch.ones(5), torch.ones(4)),
        (ValueError, "got 5 and 4 scores"),
    ),
    "paired interval NaN score": (
        lambda t: stats.paired_interval(torch.tensor([1.0, NAN]), torch.ones(2)),
        (ValueError, "a must be finite"),
    ),
    "paired interval level 1": (
        lambda t: stats.paired_interval(torch.ones(3), torch.zeros(3), level=1.0),
        (ValueError, "level must lie in (0, 1)"),
    ),
    # features
    "features repeated layer": (lambda t: _features(["a", "a"]), (ValueError, "repeated: ['a']")),
    "features layer names as a string": (lambda t: _features("a"), (TypeError, "the string 'a'")),
    "features one row per image": (
        lambda t: _features(["a"]),
        lambda f: f["a"].shape == (1, 4, 3),
    ),
    # generalization
    "stopping unknown verdict": (
        lambda t: size_sweep.stopping_checkpoint(["unimodal", "bumpy"], [0.5, 0.6]),
        (ValueError, "got 'bumpy'"),
    ),
    "stopping verdicts as one string": (
        lambda t: size_sweep.stopping_checkpoint("unimodal", [0.5] * 8),
        (TypeError, "verdicts must be a list"),
    ),
    "copy of a repeated training image": (
        lambda t: _near_copy_of_a_repeated_image(),
        lambda ratio: ratio[0].item() == 0.0 and ratio[1].item() < 0.05,
    ),
    "generalization threshold NaN": (
        lambda t: copies.generalization_score(torch.ones(2, 3), torch.ones(2, 3), NAN),
        (ValueError, "threshold must be finite"),
    ),
    # the denoiser and Theorem 1
    "denoiser sigma as a string": (
        lambda t: MixtureDenoiser(MIX)(torch.zeros(2, 12), "0.5"),
        (TypeError, "sigma must be a float or a tensor, got '0.5' (str)"),
    ),
    "denoiser input past float64's squares": (
        lambda t: MixtureDenoiser(MIX)(torch.ones(2, 12, dtype=torch.float64) * 1e200, 0.5),
        (ValueError, "x_t has entries up to 1e+200, past 1.2e+77"),
    ),
    "denoiser NaN input": (
        lambda t: MixtureDenoiser(MIX)(torch.full((2, 12), NAN), 0.5),
        (ValueError, "x_t must be finite"),
    ),
    "snr_approx at one level": (
        lambda t: closed_forms.snr_approx(3, 2, 0.3, 0.5),
        lambda v: v.shape == (1,) and torch.equal(v, closed_forms.snr_approx(3, 2, 0.3, [0.5])),
    ),
    "snr_approx NaN delta": (
        lambda t: closed_forms.snr_approx(3, 2, NAN, [0.5]),
        (ValueError, "delta must lie in (0, 1), got nan"),
    ),
    "snr_approx sigmas as text": (
        lambda t: closed_forms.snr_approx(3, 2, 0.3, "0.5"),
        (TypeError, "sigmas must be numbers or a 1-D tensor"),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path):
    check_case(name, *CASES[name], tmp_path)
