"""Figure-quality exports of the view: size and square mm pixels, interpolation, letters, scale
bar, legend margin, recorded pixel size, score strip, clipboard, the user's choice, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QMenu

from medvis_desktop import cli
from medvis_desktop.explain.runner import Explanation
from medvis_desktop.gui.app import run_gui
from medvis_desktop.gui.figure import FigureOptions, ScoreStrip
from medvis_desktop.gui.slice_viewer import SINGLE
from medvis_desktop.imaging import Volume, Window
from medvis_desktop.imaging.orientation import NO_SPACING
from tests.gui.conftest import shown_viewer

SPACING = (2.0, 0.6, 1.3)  # z, y, x in mm: no two alike
SHAPE = (12, 50, 80)  # axial 104 mm wide, 30 mm tall
LETTER = np.array([255, 235, 130])  # gui.view_annotations.LETTER_COLOUR
CURVE = np.array([90, 170, 255])  # the score track's curve


def rgb(image: QImage) -> np.ndarray:
    """(height, width, 3) uint8 of a QImage."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : 3 * image.width()].reshape(image.height(), image.width(), 3).copy()


def inside(pixels: np.ndarray, rect) -> np.ndarray:
    return pixels[rect.top() : rect.bottom() + 1, rect.left() : rect.right() + 1]


def near_colour(pixels: np.ndarray, colour: np.ndarray, tolerance: int = 40) -> np.ndarray:
    return np.abs(pixels.astype(int) - colour).max(axis=-1) <= tolerance


def checkerboard(**volume) -> Volume:
    """Two values, 0 and 100, alternating voxel by voxel, shown black and white."""
    voxels = (np.indices(SHAPE).sum(axis=0) % 2 * 100).astype(np.int16)
    return Volume(voxels=voxels, spacing=SPACING, modality="CT", **volume)


@pytest.fixture
def viewer(qtbot):
    viewer = shown_viewer(qtbot, 600, 400)
    viewer.set_volume(checkerboard())
    viewer.set_window(Window("two values", 50, 100))  # 0 black, 100 white
    return viewer


def test_the_default_figure_is_1500_px_long_with_the_sections_mm_proportions(viewer):
    for axis, (width_mm, height_mm) in ((0, (80 * 1.3, 50 * 0.6)), (1, (80 * 1.3, 12 * 2.0))):
        viewer.set_layout_mode(SINGLE, axis)
        [view] = viewer.snapshot(["legend"]).views
        assert max(view.width(), view.height()) >= 1500
        assert view.width() == 1500  # the long side
        assert view.height() == pytest.approx(view.width() * height_mm / width_mm, abs=0.5)  # square mm
    viewer.set_layout_mode(SINGLE, 0)
    native = viewer.snapshot([], options=FigureOptions(long_side=0))
    assert native.views[0].width() == round(80 * 1.3 / 0.6)  # one pixel per finest spacing shown
    assert native.pixel_mm == pytest.approx(0.6)


def test_nearest_shows_only_the_two_values_and_smooth_blends_them(viewer):
    for smooth in (False, True):
        shot = viewer.snapshot(["legend"], options=FigureOptions(smooth=smooth))
        values = set(np.unique(inside(rgb(shot.image), shot.views[0])).tolist())
        if smooth:
            assert len(values - {0, 255}) > 50
        else:
            assert values == {0, 255}


def test_letters_at_each_edge_midpoint_and_none_without_geometry(qtbot, viewer):
    shot = viewer.snapshot([])
    pixels, view = rgb(shot.image), shot.views[0]
    lettered = near_colour(pixels, LETTER)
    space = round(24 * 1.5)  # the band outside each edge, at text scale 1.5
    x, y = view.center().x(), view.center().y()
    bands = {
        "left": lettered[y - space : y + space, view.left() - space : view.left()],
        "right": lettered[y - space : y + space, view.right() + 1 : view.right() + 1 + space],
        "top": lettered[view.top() - space : view.top(), x - space : x + space],
        "bottom": lettered[view.bottom() + 1 : view.bottom() + 1 + space, x - space : x + space],
    }
    for edge, band in bands.items():
        assert band.any(), edge
    assert not inside(lettered, view).any()

    picture = Volume(voxels=np.zeros((1, 40, 60), np.uint8), modality="OT", warnings=[NO_SPACING])
    viewer.set_volume(picture)
    assert not near_colour(rgb(viewer.snapshot([]).image), LETTER).any()


def test_the_scale_bar_is_a_round_length_in_mm(viewer):
    shot = viewer.snapshot([])
    pixels, view = rgb(shot.image), shot.views[0]
    mm_per_pixel = 104 / 1500
    bar = round(20 / mm_per_pixel)  # a quarter of 104 mm is 26: the bar is 20 mm
    space = 24 * 1.5  # the bands under the image at text scale 1.5: letter, then bar
    under = pixels[
        round(view.bottom() + space) : round(view.bottom() + 2 * space), view.left() : view.left() + bar + 5
    ]
    light = near_colour(under, np.array([235, 235, 235]), 5)
    assert light.sum(axis=1).max() == pytest.approx(bar, abs=2)


@pytest.mark.parametrize("all_views", [False, True])
def test_a_legend_line_wider_than_the_figure_widens_it_and_never_covers_an_image(viewer, all_views):
    short = viewer.snapshot(["Grad-CAM"], all_views=all_views)
    wide = viewer.snapshot(["Grad-CAM", "a long line " * 400], all_views=all_views)
    assert wide.image.width() > short.image.width() > 1500
    assert wide.views == short.views
    for view in wide.views:
        np.testing.assert_array_equal(inside(rgb(wide.image), view), inside(rgb(short.image), view))
        assert set(np.unique(inside(rgb(wide.image), view)).tolist()) == {0, 255}  # no text inside


def test_the_png_records_its_pixel_size(viewer, tmp_path):
    for options in (FigureOptions(), FigureOptions(long_side=3000), FigureOptions(long_side=0)):
        path = tmp_path / f"{options.long_side}.png"
        viewer.snapshot(["legend"], options=options).image.save(str(path))
        mm_per_pixel = 104 / options.long_side if options.long_side else 0.6
        dpi = Image.open(path).info["dpi"]
        assert dpi == pytest.approx((25.4 / mm_per_pixel, 25.4 / mm_per_pixel), rel=1e-3)


def test_the_score_strip_draws_the_scores_threshold_and_current_slice(viewer):
    scores = np.linspace(0.0, 1.0, SHAPE[0], dtype=np.float32)
    scores[3] = np.nan  # not computed: a gap
    viewer.set_slice(6)
    shot = viewer.snapshot(["legend"], scores=ScoreStrip(scores, 0.5, 6, "lesion"))
    strip = shot.strip
    assert strip.top() > shot.views[0].bottom()  # under the image
    pixels = inside(rgb(shot.image), strip)
    assert near_colour(pixels, CURVE, 10).sum() > 200
    red, green, blue = pixels.astype(int).transpose(2, 0, 1)
    yellow = (red > 120) & (green > 100) & (blue < 60)  # the marker, drawn antialiased
    marker = np.flatnonzero(yellow.sum(axis=0) > 20)
    curve_columns = np.flatnonzero(near_colour(pixels, CURVE, 10).any(axis=0))
    # Slice 6 of 0…11 sits 6/11 of the way along the curve.
    along = curve_columns.min() + 6 / 11 * (curve_columns.max() - curve_columns.min())
    assert marker.size and abs(marker.mean() - along) < 4
    assert viewer.snapshot(["legend"]).strip is None


def test_copy_view_puts_the_screenshots_figure_on_the_clipboard(qtbot, window):
    window.copy_view()
    copied = QGuiApplication.clipboard().image()
    figure = window.view_figure().image
    assert (copied.width(), copied.height()) == (figure.width(), figure.height())
    assert copied.width() >= 1500
    actions = [action for menu in window.menuBar().findChildren(QMenu) for action in menu.actions()]
    copy = next(action for action in actions if action.text() == "Copy view")
    assert copy.shortcut().toString() == "Ctrl+Shift+C"


def test_the_figure_size_menu_is_kept_in_the_settings_and_sizes_the_exports(qtbot, window, tmp_path):
    actions = [action for menu in window.menuBar().findChildren(QMenu) for action in menu.actions()]
    by_text = {action.text(): action for action in actions}
    assert by_text["Long side 1,500 px"].isChecked() and not by_text["Smooth interpolation"].isChecked()
    width_mm = 256 * 0.957  # the CT's axial section
    for label, expected in (("Long side 3,000 px", 3000), ("Native (1 px per voxel)", 256)):
        by_text[label].trigger()
        shot = Image.open(window.export_screenshot(tmp_path / "view.png"))
        assert shot.info["dpi"][0] == pytest.approx(25.4 * expected / width_mm, rel=1e-3)
        assert shot.width > expected
    by_text["Smooth interpolation"].trigger()
    assert int(window.settings.value("figure/long_side")) == 0
    assert window.figure_options() == FigureOptions(long_side=0, smooth=True)


@pytest.mark.parametrize("stray", ["huge", "-40"])
def test_a_stray_figure_size_in_the_settings_file_does_not_break_the_exports(qtbot, window, stray):
    window.settings.setValue("figure/long_side", stray)
    expected = FigureOptions.long_side if stray == "huge" else 0  # unreadable: default; negative: native
    assert window.figure_options().long_side == expected


def test_the_command_line_figure_size_and_smooth(qtbot, settings, ct_nifti, tiny_model_path, tmp_path):
    out = tmp_path / "native.png"
    args = cli.build_parser().parse_args([
        "--open", str(ct_nifti), "--model", str(tiny_model_path), "--slice", "20",
        "--screenshot", str(out), "--figure-size", "0", "--smooth",
    ])  # fmt: skip
    settings.setValue("figure/long_side", 3000)  # the user's choice, overridden
    assert run_gui(args, settings) == 0
    shot = Image.open(out)
    assert shot.info["dpi"] == pytest.approx((25.4 / 0.957, 25.4 / 0.957), rel=1e-3)  # native
    grey = np.asarray(shot.convert("L"))
    assert shot.width < 1000 and grey.std() > 20
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--figure-size", "-5"])


def test_an_explanation_colours_the_figure_and_adds_the_colour_bar(viewer, tiny_card):
    z, y, x = SHAPE
    maps = np.tile(np.linspace(0, 1, x, dtype=np.float32), (z, y, 1))
    explanation = Explanation(
        "grad_cam", "conv2", 1, None, maps, np.zeros((z, 2)), np.ones(z, bool), tiny_card
    )
    assert viewer.snapshot([]).colour_bar is None
    viewer.set_explanation(explanation)
    shot = viewer.snapshot([])
    assert shot.colour_bar.left() > shot.views[0].right()
    section = inside(rgb(shot.image), shot.views[0]).astype(int)
    assert (np.abs(np.diff(section, axis=2)).sum(axis=2) > 20).mean() > 0.3  # heat-map colours
