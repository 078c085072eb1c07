"""PNG figures: panels, overlay blending, true proportions, dead filters, no metadata."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medvis_desktop import colormaps
from medvis_desktop.export import OverlayStyle, activation_grid, overlay, save_png, triptych
from medvis_desktop.export.images import (
    BAR_TITLE,
    LETTER,
    MARGIN,
    SPACE,
    TEXT,
    MapScale,
    finite_range,
    map_scale,
    round_length,
    scale_range,
    short_number,
    zoom_for,
)
from medvis_desktop.imaging.orientation import Edges

TURBO_TOP = colormaps.lookup_table("turbo")[255]


def native_panel(figure: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Panel k (image, heat map, overlay) of a native-size triptych (text scale 1): each image
    sits in bands SPACE wide for its letters, two under it, MARGIN between cells and around."""
    height, width = shape
    left = MARGIN + k * (width + 2 * SPACE + MARGIN) + SPACE
    return figure[MARGIN + SPACE : MARGIN + SPACE + height, left : left + width]


def box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the True pixels."""
    rows, columns = np.nonzero(mask)
    return rows.min(), columns.min(), rows.max() - rows.min() + 1, columns.max() - columns.min() + 1


def test_overlay_blends_only_above_the_threshold():
    grey = np.full((2, 2), 100, dtype=np.uint8)
    heat = np.array([[0.0, 0.1], [0.5, 1.0]], dtype=np.float32)
    style = OverlayStyle(colormap="jet", opacity=0.25, threshold=0.2)
    rgb = overlay(grey, map_scale((0.0, 1.0), False, style).rgba(heat))
    np.testing.assert_array_equal(rgb[0, 0], [100, 100, 100])
    np.testing.assert_array_equal(rgb[0, 1], [100, 100, 100])
    top = colormaps.lookup_table("jet")[255].astype(float)
    np.testing.assert_array_equal(rgb[1, 1], np.round(0.75 * 100 + 0.25 * top))


def test_triptych_panels_and_true_proportions(head_ct_block):
    grey = np.clip((head_ct_block[20] + 160) / 320 * 255, 0, 255).astype(np.uint8)[:, :128]
    heat = np.zeros(grey.shape, dtype=np.float32)
    heat[100:140, 40:80] = 1.0
    legend = ["Grad-CAM", "layer conv2"]
    square = np.asarray(triptych(grey, heat, legend=legend, long_side=0))
    stretched = np.asarray(triptych(grey, heat, spacing_yx=(2.0, 1.0), legend=legend, long_side=0))
    # The heat-map panel (second) is turbo's top colour inside the hot square, 40 × 40 voxels.
    np.testing.assert_array_equal(native_panel(square, 1, grey.shape)[120, 60], TURBO_TOP)
    for figure, height in ((square, 40), (stretched, 80)):
        hot = (figure == TURBO_TOP).all(axis=-1)
        hot[:, 3 * figure.shape[1] // 5 :] = False  # not the colour bar's top
        assert box_of(hot)[2:] == (height, 40)  # 2 mm rows: twice as tall
    assert stretched.shape[0] - square.shape[0] == grey.shape[0]


def test_the_default_triptych_is_1500_px_long_with_square_mm_pixels_and_says_so(tmp_path):
    grey = np.full((40, 90), 90, dtype=np.uint8)
    heat = np.zeros(grey.shape, dtype=np.float32)
    heat[10:30, 20:60] = 1.0  # 40 columns of 0.7 mm by 20 rows of 1.6 mm
    figure = triptych(grey, heat, spacing_yx=(1.6, 0.7))
    pixels = np.asarray(figure)
    hot = (pixels == TURBO_TOP).all(axis=-1)
    hot[:, 3 * pixels.shape[1] // 5 :] = False
    _, _, height, width = box_of(hot)
    mm_per_pixel = 3 * 90 * 0.7 / 1500  # three panels of 63 mm side by side are the long side
    assert width == pytest.approx(40 * 0.7 / mm_per_pixel, abs=1)
    assert height == pytest.approx(20 * 1.6 / mm_per_pixel, abs=1)
    saved = Image.open(save_png(figure, tmp_path / "triptych.png"))
    assert saved.info["dpi"] == pytest.approx((25.4 / mm_per_pixel, 25.4 / mm_per_pixel), rel=1e-3)
    assert "dpi" not in Image.open(save_png(triptych(grey, heat, unit="px"), tmp_path / "px.png")).info


def test_nearest_keeps_two_grey_values_and_smooth_blends_them():
    board = np.where(np.indices((24, 24)).sum(axis=0) % 2 == 0, 40, 200).astype(np.uint8)
    heat = np.zeros(board.shape, dtype=np.float32)  # nothing drawn over the image
    zoom = zoom_for([(24.0, 24.0)] * 3, 1.0, 600)
    side = round(24 * zoom)
    for smooth, values in ((False, {40, 200}), (True, None)):
        figure = np.asarray(triptych(board, heat, long_side=600, smooth=smooth))
        left = round(MARGIN * 1.0) + round(SPACE * 1.0)  # 600 px: text scale 1
        image = figure[left : left + side, left : left + side, 0]
        found = set(np.unique(image).tolist())
        if values:
            assert found == values
        else:
            assert len(found - {40, 200}) > 10  # values between the two


def test_letters_sit_outside_each_panel_at_its_edge_midpoints_and_the_scale_bar_under_it():
    grey = np.full((80, 100), 60, dtype=np.uint8)
    heat = np.zeros(grey.shape, dtype=np.float32)
    edges = Edges("R", "L", "A", "P")
    lettered = np.asarray(triptych(grey, heat, spacing_yx=(0.5, 0.5), edges=edges, long_side=0))
    plain = np.asarray(triptych(grey, heat, spacing_yx=(0.5, 0.5), long_side=0))
    assert not (plain == LETTER).all(axis=-1).any()  # no geometry, no letters
    letter = (lettered == LETTER).all(axis=-1)
    for k in range(3):
        left, top = MARGIN + k * (100 + 2 * SPACE + MARGIN) + SPACE, MARGIN + SPACE
        middles = [
            (left - SPACE / 2, top + 40),
            (left + 100 + SPACE / 2, top + 40),
            (left + 50, top - SPACE / 2),
            (left + 50, top + 80 + SPACE / 2),
        ]
        for x, y in middles:
            near = letter[round(y) - 8 : round(y) + 9, round(x) - 8 : round(x) + 9]
            assert near.any(), (k, x, y)
        assert not letter[top : top + 80, left : left + 100].any()  # nothing over the image
        # The bar: 10 mm (a quarter of the 50 mm width, rounded down to 1, 2, 5 × 10^k) = 20 px.
        bar_row = lettered[round(top + 80 + 1.5 * SPACE), left - 2 : left + 25]  # up to its label
        drawn = np.flatnonzero((bar_row == TEXT).all(axis=-1))
        assert drawn.min() == 2 and drawn.max() - drawn.min() + 1 in (20, 21)


def test_the_triptych_is_laid_out_as_the_viewer_shows_the_slice():
    grey = np.zeros((30, 40), dtype=np.uint8)
    grey[:, :10] = 250  # bright at the array's first columns
    heat = np.zeros(grey.shape, dtype=np.float32)
    mirrored = native_panel(np.asarray(triptych(grey, heat, flips=(False, True), long_side=0)), 0, grey.shape)
    assert (mirrored[:, -10:, 0] == 250).all() and (mirrored[:, :-10, 0] == 0).all()


def test_a_legend_wider_than_the_figure_widens_it_and_never_covers_the_images():
    grey = np.full((40, 30), 100, dtype=np.uint8)
    heat = np.tile(np.linspace(0, 1, 30, dtype=np.float32), (40, 1))
    short = np.asarray(triptych(grey, heat, legend=["Grad-CAM"], long_side=0))
    long = np.asarray(triptych(grey, heat, legend=["Grad-CAM", "x" * 300], long_side=0))
    assert long.shape[1] > short.shape[1] and long.shape[0] == short.shape[0] + 18
    body = slice(0, short.shape[0] - MARGIN - 18)  # everything above the legend
    np.testing.assert_array_equal(long[body, : short.shape[1] - MARGIN], short[body, :-MARGIN])


def test_round_lengths_and_zoom():
    assert [round_length(v) for v in (0.7, 1.0, 3.3, 61.25, 249.0)] == [0.5, 1.0, 2.0, 50.0, 200.0]
    assert zoom_for([(200.0, 100.0)], 0.5, 0) == 2.0  # native: one pixel per finest spacing
    assert zoom_for([(100.0, 80.0)] * 3, 0.5, 1500) == 5.0  # the row of three, 300 mm, is 1500 px
    assert zoom_for([(100.0, 80.0)], 0.01, 1500) == 100.0  # never coarser than the voxels


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


RAMP = np.linspace(-2.0, 1.0, 301, dtype=np.float32)  # a signed map: -2 … 1 in steps of 0.01


def signed_scale(**style) -> MapScale:
    return map_scale(finite_range(RAMP), True, OverlayStyle(**style))


def rgba_of(scale: MapScale, *values: float) -> np.ndarray:
    return scale.rgba(np.array(values, dtype=np.float32))


def test_a_signed_map_is_centred_on_zero_with_the_diverging_map():
    scale = signed_scale(colormap="inferno", opacity=0.5, threshold=0.0)
    assert (scale.low, scale.high) == (-2.0, 2.0) and scale.centred  # symmetric, not (-2, 1)
    assert scale.colormap == colormaps.DIVERGING  # whatever sequential map was chosen
    table = colormaps.lookup_table(colormaps.DIVERGING)
    lowest, zero, highest = rgba_of(scale, -2.0, 0.0, 2.0)
    np.testing.assert_array_equal(lowest, [*table[0], 128])  # -2: the first colour, at the opacity
    np.testing.assert_array_equal(highest, [*table[-1], 128])  # +2: the last
    assert zero[3] == 0  # zero is never drawn, even with no threshold
    assert scale.labels == ((1.0, "2"), (0.5, "0"), (0.0, "-2")) and scale.marks == (0.5, 0.5)


def test_the_threshold_of_a_signed_map_applies_to_the_magnitude():
    scale = signed_scale(threshold=0.25)  # |v| < 0.5 is not drawn
    weak = rgba_of(scale, -0.45, -0.2, 0.2, 0.45)
    strong = rgba_of(scale, -1.5, -0.55, 0.55, 1.0)
    assert (weak[:, 3] == 0).all() and (strong[:, 3] == 128).all()
    assert (strong[:2, 2] > strong[:2, 0] + 40).all()  # negative: blue
    assert (strong[2:, 0] > strong[2:, 2] + 40).all()  # positive: red
    assert scale.marks == (0.375, 0.625)
    assert scale.visible.sum() == 256 - 2 * 32 and (scale.visible == scale.visible[::-1]).all()


def test_positive_only_drops_negative_values_onto_the_sequential_map():
    scale = signed_scale(colormap="jet", sign="positive", threshold=0.0)
    assert (scale.low, scale.high, scale.colormap, scale.centred) == (0.0, 1.0, "jet", False)
    rgba = rgba_of(scale, -2.0, -0.01, 0.5, 1.0)
    assert (rgba[:2] == 0).all()  # negative: not drawn, even with no threshold
    np.testing.assert_array_equal(rgba[3], [*colormaps.lookup_table("jet")[-1], 128])
    assert np.isnan(scale.shown(np.float32(-1.0))) and scale.labels == ((1.0, "1"), (0.0, "0"))


def test_absolute_value_shows_both_signs_alike():
    scale = signed_scale(sign="absolute", threshold=0.2)
    assert (scale.low, scale.high, scale.colormap) == (0.0, 2.0, "turbo")
    rgba = rgba_of(scale, -2.0, 2.0, -1.0, 1.0, -0.3)
    np.testing.assert_array_equal(rgba[0], rgba[1])
    np.testing.assert_array_equal(rgba[0, :3], colormaps.lookup_table("turbo")[-1])
    np.testing.assert_array_equal(rgba[2], rgba[3])
    assert rgba[4, 3] == 0  # 0.3 < 0.2 · 2


def test_maps_of_one_sign_ignore_the_sign_mode():
    cam = np.linspace(0.5, 3.0, 11, dtype=np.float32)
    for sign in ("signed", "positive", "absolute"):
        scale = map_scale(finite_range(cam), False, OverlayStyle("jet", 0.4, 0.25, sign))
        assert (scale.low, scale.high, scale.colormap, scale.centred) == (0.5, 3.0, "jet", False)
        np.testing.assert_array_equal(scale.shown(cam), cam)
        assert (scale.lut[:64, 3] == 0).all() and (scale.lut[64:, 3] == 102).all()
    with pytest.raises(ValueError, match="sign mode"):
        OverlayStyle(sign="both")


def test_a_flat_map_still_has_a_scale():
    zero = map_scale((0.0, 0.0), True, OverlayStyle())
    assert zero.low < 0 < zero.high and zero.rgba(np.zeros(3, np.float32))[:, 3].max() == 0
    constant = map_scale((2.0, 2.0), False, OverlayStyle())
    assert constant.low == 2.0 < constant.high


def test_triptych_of_a_signed_map_is_blue_below_zero_red_above_and_grey_within_the_threshold():
    grey = np.full((60, 90), 120, dtype=np.uint8)
    heat = np.zeros(grey.shape, dtype=np.float32)
    heat[:, :30] = -2.0  # blue
    heat[:, 30:60] = 0.1  # weaker than 0.2 · 2: not drawn
    heat[:, 60:] = 1.5  # red
    scale = map_scale(finite_range(heat), True, OverlayStyle(threshold=0.2))
    figure = np.asarray(triptych(grey, heat, scale=scale, legend=["Gradient"], long_side=0)).astype(int)
    heat_panel, overlaid = (native_panel(figure, k, grey.shape) for k in (1, 2))
    blue, grey_band, red = overlaid[:, 5:25], overlaid[:, 35:55], overlaid[:, 65:85]
    assert (blue[..., 2] > blue[..., 0] + 50).all()
    assert (red[..., 0] > red[..., 2] + 50).all()
    assert (grey_band == 120).all()  # the image itself
    np.testing.assert_array_equal(heat_panel[30, 10], colormaps.lookup_table("coolwarm")[0])
    bar = figure[MARGIN + SPACE : MARGIN + SPACE + 60, MARGIN + 3 * (90 + 2 * SPACE + MARGIN) + 4]
    assert bar[1, 0] > bar[1, 2] and bar[-2, 2] > bar[-2, 0]  # red on top, blue at the bottom


def test_the_robust_scale_is_not_set_by_a_few_extreme_voxels():
    # A ReLU map: ten slices at 2 (1000 voxels), 4 stray voxels at 50 on slice 15 (0.4 % of the
    # values above zero), zero elsewhere; slice 19 not computed.
    maps = np.zeros((20, 10, 10), dtype=np.float32)
    maps[:10] = 2.0
    maps[15, 0, :4] = 50.0
    maps[19] = np.nan
    computed = np.arange(20) < 19
    style = OverlayStyle()
    assert style.scale == "robust"  # the default
    robust = scale_range(maps, computed, maps[5], style, False)
    assert robust == (0.0, 2.0)  # the 99.5th percentile of the 1004 values above zero
    assert scale_range(maps, computed, maps[5], OverlayStyle(scale="max"), False) == (0.0, 50.0)
    # Under the study's maximum the slices at 2 are 4 % of the scale, below the 20 % threshold.
    alpha = {
        name: map_scale(value_range, False, style).rgba(maps[5])[..., 3]
        for name, value_range in (("robust", robust), ("max", (0.0, 50.0)))
    }
    assert (alpha["robust"] > 0).all() and (alpha["max"] == 0).all()


def test_the_robust_scale_of_a_map_zero_almost_everywhere_counts_its_signal_only():
    maps = np.zeros((10, 20, 20), dtype=np.float32)  # 4000 voxels, 20 of them above zero
    maps[4, 0, :] = np.linspace(1.0, 3.0, 20)
    computed = np.ones(10, dtype=bool)
    # Over all voxels the 99.5th percentile would be zero; over the 20, 1 + 2 · 0.995.
    assert scale_range(maps, computed, maps[0], OverlayStyle(), False) == pytest.approx((0.0, 2.99))


def test_the_robust_scale_of_a_signed_map_takes_each_sign_apart():
    maps = np.zeros((2, 2, 20), dtype=np.float32)
    maps[0, 0] = np.linspace(1.0, 3.0, 20)
    maps[1, 0] = -np.linspace(2.0, 6.0, 20)
    computed = np.ones(2, dtype=bool)
    ends = scale_range(maps, computed, maps[0], OverlayStyle(), True)
    assert ends == pytest.approx((-(2.0 + 4 * 0.995), 1.0 + 2 * 0.995))
    assert map_scale(ends, True, OverlayStyle()).high == pytest.approx(5.98)  # signed: the larger
    assert map_scale(ends, True, OverlayStyle(sign="positive")).high == pytest.approx(2.99)


def test_the_slice_and_fixed_scales_and_what_the_bar_says():
    maps = np.stack([np.full((3, 3), 1.0), np.full((3, 3), 8.0)]).astype(np.float32)
    maps[0, 0, 0] = 0.0
    computed = np.ones(2, dtype=bool)
    on_screen = OverlayStyle(scale="slice")
    assert scale_range(maps, computed, maps[0], on_screen, False) == (0.0, 1.0)
    fixed = OverlayStyle(scale="fixed", fixed_low=0.5, fixed_high=4.0)
    assert scale_range(maps, computed, maps[0], fixed, False) == (0.5, 4.0)
    reversed_range = OverlayStyle(scale="fixed", fixed_low=4.0, fixed_high=0.5)
    assert scale_range(maps, computed, maps[0], reversed_range, False) == (0.5, 4.0)
    assert map_scale((0.5, 4.0), False, fixed).policy == "fixed range"
    assert map_scale((0.0, 1.0), False, OverlayStyle()).policy == "study, 99.5th pct"
    assert map_scale((0.0, 1.0), True, on_screen).policy == "this slice"
    with pytest.raises(ValueError, match="colour scale"):
        OverlayStyle(scale="loudest")


def test_the_triptych_bar_names_its_scale():
    grey = np.full((120, 40), 90, dtype=np.uint8)
    heat = np.tile(np.linspace(0, 1, 40, dtype=np.float32), (120, 1))
    figures = [
        np.asarray(
            triptych(grey, heat, scale=map_scale((0.0, 1.0), False, OverlayStyle(scale=name)), long_side=0)
        )
        for name in ("robust", "fixed")
    ]
    # The policy is written upwards at the figure's right edge: its text differs, the rest not.
    title = slice(-MARGIN - BAR_TITLE, -MARGIN)
    assert figures[0][:, title].max() > 200
    assert (figures[0][:, title] != figures[1][:, title]).any()
    np.testing.assert_array_equal(figures[0][:, : -MARGIN - BAR_TITLE], figures[1][:, : -MARGIN - BAR_TITLE])
