"""The slice viewer: each slice's own map while scrolling, physical aspect, window, overlay key."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QMenu

from medvis_desktop import imaging
from medvis_desktop.explain.runner import Explanation
from medvis_desktop.export import OverlayStyle
from medvis_desktop.gui.slice_viewer import OUTLINE_COLOUR, PAGE_STEP, THREE, SliceViewer
from medvis_desktop.imaging import Window
from medvis_desktop.imaging.windowing import to_display
from tests.gui.conftest import painted_outline, when_modal


@pytest.fixture
def viewer(qtbot, ct_volume):
    viewer = SliceViewer()
    qtbot.addWidget(viewer)
    viewer.resize(800, 600)
    viewer.show()
    viewer.set_volume(ct_volume)
    return viewer


@pytest.fixture
def explanation(ct_volume, tiny_card) -> Explanation:
    """A different map on every slice (slice k is k plus a ramp), the last slice not computed."""
    z, y, x = ct_volume.shape
    maps = (np.arange(z, dtype=np.float32)[:, None, None] + np.linspace(0, 1, x, dtype=np.float32)).repeat(
        y, 1
    )
    computed = np.ones(z, dtype=bool)
    computed[-1] = False
    maps[-1] = np.nan
    return Explanation("grad_cam", "conv2", 1, None, maps, np.zeros((z, 2)), computed, tiny_card)


def shown_overlay(viewer: SliceViewer) -> np.ndarray:
    return viewer.views[0].overlay.image


def shown_grey(item) -> np.ndarray:
    """The grey levels pyqtgraph draws for an image item (its data through levels and LUT)."""
    item.render()
    image = item.qimage.convertToFormat(QImage.Format.Format_RGBA8888)
    rgba = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.width(), 4)
    return rgba[..., 0].astype(int)


def assert_shows(item, values: np.ndarray, window: Window) -> None:
    """The item draws `values` through `window` as windowing.to_display does, to a grey level
    (pyqtgraph rounds down, to_display to the nearest)."""
    expected = to_display(values, window).astype(int)
    assert shown_grey(item).shape == expected.shape
    assert np.abs(shown_grey(item) - expected).max() <= 1


def test_scrolling_shows_each_slices_own_map(qtbot, viewer, explanation):
    viewer.set_explanation(explanation)
    viewer.set_slice(5)
    np.testing.assert_array_equal(shown_overlay(viewer), explanation.maps[5])
    qtbot.keyClick(viewer, Qt.Key.Key_Up)
    np.testing.assert_array_equal(shown_overlay(viewer), explanation.maps[6])
    qtbot.keyClick(viewer, Qt.Key.Key_PageUp)
    assert viewer.current_slice == 6 + PAGE_STEP
    np.testing.assert_array_equal(shown_overlay(viewer), explanation.maps[6 + PAGE_STEP])
    viewer.views[0].box.scrolled.emit(-1)  # what a wheel notch does
    np.testing.assert_array_equal(shown_overlay(viewer), explanation.maps[5 + PAGE_STEP])
    qtbot.keyClick(viewer, Qt.Key.Key_End)
    np.testing.assert_array_equal(shown_overlay(viewer), explanation.maps[-1])
    qtbot.keyClick(viewer, Qt.Key.Key_Home)
    np.testing.assert_array_equal(shown_overlay(viewer), explanation.maps[0])
    viewer.slider.setValue(2)
    np.testing.assert_array_equal(shown_overlay(viewer), explanation.maps[2])
    assert_shows(viewer.views[0].image, viewer.volume.voxels[2], viewer.window)


def test_fast_path_data_types_and_levels(viewer, explanation, ct_volume):
    viewer.set_explanation(explanation)
    view = viewer.views[0]
    assert view.image.image.dtype == np.uint16  # HU offset
    assert view.overlay.image.dtype == np.float32
    (offset,) = np.unique(ct_volume.voxels[viewer.current_slice].astype(np.int64) - view.image.image)
    np.testing.assert_allclose(view.image.getLevels(), (40 - 40 - offset, 40 + 40 - offset))  # Brain 40/80
    finite = explanation.maps[explanation.computed]
    robust = np.percentile(finite[finite > finite.min()], 99.5)  # the default colour scale
    np.testing.assert_allclose(view.overlay.getLevels(), (finite.min(), robust), rtol=1e-6)


def test_views_keep_the_physical_aspect(viewer, ct_volume):
    viewer.set_layout_mode(THREE)
    sz, sy, sx = ct_volume.spacing
    nz, ny, nx = ct_volume.shape
    sizes = []
    for view in viewer.views:
        rect = view.image.mapRectToParent(view.image.boundingRect())
        sizes.append((round(rect.width(), 3), round(rect.height(), 3)))
    assert sizes[0] == (round(nx * sx, 3), round(ny * sy, 3))  # axial: x by y
    assert sizes[1] == (round(nx * sx, 3), round(nz * sz, 3))  # coronal: x by z
    assert sizes[2] == (round(ny * sy, 3), round(nz * sz, 3))  # sagittal: y by z


def test_crosshairs_are_linked_in_three_views(viewer):
    viewer.set_layout_mode(THREE)
    axial = viewer.views[0]
    target = axial.image.mapToScene(QPointF(30.5, 100.5))  # column 30, row 100
    axial.box.clicked.emit(target)
    assert viewer.cursor[1:] == [100, 30]
    assert viewer.views[1].image.image.shape == (40, 256)  # coronal through row 100
    assert_shows(viewer.views[1].image, viewer.volume.voxels[:, 100, :], viewer.window)
    assert_shows(viewer.views[2].image, viewer.volume.voxels[:, :, 30], viewer.window)


def test_window_presets_and_right_drag(viewer, ct_volume):
    from PySide6.QtWidgets import QMenu

    menu = QMenu()
    viewer.fill_presets_menu(menu)
    names = [action.text().split("  ")[0] for action in menu.actions()]
    assert names == [window.name for window in imaging.presets(ct_volume)]
    menu.actions()[names.index("Bone")].trigger()
    assert_shows(viewer.views[0].image, ct_volume.voxels[viewer.current_slice], Window("", 400, 1800))
    viewer.set_window(Window("test", 0, 100))
    viewer.views[0].box.window_dragged.emit(100.0, 0.0)  # drag right: wider
    assert viewer.window.width > 100 and viewer.window.center == 0


def test_o_toggles_the_overlay(qtbot, viewer, explanation):
    viewer.set_explanation(explanation)
    assert viewer.views[0].overlay.isVisible()
    qtbot.keyClick(viewer, Qt.Key.Key_O)
    assert not viewer.views[0].overlay.isVisible()
    qtbot.keyClick(viewer, Qt.Key.Key_O)
    assert viewer.views[0].overlay.isVisible()


def test_overlay_lut_hides_values_below_the_threshold(viewer, explanation):
    viewer.set_explanation(explanation)
    viewer.set_style(OverlayStyle("jet", opacity=0.4, threshold=0.25))
    lut = viewer.views[0].overlay.lut
    assert lut.shape == (256, 4)
    assert (lut[:64, 3] == 0).all() and (lut[64:, 3] == 102).all()


def test_hover_reports_the_voxel_under_the_mouse(qtbot, viewer):
    seen = []
    viewer.hovered.connect(seen.append)
    view = viewer.views[0]
    scene = view.image.mapToScene(QPointF(12.5, 200.5))
    view.scene().sigMouseMoved.emit(scene)
    assert seen[-1] == (viewer.current_slice, 200, 12)
    view.scene().sigMouseMoved.emit(QPointF(-5000, -5000))
    assert seen[-1] is None


def test_right_click_menu_sets_a_window_preset(qtbot, viewer, ct_volume):
    def choose_bone(menu: QMenu) -> None:
        presets = next(action.menu() for action in menu.actions() if action.text() == "Window")
        bone = next(action for action in presets.actions() if action.text().startswith("Bone"))
        menu.close()
        bone.trigger()

    when_modal(QMenu, choose_bone)
    view = viewer.views[0]
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.RightButton, pos=view.viewport().rect().center())
    assert viewer.window.name == "Bone"
    assert_shows(view.image, ct_volume.voxels[viewer.current_slice], Window("", 400, 1800))


def test_colour_bar_of_tiny_maps_is_relative_with_the_raw_ends_written_once(viewer, explanation):
    tiny = replace(explanation, maps=explanation.maps * 2.5e-6)  # 0 to 1e-4, like raw gradients
    viewer.set_style(OverlayStyle(scale="max"))
    viewer.set_explanation(tiny)
    assert viewer.colour_bar.levels() == (0, 1)
    assert viewer.bar_high.text == "9.8e-05"
    assert viewer.bar_low.text == "0"
    assert viewer.bar_title.labelText == "study, maximum"


def test_snapshot_of_all_views_puts_the_three_sections_side_by_side(viewer, explanation, ct_volume):
    viewer.set_explanation(explanation)
    legend = ["Grad-CAM: layer conv2", "head, slice 20/40"]
    shot = viewer.snapshot(legend, all_views=True)

    nz, ny, nx = ct_volume.shape
    sz, sy, sx = ct_volume.spacing
    sections_mm = [(nx * sx, ny * sy), (nx * sx, nz * sz), (ny * sy, nz * sz)]  # axial, coronal, sagittal
    zoom = 1500 / sum(width for width, _ in sections_mm)  # the row of three is the long side
    assert [(view.width(), view.height()) for view in shot.views] == [
        (round(width * zoom), round(height * zoom)) for width, height in sections_mm
    ]
    assert all(a.right() < b.left() for a, b in itertools.pairwise(shot.views))  # side by side
    assert shot.views[-1].right() < shot.colour_bar.left()
    image = shot.image
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.width(), 4)
    for view in shot.views:
        section = pixels[view.top() : view.bottom() + 1, view.left() : view.right() + 1, :3].astype(int)
        colourful = np.abs(np.diff(section, axis=2)).sum(axis=2) > 20
        assert section.std() > 20 and colourful.mean() > 0.05  # anatomy and heat map in each


def ball(shape: tuple[int, int, int], centre: tuple[int, int, int], radius: float) -> np.ndarray:
    z, y, x = np.indices(shape)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def contour(mask: np.ndarray) -> np.ndarray:
    """The mask's border by SimpleITK (pixels with a background face neighbour), not by our code."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    return sitk.GetArrayFromImage(sitk.BinaryContour(image, fullyConnected=False)) > 0


def test_a_reference_mask_is_outlined_on_every_section_and_in_the_snapshot(viewer, ct_volume):
    viewer.set_layout_mode(THREE)
    viewer.set_slice(20)
    z, y, x = viewer.cursor
    mask = ball(ct_volume.shape, (z, y + 3, x - 2), 6)  # cut by all three sections
    viewer.set_reference(mask, "the truth")
    for view, section in zip(viewer.views, (mask[z], mask[:, y], mask[:, :, x]), strict=True):
        painted = painted_outline(view)
        drawn = painted[..., 3] > 0  # opaque where outlined
        assert view.outline.isVisible() and section.any()
        np.testing.assert_array_equal(drawn, contour(section))
        assert (painted[drawn] == OUTLINE_COLOUR).all()

    shot = viewer.snapshot(["legend"]).image
    pixels = np.frombuffer(shot.constBits(), np.uint8).reshape(shot.height(), shot.width(), 4)
    magenta = (pixels[..., 2] > 200) & (pixels[..., 1] < 60) & (pixels[..., 0] > 200)  # BGRA
    assert magenta.sum() >= contour(mask[z]).sum() // 2

    viewer.set_slice(2)  # no lesion here: nothing outlined
    assert not viewer.views[0].outline.isVisible()
    viewer.set_volume(ct_volume)  # a new study forgets the reference
    assert viewer.reference is None and not any(view.outline.isVisible() for view in viewer.views)
    with pytest.raises(ValueError, match="reference mask"):
        viewer.set_reference(mask[:-1])
    viewer.set_reference(mask.astype(np.uint8))  # 0/1 numbers outline the same as booleans
    viewer.set_slice(20)
    np.testing.assert_array_equal(painted_outline(viewer.views[0])[..., 3] > 0, contour(mask[20]))


def test_this_slice_scale_follows_the_scroll_and_the_bar_says_so(viewer, explanation):
    viewer.set_explanation(explanation)
    study = viewer.views[0].overlay.getLevels()
    viewer.set_style(OverlayStyle(scale="slice"))
    assert viewer.bar_title.labelText == "this slice"
    for z in (5, 12):
        viewer.set_slice(z)  # slice z holds z … z + 1
        np.testing.assert_allclose(viewer.views[0].overlay.getLevels(), (z, z + 1), rtol=1e-6)
    viewer.set_style(OverlayStyle())  # back to the whole study, whatever the slice
    np.testing.assert_allclose(viewer.views[0].overlay.getLevels(), study)
    assert viewer.bar_title.labelText == "study, 99.5th pct"
    assert viewer.bar_high.text == f"{study[1]:.3g}"


def test_a_fixed_scale_spans_the_typed_range(viewer, explanation):
    viewer.set_explanation(explanation)
    viewer.set_style(OverlayStyle(scale="fixed", fixed_low=2.0, fixed_high=12.0, threshold=0.5))
    np.testing.assert_array_equal(viewer.views[0].overlay.getLevels(), (2.0, 12.0))
    assert (viewer.bar_high.text, viewer.bar_low.text, viewer.bar_title.labelText) == (
        "12",
        "2",
        "fixed range",
    )
    viewer.set_slice(5)  # 5 … 6: under the threshold, 2 + 0.5 · 10
    assert (viewer.scale.rgba(explanation.maps[5])[..., 3] == 0).all()


def test_the_panel_offers_the_scale_policies_and_the_range_only_when_fixed(qtbot):
    from medvis_desktop.gui.method_panel import SCALE_LABELS, MethodPanel

    panel = MethodPanel()
    qtbot.addWidget(panel)
    assert panel.style.scale == "robust" and list(SCALE_LABELS) == ["robust", "max", "slice", "fixed"]
    assert not panel.fixed_low.isEnabled() and not panel.fixed_high.isEnabled()
    with qtbot.waitSignal(panel.style_changed) as emitted:
        panel.colour_scale.setCurrentIndex(panel.colour_scale.findData("fixed"))
    assert emitted.args[0].scale == "fixed" and panel.fixed_low.isEnabled() and panel.fixed_high.isEnabled()
    panel.fixed_high.lineEdit().clear()
    qtbot.keyClicks(panel.fixed_high.lineEdit(), "2.5e-4")  # raw gradients are this small
    with qtbot.waitSignal(panel.style_changed) as emitted:
        qtbot.keyClick(panel.fixed_high.lineEdit(), Qt.Key.Key_Return)
    assert (emitted.args[0].fixed_low, emitted.args[0].fixed_high) == (0.0, 2.5e-4)
    assert panel.fixed_high.text() == "0.00025"
    panel.set_style(OverlayStyle(scale="slice"))
    assert panel.colour_scale.currentText() == "This slice" and not panel.fixed_low.isEnabled()


def test_the_scale_policy_persists_and_a_stray_value_falls_back(qtbot, settings):
    from tests.gui.conftest import make_window

    chosen = OverlayStyle("inferno", 0.6, 0.3, scale="fixed", fixed_low=-1.5, fixed_high=4.25)
    window = make_window(qtbot, settings)
    window.panel.set_style(chosen)
    window.close()
    again = make_window(qtbot, settings)
    assert again.panel.style == again.viewer.style == chosen
    again.close()
    settings.setValue("overlay/scale", "loudest")
    third = make_window(qtbot, settings)
    assert third.viewer.style.scale == "robust"
    third.close()
