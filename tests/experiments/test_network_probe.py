"""lowrank.experiments.network_probe: the block (and readout) chosen by cross-fitting, the level
cross-fitted on training features, the paired shape test at it."""

import math

import pytest
import torch

from lowrank.experiments import network_probe
from lowrank.measure import features, levels, probes, stats


class _Blocks(torch.nn.Module):
    """Stands in for a denoiser: block "blind" sees only zeros, block "sees" the noisy input."""

    def __init__(self):
        super().__init__()
        self.unet = torch.nn.ModuleDict(
            {"blind": torch.nn.Identity(), "sees": torch.nn.Identity()}
        )

    @property
    def network(self):
        return self.unet

    def block_names(self):
        return ["blind", "sees"]

    def forward(self, x_t, sigma):
        self.unet["blind"](torch.zeros_like(x_t))
        return self.unet["sees"](x_t)


def test_probe_network_chooses_the_informative_block_by_cross_fitting_and_tests_it():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(600) % 10
    # class k: a bump of height 1 on channel k, seen through noise per image
    x = torch.nn.functional.one_hot(labels, 10).double()[:, :, None, None]
    x = (x + 0.3 * torch.randn(x.shape, generator=gen, dtype=torch.float64)).float()
    sigmas = [0.01, 0.3, 1.0, 3.0]
    result = network_probe.probe_network(
        _Blocks(), (x[:400], labels[:400]), (x[400:], labels[400:]), sigmas
    )
    assert result.layer == "sees" and set(result.blocks) == {"blind", "sees"}
    # chance is 0.1; 200 rows fit each cross-fitted probe, so it stays below the Bayes accuracy
    assert result.crossfit.accuracy.max() > 0.8 and result.curve.accuracy[0] > 0.8
    assert result.curve.accuracy[-1] < 0.5  # sigma = 3 drowns the bump
    # by hand: the block's test curve, its cross-fitted peak on the 400 training rows, and the
    # paired test there
    per_sigma = features.features_across_sigma(_Blocks(), ["sees"], x, sigmas, progress=False)
    per_sigma = per_sigma["sees"]
    manual = probes.probe_across_sigma(
        sigmas, list(per_sigma[:, :400]), labels[:400], list(per_sigma[:, 400:]), labels[400:]
    )
    torch.testing.assert_close(result.curve.accuracy, manual.accuracy)
    peak_choice = levels.crossfit_level(per_sigma[:, :400], labels[:400], sigmas=sigmas)
    assert result.shape.paired and result.shape.peak == peak_choice.index
    assert torch.equal(result.crossfit.correct, peak_choice.curve.correct)
    expected = stats.paired_curve_shape(manual.correct, peak_choice.index)
    assert (result.shape.verdict, result.shape.rise) == (expected.verdict, expected.rise)
    assert result.shape.verdict == "decreasing"
    # the chosen one is the highest cross-fitted curve of the family: not the blind block
    blind = result.blocks["blind"].crossfit.accuracy.max()
    assert blind < 0.2 < result.crossfit.accuracy.max()
    with pytest.raises(ValueError, match="train must be a pair"):
        network_probe.probe_network(_Blocks(), x[:400], (x[400:], labels[400:]), sigmas)


def test_probe_network_reads_every_block_under_a_spatial_readout_too():
    """With readout_grid, each block is also read through an adaptive average over the grid,
    from the same forward pass; the family doubles and the choice is made over all of it."""
    gen = torch.Generator().manual_seed(1)
    labels = torch.arange(400) % 4
    # class k lights a different quadrant of one channel: the global average sees none of it
    quadrant = torch.zeros(4, 1, 4, 4)
    for k, (i, j) in enumerate(((0, 0), (0, 2), (2, 0), (2, 2))):
        quadrant[k, 0, i : i + 2, j : j + 2] = 1.0
    x = quadrant[labels] + 0.3 * torch.randn(400, 1, 4, 4, generator=gen)
    result = network_probe.probe_network(
        _Blocks(), (x[:240], labels[:240]), (x[240:], labels[240:]), [0.01, 0.5, 2.0],
        readout_grid="2x2",
    )  # fmt: skip
    assert set(result.blocks) == {"blind", "sees", "blind@2x2", "sees@2x2"}
    assert result.layer == "sees@2x2"
    assert result.curve.accuracy[0] > 0.9 > 0.5 > result.blocks["sees"].curve.accuracy[0]


def test_probe_network_reads_only_the_blocks_asked_for_and_refuses_others():
    gen = torch.Generator().manual_seed(2)
    labels = torch.arange(300) % 3
    x = torch.nn.functional.one_hot(labels, 3).float()[:, :, None, None]
    x = x + 0.4 * torch.randn(x.shape, generator=gen)
    train, test, sigmas = (x[:200], labels[:200]), (x[200:], labels[200:]), [0.01, 0.5, 2.0]
    every = network_probe.probe_network(_Blocks(), train, test, sigmas, seed=4)
    one = network_probe.probe_network(_Blocks(), train, test, sigmas, blocks=["sees"], seed=4)
    assert list(one.blocks) == ["sees"] and one.layer == "sees"
    # the same noise and probes as when every block is read: the block's results are identical
    assert torch.equal(one.curve.correct, every.blocks["sees"].curve.correct)
    assert one.shape == every.blocks["sees"].shape
    for bad in (["seen"], [], "sees", ["sees", "sees"]):
        with pytest.raises(ValueError, match="blocks must be a non-empty list of distinct"):
            network_probe.probe_network(_Blocks(), train, test, sigmas, blocks=bad)


def test_probe_pixels_is_probe_blocks_on_the_noise_the_network_saw():
    """The pixel control equals the "sees" block of the identity network: same inputs, same
    noise draws, averaged over space there and flattened here (1 x 1 images: the same)."""
    gen = torch.Generator().manual_seed(3)
    labels = torch.arange(300) % 3
    x = torch.nn.functional.one_hot(labels, 3).float()[:, :, None, None]
    x = x + 0.4 * torch.randn(x.shape, generator=gen)
    train, test, sigmas = (x[:200], labels[:200]), (x[200:], labels[200:]), [0.01, 0.5, 2.0]
    pixels = network_probe.probe_pixels(train, test, sigmas, seed=5)
    seen = network_probe.probe_network(_Blocks(), train, test, sigmas, blocks=["sees"], seed=5)
    torch.testing.assert_close(pixels.curve.accuracy, seen.curve.accuracy)
    assert pixels.shape.peak == seen.shape.peak
    assert pixels.curve.accuracy[0] > 0.9 > 0.6 > pixels.curve.accuracy[-1]
    other_noise = network_probe.probe_pixels(train, test, sigmas, seed=6)
    assert not torch.equal(other_noise.curve.correct, pixels.curve.correct)


def test_probe_blocks_tests_every_block_at_its_cross_fitted_peak():
    """Two blocks: one whose class signal peaks at the middle level, one whose signal falls.
    Each is judged at its own cross-fitted peak, with the paired test of its test curve."""
    g = torch.Generator().manual_seed(0)
    N, M, K = 400, 600, 4
    y_tr, y_te = torch.arange(N) % K, torch.arange(M) % K
    centres = torch.randn(K, 6, generator=g)

    def block(strengths, y):
        return torch.stack([s * centres[y] + torch.randn(len(y), 6, generator=g)
                            for s in strengths])  # fmt: skip

    sig = torch.tensor([0.01, 0.1, 1.0], dtype=torch.float64)
    bump, falls = (0.2, 1.0, 0.2), (1.0, 0.6, 0.2)
    train = {"bump": block(bump, y_tr), "falls": block(falls, y_tr)}
    test = {"bump": block(bump, y_te), "falls": block(falls, y_te)}
    out = network_probe.probe_blocks(sig, train, y_tr, test, y_te, seed=3)
    assert set(out) == {"bump", "falls"}
    for name, r in out.items():
        peak_choice = levels.crossfit_level(train[name], y_tr, seed=3, sigmas=sig)
        peak, crossfit = peak_choice.index, peak_choice.curve
        direct = probes.probe_across_sigma(sig, list(train[name]), y_tr, list(test[name]), y_te)
        assert r.shape.peak == peak and torch.equal(r.crossfit.correct, crossfit.correct)
        assert torch.equal(r.curve.correct, direct.correct)
        assert r.shape == stats.paired_curve_shape(direct.correct, peak)
    assert out["bump"].shape.verdict == "unimodal" and out["bump"].shape.peak == 1
    assert out["falls"].shape.peak == 0 and math.isinf(out["falls"].shape.mde)
    with pytest.raises(ValueError, match="name the same blocks"):
        network_probe.probe_blocks(sig, train, y_tr, {"bump": test["bump"]}, y_te)


def test_probe_blocks_uses_its_weight_decay_in_the_test_probes_and_the_cross_fitting():
    g = torch.Generator().manual_seed(1)
    N, M, K = 120, 150, 3
    y_tr, y_te = torch.arange(N) % K, torch.arange(M) % K
    centres = torch.randn(K, 20, generator=g)
    train = {"b": torch.stack([0.3 * centres[y_tr] + torch.randn(N, 20, generator=g)] * 3)}
    test = {"b": torch.stack([0.3 * centres[y_te] + torch.randn(M, 20, generator=g)] * 3)}
    sig = [0.01, 0.1, 1.0]
    strong = network_probe.probe_blocks(sig, train, y_tr, test, y_te, weight_decay=3.0)["b"]
    direct = probes.probe_across_sigma(sig, list(train["b"]), y_tr, list(test["b"]), y_te,
                                       weight_decay=3.0)  # fmt: skip
    choice = levels.crossfit_level(train["b"], y_tr, sigmas=sig, weight_decay=3.0)
    assert torch.equal(strong.curve.correct, direct.correct)
    assert torch.equal(strong.crossfit.correct, choice.curve.correct)
    weak = network_probe.probe_blocks(sig, train, y_tr, test, y_te)["b"]  # 1e-4
    assert not torch.equal(strong.curve.correct, weak.curve.correct)


def test_probe_per_sigma_takes_at_each_level_the_setting_the_cross_fitting_prefers():
    """Two settings of the same items: the cross-fitted accuracy prefers "a" at level 0 and
    2 and "b" at level 1; the composite holds each level's chosen rows, peaks where the
    chosen cross-fitted accuracy is highest, and is tested there with paired errors."""
    g = torch.Generator().manual_seed(4)
    N, M = 200, 300
    sig = torch.tensor([0.01, 0.1, 1.0], dtype=torch.float64)
    y_tr = torch.arange(N) % 2

    def setting(crossfit_rates, test_rates, items=M):
        cf = torch.stack([torch.rand(N, generator=g) < r for r in crossfit_rates])
        te = torch.stack([torch.rand(items, generator=g) < r for r in test_rates])
        curve, crossfit = probes.binomial_curve(sig, te), probes.binomial_curve(sig, cf)
        return network_probe.BlockProbe(curve, crossfit, stats.paired_curve_shape(te, 0))

    settings = {"a": setting((0.7, 0.5, 0.6), (0.7, 0.6, 0.5)),
                "b": setting((0.4, 0.9, 0.3), (0.6, 0.8, 0.4))}  # fmt: skip
    out = network_probe.probe_per_sigma(settings, y_tr, seed=2)
    chosen = ("a", "b", "a")
    expected_test = torch.stack([settings[k].curve.correct[s] for s, k in enumerate(chosen)])
    expected_cf = torch.stack([settings[k].crossfit.correct[s] for s, k in enumerate(chosen)])
    assert torch.equal(out.curve.correct, expected_test)
    assert torch.equal(out.crossfit.correct, expected_cf)
    assert out.shape.peak == 1 == int(expected_cf.double().mean(1).argmax())
    assert out.shape == stats.paired_curve_shape(expected_test, 1)
    short = {"a": settings["a"], "c": setting((0.1, 0.1, 0.1), (0.5, 0.5, 0.5), items=M - 1)}
    with pytest.raises(ValueError, match="same test items"):
        network_probe.probe_per_sigma(short, y_tr)


def test_a_descending_grid_is_refused_not_read_backwards():
    """The shape test reads the first level as the least noise: on a descending grid a falling
    curve would be called rising."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(20)
    F = {"block": torch.randn(3, 60, 4, generator=g, dtype=torch.float64)}
    with pytest.raises(ValueError, match="sigmas must increase strictly"):
        network_probe.probe_blocks([1.0, 0.5, 0.1], F, y, F, y)


def test_leads_are_paired_differences_with_a_bonferroni_family():
    scipy_stats = pytest.importorskip("scipy.stats")
    gen = torch.Generator().manual_seed(3)
    S, M = 4, 500
    pixels = torch.rand(S, M, generator=gen) < 0.7
    # the features get right every item the pixels get right, and some more
    features = pixels | (torch.rand(S, M, generator=gen) < 0.2)
    untrained = torch.rand(S, M, generator=gen) < 0.6
    scores = {"block": features, "block@2x2": features.roll(1, 1)}
    controls = {"noisy pixels": pixels, "untrained": untrained}
    found = network_probe.leads(scores, controls, {"block": 2, "block@2x2": 0})
    # block: 2 controls x (level 0, its peak 2); block@2x2: its peak is level 0, read once
    assert [(d.features, d.control, d.level) for d in found] == [
        ("block", "noisy pixels", 0), ("block", "noisy pixels", 2),
        ("block", "untrained", 0), ("block", "untrained", 2),
        ("block@2x2", "noisy pixels", 0), ("block@2x2", "untrained", 0),
    ]  # fmt: skip
    lead = found[1]
    d = (features[2].double() - pixels[2].double()).numpy()
    assert lead.difference.mean == pytest.approx(d.mean(), abs=1e-15) and lead.difference.mean > 0
    se = d.std(ddof=1) / math.sqrt(M)
    for interval, confidence in ((lead.difference, 0.95), (lead.simultaneous, 1 - 0.05 / 6)):
        half = scipy_stats.t.ppf((1 + confidence) / 2, M - 1) * se
        assert interval.high - interval.mean == pytest.approx(half, rel=1e-9)
        assert interval.level == pytest.approx(confidence, rel=1e-12)
    assert (
        lead.simultaneous.high - lead.simultaneous.low > lead.difference.high - lead.difference.low
    )
    with pytest.raises(ValueError, match=r"peaks must name every feature set"):
        network_probe.leads(scores, controls, {"block": 2})
    with pytest.raises(ValueError, match=r"peaks\['block'\] must be a level index in 0 .. 3"):
        network_probe.leads(scores, controls, {"block": 4, "block@2x2": 0})
    with pytest.raises(ValueError, match=r"peaks\['block'\] must be a level index"):
        network_probe.leads(scores, controls, {"block": True, "block@2x2": 0})
    # an index from numpy or torch (an argmax) is an index too
    assert (
        network_probe.leads(scores, controls, {"block": torch.tensor(2), "block@2x2": 0}) == found
    )
    with pytest.raises(
        ValueError, match=r"controls\['untrained'\]\['block'\] must be an \(S, M\)"
    ):
        network_probe.leads(scores, {"untrained": untrained[:, :10]}, {"block": 2, "block@2x2": 0})
    # a control per feature set: each feature set against its own
    own = {"block": untrained, "block@2x2": pixels}
    paired = network_probe.leads(scores, {"own": own}, {"block": 2, "block@2x2": 0})
    assert [(d.features, d.level) for d in paired] == [
        ("block", 0),
        ("block", 2),
        ("block@2x2", 0),
    ]
    expected = stats.paired_interval(features.roll(1, 1)[0], pixels[0])
    assert paired[2].difference == expected
    with pytest.raises(ValueError, match=r"controls\['own'\] must hold one score tensor per"):
        network_probe.leads(scores, {"own": {"block": untrained}}, {"block": 2, "block@2x2": 0})


def test_few_label_scores_are_the_share_of_subsets_right_per_item():
    gen = torch.Generator().manual_seed(4)
    labels = torch.arange(200) % 4
    x = torch.nn.functional.one_hot(labels, 4).double() + 0.8 * torch.randn(200, 4, generator=gen)
    F = {"x": torch.stack([x, 2 * x + torch.randn(200, 4, generator=gen)]).float()}  # (S, N, p)
    train, test = features.split_items(F, 120)
    scores = network_probe.few_label_scores(train, labels[:120], test, labels[120:], 20, [1, 2, 3])
    hits = probes.subset_correctness(list(train["x"]), labels[:120], list(test["x"]),
                                     labels[120:], 20, [1, 2, 3])  # fmt: skip
    torch.testing.assert_close(scores["x"], hits.double().mean(0), rtol=0, atol=0)
    assert set(scores["x"].unique().tolist()) <= {0.0, 1 / 3, 2 / 3, 1.0}
    assert 0.3 < scores["x"][0].mean() < 1  # the probes learn something, not everything
    with pytest.raises(ValueError, match="must name the same feature sets"):
        network_probe.few_label_scores(train, labels[:120], {}, labels[120:], 20, [1])
