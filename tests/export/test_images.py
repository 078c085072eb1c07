"""PNG figures: panels, overlay blending, true proportions, dead filters, no metadata."""

from __future__ import annotations

import numpy as np
from PIL import Image

from medvis_desktop import colormaps
from medvis_desktop.export import OverlayStyle, activation_grid, overlay, save_png, triptych
from medvis_desktop.export.images import short_number


def test_overlay_blends_only_above_the_threshold():
    grey = np.full((2, 2), 100, dtype=np.uint8)
    heat = np.array([[0.0, 0.1], [0.5, 1.0]], dtype=np.float32)
    style = OverlayStyle(colormap="jet", opacity=0.25, threshold=0.2)
    rgb = overlay(grey, heat, style)
    np.testing.assert_array_equal(rgb[0, 0], [100, 100, 100])
    np.testing.assert_array_equal(rgb[0, 1], [100, 100, 100])
    top = colormaps.lookup_table("jet")[255].astype(float)
    np.testing.assert_array_equal(rgb[1, 1], np.round(0.75 * 100 + 0.25 * top))


def test_triptych_panels_and_true_proportions(head_ct_block):
    grey = np.clip((head_ct_block[20] + 160) / 320 * 255, 0, 255).astype(np.uint8)[:, :128]
    heat = np.zeros(grey.shape, dtype=np.float32)
    heat[100:140, 40:80] = 1.0
    square = triptych(grey, heat, legend=["Grad-CAM", "layer conv2"])
    stretched = triptych(grey, heat, spacing_yx=(2.0, 1.0), legend=["Grad-CAM", "layer conv2"])
    assert stretched.height - square.height == grey.shape[0]
    assert square.width > 3 * grey.shape[1]
    figure = np.asarray(square)
    # The heat-map panel (second) is turbo's top colour inside the hot square.
    header = square.height - grey.shape[0] - 8
    panel_left = 8 + grey.shape[1] + 8
    np.testing.assert_array_equal(figure[header + 120, panel_left + 60], colormaps.lookup_table("turbo")[255])


def test_activation_grid_marks_dead_filters_red():
    maps = np.random.default_rng(0).random((8, 8, 5)).astype(np.float32)
    maps[..., 3] = 0.0
    dead = np.array([False, False, False, True, False])
    grid = np.asarray(activation_grid(maps, dead, columns=5, tile=20))
    red = (grid[..., 0] > 200) & (grid[..., 1] < 80) & (grid[..., 2] < 80)
    columns_with_red = np.nonzero(red.any(axis=0))[0]
    tile_of = (columns_with_red - 8) // 22
    assert set(tile_of.tolist()) == {3}


def test_png_carries_no_text_metadata(tmp_path):
    path = save_png(Image.new("RGB", (4, 4)), tmp_path / "fig.png")
    assert Image.open(path).text == {}


def test_short_numbers_keep_tiny_gradients_legible():
    assert [short_number(v) for v in (0.25, 130.0, -3e-5, 2e5, 0.0)] == [
        "0.25",
        "130",
        "-3.0e-05",
        "2.0e+05",
        "0",
    ]
