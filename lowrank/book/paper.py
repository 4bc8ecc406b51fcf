"""The numbers printed in arXiv:2502.05743 (Li et al., NeurIPS 2025), with where each comes from.

Notebooks and tests take the paper's values from here only, so that a value is typed once and a
misprint is fixed once. Each :class:`PaperValues` carries its location in the paper (table or
figure, and what the rows mean); the sigma grids are the values as printed, to three decimals
(:mod:`lowrank.theory.schedules` computes them; its tests compare with these).

The settings of the experiments (dimensions, sample sizes, training recipe) are paper values
too: :data:`FIG3_SETTING`, :data:`FIG14_BASE` and :data:`TABLE4_SETTING`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PaperValues",
    "EDM_PROBE_SIGMAS",
    "MOLRG_SIGMAS",
    "FIG3_SETTING",
    "FIG14_BASE",
    "TABLE4_SETTING",
    "TABLE4",
    "TABLE5",
    "TABLE6",
    "TABLE7_ACCURACY",
    "TABLE7_SNR",
    "TABLE9",
    "TABLE9_CIFAR10_RISE",
    "TABLE3_DAE_VS_DIFFUSION",
    "TABLE1_RATES",
    "TABLE1_EDM_SINGLE",
    "TABLE1_EDM_ENSEMBLE",
    "EDM_CIFAR10_PARAMETERS",
    "FIG6_SUBSET_SIZES",
    "FIG6_TRAINING_IMAGES",
    "FIG6_SSCD_THRESHOLD",
    "FIG6_SAMPLES",
    "FIG7_SUBSET_SIZE",
    "FIG7_UNIMODAL_UNTIL",
    "FIG7_DECREASING_FROM",
]


@dataclass(frozen=True)
class PaperValues:
    """A row of numbers as the paper prints them.

    Arguments:
        values: the numbers, in the paper's order (one per sigma of ``sigmas`` when given).
        where: table or figure of arXiv:2502.05743 (v3) and what the row is.
        sigmas: the noise levels of the row, as printed, or ``None``.
    """

    values: tuple[float, ...]
    where: str
    sigmas: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.sigmas is not None and len(self.sigmas) != len(self.values):
            raise ValueError(f"{self.where}: {len(self.values)} values, {len(self.sigmas)} sigmas")

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self):
        return iter(self.values)

    def __getitem__(self, i):
        return self.values[i]


# The last nine of the 18 Karras sigmas (sigma_min 0.002, sigma_max 80, rho 7), ascending:
# the real-data grid of Tables 4-6 and 9 (Tables 4 and 9 start at 0.008).
EDM_PROBE_SIGMAS = (0.002, 0.008, 0.023, 0.060, 0.140, 0.296, 0.585, 1.088, 1.923)
# DDPM linear betas 1e-4..0.02, T = 500, at t = 5, 10, 20, 40, ..., 280: Fig. 3 and Table 7.
MOLRG_SIGMAS = (0.030, 0.053, 0.098, 0.189, 0.282, 0.379, 0.480, 0.588, 0.704, 0.830, 0.969,
                1.492, 1.717, 1.978)  # fmt: skip

# Sec. 4.1 and Fig. 3: the MoLRG experiment and the recipe of the low-rank DAE (eq. 4).
FIG3_SETTING = {
    "n": 50,
    "K": 3,
    "d": 5,
    "delta": 0.2,
    "num_train": 12_000,
    "num_test": 9_000,
    "test_sets": 5,
    "epochs": 200,
    "lr": 5e-4,
    "T": 500,
}
# Fig. 14 (appendix): exact vs approximate SNR, one parameter varied around this point.
FIG14_BASE = {"n": 100, "d": 5, "K": 10, "delta": 0.3}
# Table 4 (appendix): binary MoLRG, n = 50, d = 5, delta = 0.2, 30 000 training samples.
TABLE4_SETTING = {"n": 50, "K": 2, "d": 5, "delta": 0.2, "num_train": 30_000}

_EDM_FROM_008 = EDM_PROBE_SIGMAS[1:]

TABLE4 = {
    "orthogonal": PaperValues(
        (24.88, 25.15, 26.95, 35.84, 58.27, 20.84, 4.05, 1.57),
        "Table 4, orthogonal subspaces (90 deg): SNR of the trained DAE",
        _EDM_FROM_008,
    ),
    "overlapping": PaperValues(
        (16.70, 16.92, 18.39, 25.97, 38.54, 22.88, 14.56, 12.55),
        "Table 4, overlapping subspaces (30 deg): SNR of the trained DAE",
        _EDM_FROM_008,
    ),
}
TABLE5 = {
    0: PaperValues(
        (68.94, 69, 69.83, 74.87, 102.24, 195.44, 215.31, 34.17, 8.44),
        "Table 5, unequal ranks d0 = 10, d1 = 2: SNR of class 0",
        EDM_PROBE_SIGMAS,
    ),
    1: PaperValues(
        (7.75, 7.75, 7.8, 8.08, 8.79, 6.5, 1.8, 0.46, 0.27),
        "Table 5, unequal ranks d0 = 10, d1 = 2: SNR of class 1",
        EDM_PROBE_SIGMAS,
    ),
}
TABLE6 = {
    0: PaperValues(
        (52.35, 52.43, 52.98, 56.74, 75.61, 134.76, 72.38, 13.56, 4.5),
        "Table 6, class probabilities 0.8 / 0.2: SNR of class 0",
        EDM_PROBE_SIGMAS,
    ),
    1: PaperValues(
        (12.15, 12.16, 12.31, 13.1, 17.49, 23.91, 6.05, 1.17, 0.52),
        "Table 6, class probabilities 0.8 / 0.2: SNR of class 1",
        EDM_PROBE_SIGMAS,
    ),
}
TABLE7_ACCURACY = PaperValues(
    (100, 100, 100, 99.8, 97.7, 92.4, 85.7, 78.5, 71.8, 66, 61.6, 52.6),
    "Table 7, well-separated clusters: linear probe accuracy (%)",
    MOLRG_SIGMAS[:12],
)
TABLE7_SNR = PaperValues(
    (0.54, 0.539, 0.535, 0.524, 0.513, 0.502, 0.484, 0.465, 0.436, 0.406, 0.37, 0.297),
    "Table 7, well-separated clusters: SNR",
    MOLRG_SIGMAS[:12],
)
TABLE9 = {
    ("CIFAR-10", "logistic"): PaperValues(
        (93.72, 94.94, 95.20, 94.11, 91.36, 85.25, 72.95, 56.21),
        "Table 9, pretrained EDM on CIFAR-10: logistic probe accuracy (%)",
        _EDM_FROM_008,
    ),
    ("CIFAR-10", "projection"): PaperValues(
        (86.95, 90.36, 90.93, 90.78, 88.48, 82.82, 70.53, 53.84),
        "Table 9, pretrained EDM on CIFAR-10: projection classifier accuracy (%)",
        _EDM_FROM_008,
    ),
    ("TinyImageNet", "logistic"): PaperValues(
        (32.17, 34.70, 43.09, 53.58, 50.78, 42.13, 27.56, 15.10),
        "Table 9, pretrained EDM on TinyImageNet: logistic probe accuracy (%)",
        _EDM_FROM_008,
    ),
    ("TinyImageNet", "projection"): PaperValues(
        (12.89, 14.38, 24.10, 34.78, 34.88, 30.02, 20.99, 12.64),
        "Table 9, pretrained EDM on TinyImageNet: projection classifier accuracy (%)",
        _EDM_FROM_008,
    ),
}
# The paper's own rise on real data, as a fraction: Table 9's CIFAR-10 logistic probe from its
# first level (93.72% at sigma 0.008) to its peak (95.20% at 0.06), +1.48 points. The effect a
# real-data verdict's power is computed against (lowrank.measure.inference.rise_check).
TABLE9_CIFAR10_RISE = (
    max(TABLE9["CIFAR-10", "logistic"].values) - TABLE9["CIFAR-10", "logistic"].values[0]
) / 100
# Size of the network behind Table 9's CIFAR-10 row: EDM's DDPM++ (Karras et al. 2022, Table 7:
# 55.73M parameters for CIFAR-10 at 32x32), the model the paper probes. Not a number of the paper.
EDM_CIFAR10_PARAMETERS = 55.73e6

# Fig. 13 / Table 3: probe accuracy (%) of a single-level DAE at sigma 0.002 against the same
# network trained with multi-level noise.
TABLE3_DAE_VS_DIFFUSION = PaperValues(
    (32.3, 58.6), "Table 3: DAE trained at sigma 0.002 alone vs with multi-level noise (%)"
)

# Appendix Table 1 (v1): linear-probe accuracy (%) of a pretrained EDM when a share of the
# training labels is flipped, the single best timestep against the ensemble of the best timestep
# and two neighbours on each side (logits averaged). MiniImageNet, probed on EDM's ImageNet 64x64
# checkpoint with inputs resized to 224 pixels.
TABLE1_RATES = (0.0, 0.2, 0.4, 0.6, 0.8)
TABLE1_EDM_SINGLE = PaperValues(
    (67.2, 62.9, 59.2, 53.2, 40.1), "Table 1 (appendix, v1): EDM, single best timestep (%)"
)
TABLE1_EDM_ENSEMBLE = PaperValues(
    (72.0, 67.8, 64.7, 60.0, 48.2), "Table 1 (appendix, v1): EDM, ensemble of five timesteps (%)"
)

# Fig. 6-8: generalization against memorization. DDPM++ "UNet-32/64" trained on class-balanced
# CIFAR-10 subsets of 2^8 .. 2^15 images, 50 million training images seen each; the
# generalization score is the share of 10,000 samples whose nearest training image has an SSCD
# cosine similarity of at most 0.6 (Zhang et al., ICML 2024). The paper reports it as curves, not
# numbers: large subsets score high and give unimodal probe curves, small ones score low and
# give monotonically decreasing curves.
FIG6_SUBSET_SIZES = tuple(2**k for k in range(8, 16))
FIG6_TRAINING_IMAGES = 50_000_000
FIG6_SSCD_THRESHOLD = 0.6
FIG6_SAMPLES = 10_000
# Fig. 7-8: one UNet-128 trained on 2^12 CIFAR-10 images and followed through training: probe
# curves unimodal up to 7.5 million images seen, monotonically decreasing from 15 million on.
FIG7_SUBSET_SIZE = 2**12
FIG7_UNIMODAL_UNTIL = 7_500_000
FIG7_DECREASING_FROM = 15_000_000
