"""lowrank.book.plotting: what the figures draw, entry by entry."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lowrank.book import plotting


def test_curve_vs_sigma_draws_values_band_and_paper():
    plotting.set_theme()
    fig, ax = plt.subplots()
    sig = torch.tensor([0.1, 1.0, 10.0])
    values, stderr = torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0.1, 0.2, 0.1])
    plotting.curve_vs_sigma(ax, sig, values, "ours", stderr=stderr, paper=[1.1, 2.9, 2.2])
    ours, paper = ax.get_lines()
    np.testing.assert_array_equal(ours.get_ydata(), [1.0, 3.0, 2.0])
    np.testing.assert_array_equal(paper.get_ydata(), [1.1, 2.9, 2.2])
    assert paper.get_linestyle() == "None" and ax.get_xscale() == "log"
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.8) and band.max() == pytest.approx(3.4)
    plt.close(fig)


def test_block_energy_heatmap_annotates_every_entry():
    fig, ax = plt.subplots()
    E = torch.tensor([[2.0, 1.0, 2.0], [1.0, 4.0, 0.0], [2.0, 0.0, 3.0]])
    plotting.block_energy_heatmap(ax, E, "stuck")
    texts = [float(t.get_text()) for t in ax.texts]
    assert texts == E.flatten().tolist() and ax.get_title() == "stuck"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["class 1", "class 2", "class 3"]
    np.testing.assert_array_equal(ax.collections[0].get_array().reshape(3, 3), E.numpy())
    plt.close(fig)


def test_image_rows_places_every_pixel_and_maps_the_model_range():
    gen = torch.Generator().manual_seed(0)
    top, bottom = (torch.rand(3, 1, 2, 4, generator=gen) * 2 - 1 for _ in range(2))
    fig, (ax, rgb_ax) = plt.subplots(1, 2)
    plotting.image_rows(ax, [top, bottom], "samples")
    shown = ax.images[0].get_array()
    assert shown.shape == (4, 12) and ax.get_title() == "samples" and not ax.axison
    assert ax.images[0].get_clim() == (0, 1)  # grey levels fixed, not stretched per picture
    # pixel (y, x) of image j in row i sits at (2 i + y, 4 j + x), mapped from [-1, 1] to [0, 1]
    for i, row in enumerate((top, bottom)):
        for j in range(3):
            block = shown[2 * i : 2 * i + 2, 4 * j : 4 * j + 4]
            np.testing.assert_allclose(block, ((row[j, 0] + 1) / 2).numpy(), atol=1e-7)
    rgb = torch.full((2, 3, 2, 2), -1.0)
    rgb[1, 0] = 2.0  # clipped to 1: the second image red
    plotting.image_rows(rgb_ax, [rgb])
    pixels = rgb_ax.images[0].get_array()
    assert pixels.shape == (2, 4, 3) and pixels[:, 2:, 0].min() == 1 and pixels[:, :2].max() == 0
    with pytest.raises(ValueError, match="one shape"):
        plotting.image_rows(ax, [top, bottom[:2]])
    with pytest.raises(ValueError, match="1 or 3 channels"):
        plotting.image_rows(ax, [torch.zeros(1, 2, 2, 2)])
    plt.close(fig)


def test_phase_map_puts_the_first_row_at_the_bottom_and_stars_the_unimodal_cells():
    fig, ax = plt.subplots()
    values = [[1.0, 2.0, np.nan], [3.0, 4.0, 5.0]]  # rows: K = 2, K = 3; columns: three deltas
    unimodal = [[True, False, False], [False, False, True]]
    plotting.phase_map(ax, values, unimodal, ([0.1, 0.2, 0.3], [2, 3]), title="t", mark=(0, 1))
    texts = {(round(t.get_position()[0], 1), round(t.get_position()[1], 1)): t for t in ax.texts}
    assert len(texts) == 5  # the NaN cell is blank
    assert texts[(0.5, 1.5)].get_text() == "1.00*" and texts[(0.5, 1.5)].get_fontweight() == "bold"
    assert texts[(2.5, 0.5)].get_text() == "5.00*" and texts[(1.5, 0.5)].get_text() == "4.00"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["3", "2"]  # top to bottom
    (box,) = ax.patches
    assert box.get_xy() == (1, 1) and box.get_width() == 1
    with pytest.raises(ValueError, match="len\\(rows\\), len\\(columns\\)"):
        plotting.phase_map(ax, values, unimodal, ([0.1, 0.2], [2, 3]), title="t")
    plt.close(fig)
