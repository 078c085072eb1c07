"""Signed maps (pixel attributions, deconvnet) on screen and in the exports: a diverging map
centred on zero, zero transparent, the true signed range on the colour bar; CAM maps unchanged."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtGui import QImage

from medvis_desktop import colormaps
from medvis_desktop.explain.runner import Explanation
from medvis_desktop.export import OverlayStyle
from medvis_desktop.export.images import MARGIN, SPACE, as_shown, finite_range, map_scale, scale_range
from medvis_desktop.gui.method_panel import SIGN_LABELS, MethodPanel
from medvis_desktop.gui.slice_viewer import SliceViewer
from medvis_desktop.imaging import orientation
from tests.gui.conftest import make_window, run_and_wait

COOL_WARM = colormaps.lookup_table(colormaps.DIVERGING)
STUDY_MAX = "max"  # the colour scale over the study's whole range: these tests' numbers are its ends


@pytest.fixture
def viewer(qtbot, ct_volume):
    viewer = SliceViewer()
    qtbot.addWidget(viewer)
    viewer.resize(900, 600)
    viewer.show()
    viewer.set_volume(ct_volume)
    viewer.set_style(OverlayStyle(scale=STUDY_MAX))
    return viewer


@pytest.fixture
def gradient(ct_volume, tiny_card) -> Explanation:
    """A signed map: a ramp from -2 (left) to 1 (right) on every slice."""
    z, y, x = ct_volume.shape
    ramp = np.linspace(-2, 1, x, dtype=np.float32)
    maps = np.broadcast_to(ramp, (z, y, x)).copy()
    return Explanation(
        "gradient", "", 1, None, maps, np.zeros((z, 2)), np.ones(z, bool), tiny_card, signed=True
    )


def rendered(item) -> np.ndarray:
    """RGBA (H, W, 4) of what pyqtgraph draws for an image item (its data, levels and LUT)."""
    item.render()
    image = item.qimage.convertToFormat(QImage.Format.Format_RGBA8888)
    return np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.width(), 4).copy()


def test_a_gradient_shows_the_diverging_map_and_its_signed_range(viewer, gradient):
    viewer.set_explanation(gradient)
    view = viewer.views[0]
    assert view.overlay.getLevels() == pytest.approx((-2.0, 2.0))  # symmetric about zero
    np.testing.assert_array_equal(view.overlay.lut[:, :3], COOL_WARM)
    assert view.overlay.lut[127, 3] == view.overlay.lut[128, 3] == 0  # zero is transparent
    bar = viewer.colour_bar.colorMap().getLookupTable(nPts=256, alpha=False)
    np.testing.assert_array_equal(bar, COOL_WARM)
    assert (viewer.bar_high.text, viewer.bar_low.text) == ("+2", "-2")
    assert viewer.colour_bar.axis._tickLevels == [[(0.5, "0")], []]  # zero ticked in the middle
    marks = [mark.value() / 256 for mark in viewer.bar_marks if mark.isVisible()]
    assert marks == pytest.approx([0.4, 0.6])  # ±20 % of the largest |value|
    assert viewer.projection.isVisible()  # a signed map is shown alone too


def test_what_the_viewer_draws_is_what_the_exports_draw(viewer, gradient):
    viewer.set_explanation(gradient)
    drawn = rendered(viewer.views[0].overlay)
    expected = viewer.scale.rgba(gradient.maps[viewer.current_slice])
    np.testing.assert_array_equal(drawn[..., 3], expected[..., 3])
    shown = drawn[..., 3] > 0
    np.testing.assert_array_equal(drawn[shown][:, :3], expected[shown][:, :3])
    left, right = drawn[100, 0], drawn[100, -1]  # -2 and +1 (+1 is 3/4 of the way up)
    np.testing.assert_array_equal(left[:3], COOL_WARM[0])
    assert right[0] > right[2] + 60 and not shown[100, 160:180].any()  # -0.1 … 0.2: below 0.4


def test_positive_and_absolute_modes_in_the_viewer(viewer, gradient):
    viewer.set_explanation(gradient)
    viewer.set_style(OverlayStyle("inferno", sign="positive", scale=STUDY_MAX))
    view = viewer.views[0]
    assert view.overlay.getLevels() == pytest.approx((0.0, 1.0))
    assert np.isnan(view.overlay.image[:, gradient.maps.shape[2] * 2 // 3 - 1]).all()  # v < 0
    assert (rendered(view.overlay)[:, :150, 3] == 0).all()
    np.testing.assert_array_equal(view.overlay.lut[:, :3], colormaps.lookup_table("inferno"))
    assert (viewer.bar_high.text, viewer.bar_low.text) == ("1", "0")
    viewer.set_style(OverlayStyle("inferno", sign="absolute", scale=STUDY_MAX))
    assert view.overlay.getLevels() == pytest.approx((0.0, 2.0))
    np.testing.assert_array_equal(view.overlay.image, np.abs(gradient.maps[viewer.current_slice]))
    assert view.overlay.image.dtype == np.float32  # pyqtgraph's fast path
    assert (viewer.bar_high.text, viewer.bar_low.text) == ("2", "0")


def test_a_cam_map_keeps_its_sequential_display_whatever_the_sign_mode(viewer, gradient):
    cam = replace(gradient, method="grad_cam", layer="conv2", maps=gradient.maps + 2, signed=False)
    viewer.set_style(OverlayStyle("jet", sign="absolute", scale=STUDY_MAX))
    viewer.set_explanation(cam)
    view = viewer.views[0]
    assert view.overlay.getLevels() == pytest.approx((0.0, 3.0))
    np.testing.assert_array_equal(view.overlay.lut[:, :3], colormaps.lookup_table("jet"))
    np.testing.assert_array_equal(view.overlay.image, cam.maps[viewer.current_slice])
    assert (viewer.bar_high.text, viewer.bar_low.text) == ("3", "0")
    assert viewer.colour_bar.axis._tickLevels is None
    assert [mark.isVisible() for mark in viewer.bar_marks] == [True, False]
    assert not viewer.projection.isVisible()


def test_the_screenshot_bar_is_the_diverging_map_with_its_signed_range(viewer, gradient):
    viewer.set_explanation(gradient)
    shot = viewer.snapshot(["Gradient"])
    image, bar = shot.image, shot.colour_bar
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.width(), 4)
    column = bar.center().x()
    top, bottom = pixels[bar.top() + 1, column, 2::-1], pixels[bar.bottom() - 1, column, 2::-1]
    # Red on top, blue at the bottom (BGRA → RGB; within a step of the ends).
    assert abs(top.astype(int) - COOL_WARM[-1]).max() <= 10
    assert abs(bottom.astype(int) - COOL_WARM[0]).max() <= 10


def test_the_panel_offers_sign_modes_only_for_signed_results(qtbot):
    panel = MethodPanel()
    qtbot.addWidget(panel)
    assert list(SIGN_LABELS) == ["signed", "positive", "absolute"]
    assert not panel.sign.isEnabled()  # nothing signed shown yet
    panel.set_signed(True)
    assert panel.sign.isEnabled()
    with qtbot.waitSignal(panel.style_changed) as emitted:
        panel.sign.setCurrentIndex(panel.sign.findData("absolute"))
    assert emitted.args[0].sign == "absolute" == panel.style.sign
    panel.set_style(OverlayStyle(sign="positive"))
    assert panel.sign.currentText() == "Positive only"
    panel.set_signed(False)
    assert not panel.sign.isEnabled()


def test_a_real_gradient_run_and_its_triptych(qtbot, window):
    window.viewer.set_slice(20)
    run_and_wait(qtbot, window, "gradient", target=1)
    explanation = window.explanation
    assert explanation.signed and window.viewer.scale.centred
    assert window.panel.sign.isEnabled()  # the panel offers positive-only and absolute value
    low, high = finite_range(explanation.maps[explanation.computed])
    assert low < 0 < high
    ends = scale_range(
        explanation.maps, explanation.computed, explanation.maps[20], window.viewer.style, True
    )
    peak = max(-ends[0], ends[1])  # the larger sign's 99.5th percentile of |value|
    assert 0 < peak < max(-low, high)
    assert window.viewer.views[0].overlay.getLevels() == pytest.approx((-peak, peak))
    np.testing.assert_array_equal(window.viewer.views[0].overlay.lut[:, :3], COOL_WARM)

    window.settings.setValue("figure/long_side", 0)  # native size: one pixel per voxel
    figure = np.asarray(window.triptych_figure()).astype(int)
    z = window.viewer.cursor[0]
    maps = as_shown(explanation.maps[z], orientation.flips(window.volume.direction, 1, 2))
    height, width = maps.shape
    left = MARGIN + 2 * (width + 2 * SPACE + MARGIN) + SPACE  # the third panel, text scale 1
    overlaid = figure[MARGIN + SPACE : MARGIN + SPACE + height, left : left + width]
    threshold = window.viewer.style.threshold * peak
    negative, positive = maps <= -2 * threshold, maps >= 2 * threshold
    weak = np.abs(maps) < threshold
    assert negative.sum() > 20 and positive.sum() > 20 and weak.sum() > 20
    assert (overlaid[negative][:, 2] > overlaid[negative][:, 0]).all()  # blue below zero
    assert (overlaid[positive][:, 0] > overlaid[positive][:, 2]).all()  # red above
    weak_pixels = overlaid[weak]
    assert (weak_pixels == weak_pixels[:, :1]).all()  # grey: the image alone


def test_the_sign_mode_persists_and_a_stray_value_falls_back(qtbot, settings):
    window = make_window(qtbot, settings)
    window.panel.set_style(OverlayStyle("inferno", 0.7, 0.35, sign="absolute"))
    window.close()
    again = make_window(qtbot, settings)
    assert again.panel.style.sign == again.viewer.style.sign == "absolute"
    again.close()
    settings.setValue("overlay/sign", "sideways")
    third = make_window(qtbot, settings)
    assert third.viewer.style.sign == "signed"
    third.close()


def test_map_scale_is_the_viewers_rule(viewer, gradient):
    viewer.set_explanation(gradient)
    style = OverlayStyle(threshold=0.3)
    viewer.set_style(style)
    current = gradient.maps[viewer.current_slice]
    assert viewer.scale == map_scale(
        scale_range(gradient.maps, gradient.computed, current, style, True), True, style
    )
