"""The fused Triton kernel against the float64 torch reference.

On CPU the kernel body runs in Triton's interpreter (``TRITON_INTERPRET=1``, set by conftest)
at small sizes; ``pytest tests --device cuda`` runs the same tests compiled on a GPU. Every
tolerance is 4 times how far a plain torch run of the same precision drifts from float64 on the
same inputs: the kernel sums in another order than the reference, which changes the rounding
error by a factor of order one, not its size.
"""

import pytest
import torch

from lowrank.theory import kernels
from lowrank.theory.denoisers import MixtureDenoiser
from lowrank.theory.kernels import triton_projection
from lowrank.theory.kernels.reference import ProjectionParams, projection_denoise
from lowrank.theory.mixtures import LowRankMixture, MoLRG, random_orthonormal

pytestmark = pytest.mark.skipif(not kernels.triton_available(), reason="triton not installed")


def diagonal_mixture(n: int, K: int, seed: int, levels=None) -> LowRankMixture:
    """K classes on random subsets (unequal sizes) of one orthonormal basis, random variances,
    means and pi: diagonal in the union coordinates, like every non-overlapping MoLRG."""
    g = torch.Generator().manual_seed(seed)
    m = min(n, 2 * K + 3)
    basis = random_orthonormal(n, m, seed)
    bases, variances = [], []
    for _ in range(K):
        r = int(torch.randint(1, min(m, 6) + 1, (1,), generator=g))
        cols = torch.randperm(m, generator=g)[:r]
        bases.append(basis[:, cols])
        if levels is None:
            variances.append(0.05 + 2 * torch.rand(r, generator=g, dtype=torch.float64))
        else:
            variances.append(levels[torch.randint(len(levels), (r,), generator=g)])
    pi = torch.rand(K, generator=g, dtype=torch.float64) + 0.2
    means = 0.5 * torch.randn(K, m, generator=g, dtype=torch.float64) @ basis.T
    return LowRankMixture(pi / pi.sum(), means, bases, variances)


def batch(mix, B, seed, device):
    g = torch.Generator().manual_seed(seed)
    x0, _ = mix.sample(B, g)
    sigma = torch.exp(torch.empty(B, dtype=torch.float64).uniform_(-7, 7, generator=g))
    x_t = x0 + sigma[:, None] * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    return x_t.to(device), sigma.to(device)


def row_errors(posterior, reference):
    """Largest per-row relative error of x_hat and h, and largest error of w."""
    rel = lambda a, b: ((a.double() - b).norm(dim=1) / b.norm(dim=1).clamp_min(1e-30)).max()  # noqa: E731
    return torch.stack(
        [
            rel(posterior.x_hat, reference.x_hat),
            rel(posterior.coordinates, reference.coordinates),
            (posterior.weights.double() - reference.weights).abs().max(),
        ]
    )


def parts(posterior):
    return posterior.x_hat, posterior.coordinates, posterior.weights


CASES = [  # (B, n, K): every B, n and K of the grid at least once
    (1, 7, 1),
    (15, 7, 2),
    (63, 50, 10),
    (1000, 50, 2),
    (15, 784, 10),
    (1, 784, 2),
    (63, 784, 1),
    (1000, 7, 10),
    (70, 100, 25),  # m = 53: M_PAD = 64, 64-row tiles
    (20, 70, 33),  # m = 69: M_PAD = 128, 32-row tiles
]


@pytest.mark.parametrize("B, n, K", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_kernel_matches_float64_reference(B, n, K, dtype, device):
    mix = diagonal_mixture(n, K, seed=B + n + K)
    x_t, sigma = batch(mix, B, seed=7, device=device)
    reference = MixtureDenoiser(mix, backend="torch").posterior(x_t, sigma)
    plain = MixtureDenoiser(mix, backend="torch").posterior(x_t.to(dtype), sigma.float())
    fused = MixtureDenoiser(mix, backend="triton").posterior(x_t.to(dtype), sigma.float())
    assert all(torch.isfinite(t).all() for t in parts(fused))
    baseline = row_errors(plain, reference)
    if dtype != torch.float32:  # the kernel also rounds W to the input dtype; so must the baseline
        params = MixtureDenoiser(mix)._params(x_t.float())
        rounded = ProjectionParams(
            params.W.to(dtype).float(),
            *[getattr(params, f) for f in ("lam", "mean", "log_pi", "Q")],
        )
        baseline = torch.maximum(
            baseline,
            row_errors(
                projection_denoise(x_t.to(dtype), sigma.float(), rounded),
                reference,
            ),
        )
    assert torch.all(row_errors(fused, reference) <= 4 * baseline), (
        row_errors(fused, reference),
        baseline,
    )


@pytest.mark.parametrize("precision", ["ieee", "tf32"])
def test_float32_precision_modes(precision, device):
    mix = MoLRG(n=50, K=3, d=5, delta=0.2)
    x_t, sigma = batch(mix, 64, seed=3, device=device)
    reference = MixtureDenoiser(mix, backend="torch").posterior(x_t, sigma)
    fused = MixtureDenoiser(mix, backend="triton", float32_precision=precision)
    if device.type == "cuda" and precision == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            plain = MixtureDenoiser(mix, backend="torch").posterior(x_t.float(), sigma.float())
        finally:
            torch.backends.cuda.matmul.allow_tf32 = False
    else:
        plain = MixtureDenoiser(mix, backend="torch").posterior(x_t.float(), sigma.float())
    errors = row_errors(fused.posterior(x_t.float(), sigma.float()), reference)
    assert torch.all(errors <= 4 * row_errors(plain, reference))


def test_bfloat16_on_cuda(device):
    if device.type != "cuda":
        pytest.skip(
            "Triton 3.7.1's interpreter multiplies bfloat16 tiles as raw integers (a 16x16 "
            "tl.dot is off by 2e10), so bfloat16 is checked where the kernel compiles: CUDA"
        )
    mix = MoLRG(n=784, K=10, d=5, delta=0.2)
    x_t, sigma = batch(mix, 1000, seed=5, device=device)
    reference = MixtureDenoiser(mix, backend="torch").posterior(x_t, sigma)
    params = MixtureDenoiser(mix)._params(x_t.float())
    rounded = ProjectionParams(
        params.W.bfloat16().float(), params.lam, params.mean, params.log_pi, None
    )
    baseline = row_errors(projection_denoise(x_t.bfloat16(), sigma.float(), rounded), reference)
    fused = MixtureDenoiser(mix, backend="triton").posterior(x_t.bfloat16(), sigma.float())
    assert torch.all(row_errors(fused, reference) <= 4 * baseline)


def test_extreme_sigmas_stay_finite(device):
    mix = MoLRG(n=50, K=3, d=5, delta=0.2)
    sigma = torch.tensor([1e-4, 1e-3, 1e-2, 1.0, 1e2, 1e3, 1e4] * 3, device=device)
    x0, _ = mix.sample(len(sigma), torch.Generator().manual_seed(0))
    x_t = (x0.to(device) + sigma[:, None].double() * torch.randn_like(x0.to(device))).float()
    for t in parts(MixtureDenoiser(mix, backend="triton").posterior(x_t, sigma)):
        assert torch.isfinite(t).all()


def test_dispatch_rules(monkeypatch, device):
    overlap = MoLRG.overlapping(n=20, d=3, delta=0.2, angle_deg=30)
    x = torch.randn(4, 20, device=device)
    with pytest.raises(ValueError, match="not diagonal"):
        MixtureDenoiser(overlap, backend="triton")(x, 0.5)
    # auto falls back to the reference for what the kernel does not take
    torch.testing.assert_close(
        MixtureDenoiser(overlap, backend="auto")(x, 0.5),
        MixtureDenoiser(overlap, backend="torch")(x, 0.5),
    )
    mix = MoLRG(n=20, K=2, d=3, delta=0.2)
    params = MixtureDenoiser(mix)._params(x)
    assert "float64" in triton_projection.supported(x.double(), params)
    # which backend ran, and with which float32 precision: the kernel's entry point records it
    launched = []
    kernel = triton_projection.projection_denoise_triton

    def recording(x_t, sigma, p, float32_precision):
        launched.append((x_t.dtype, float32_precision))
        return kernel(x_t, sigma, p, float32_precision)

    monkeypatch.setattr(triton_projection, "projection_denoise_triton", recording)
    MixtureDenoiser(mix, backend="torch")(x, 0.5)
    MixtureDenoiser(mix, backend="auto")(x.double(), 0.5)  # a dtype the kernel does not take
    assert launched == []
    MixtureDenoiser(mix, backend="auto")(x, 0.5)  # the kernel on CUDA, the reference on CPU
    assert launched == ([(torch.float32, "ieee")] if device.type == "cuda" else [])
    launched.clear()
    MixtureDenoiser(mix, backend="triton", float32_precision="tf32")(x, 0.5)
    assert launched == [(torch.float32, "tf32")]
    with pytest.raises(ValueError, match="backend"):
        MixtureDenoiser(mix, backend="cuda")
    with pytest.raises(ValueError, match="float32_precision"):
        MixtureDenoiser(mix, float32_precision="bf16")
    # without the interpreter, CPU tensors cannot take the kernel: triton says how to fix it
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        MixtureDenoiser(mix, backend="triton")(x.cpu(), 0.5)


@pytest.mark.parametrize("seed", range(3))
def test_grouped_stage_equals_elementwise_stage(seed):
    """The matrix-product form of stage 2 (zero-mean diagonal mixtures) is the same function."""
    from lowrank.theory.kernels.reference import (
        posterior_coordinates,
        posterior_coordinates_grouped,
    )

    mix = diagonal_mixture(30, 6, seed, levels=torch.tensor([0.04, 1.0, 2.5], dtype=torch.float64))
    mix = LowRankMixture(mix.pi, None, mix.bases, mix.variances)  # zero means
    params = MixtureDenoiser(mix)._params(torch.zeros(1, dtype=torch.float64))
    assert params.levels is not None and params.Q is None
    g = torch.Generator().manual_seed(seed)
    z = 3 * torch.randn(500, mix.m, generator=g, dtype=torch.float64)
    s2 = torch.exp(torch.empty(500, 1, dtype=torch.float64).uniform_(-18, 18, generator=g))
    grouped = posterior_coordinates_grouped(z, s2, params)
    elementwise = posterior_coordinates(z, s2, params)
    # y is O(1) and w in [0, 1]; logits reach 1e9 at the smallest sigma, so tiny weights carry
    # relative errors of 1e9 * 1e-16 and only an absolute tolerance is meaningful
    assert grouped.x_hat is None and elementwise.x_hat is None
    for field in ("coordinates", "weights"):
        a, b = getattr(grouped, field), getattr(elementwise, field)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
