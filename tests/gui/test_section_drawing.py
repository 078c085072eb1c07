"""The slice viewer's fast drawing: what it paints is what pyqtgraph's own image item paints."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QRect
from PySide6.QtGui import QImage, QPainter, QTransform

from medvis_desktop.export import OverlayStyle
from medvis_desktop.export.images import map_scale
from medvis_desktop.gui.section_image import SectionImage, shown_rect, visible_rect
from medvis_desktop.gui.slice_viewer import GREY_LUT, OUTLINE_COLOUR, OUTLINE_LUT, mask_border

# Sections are stretched on screen. At a zoom that is not whole, Qt's scaled drawing of the
# formats it draws fastest (RGB32, premultiplied ARGB32) rounds where one source pixel ends a
# little differently from its drawing of pyqtgraph's indexed pictures: both are nearest-pixel.
SCREEN_ZOOM = 2


def painted(item: pg.ImageItem, shape: tuple[int, int]) -> np.ndarray:
    """RGB of `item` painted over mid grey, zoomed as on screen: (H, W, 4) uint8 BGRX."""
    height, width = (round(n * SCREEN_ZOOM) for n in shape)
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(0x808080)
    painter = QPainter(image)
    painter.setTransform(QTransform.fromScale(SCREEN_ZOOM, SCREEN_ZOOM))
    item.paint(painter)
    painter.end()
    return np.frombuffer(image.constBits(), np.uint8).reshape(height, width, 4).copy()


def both(data: np.ndarray, **options) -> tuple[np.ndarray, np.ndarray]:
    """What pyqtgraph's ImageItem and SectionImage paint of the same data, levels and table."""
    drawings = []
    for item in (pg.ImageItem(axisOrder="row-major"), SectionImage()):
        item.setImage(data, autoLevels=False, **options)
        drawings.append(painted(item, data.shape[:2]))
    return drawings[0], drawings[1]


def test_the_grey_image_is_painted_as_pyqtgraph_paints_it(qapp):
    pixels = np.random.default_rng(0).integers(0, 3000, (90, 70)).astype(np.uint16)
    reference, fast = both(pixels, levels=(900, 1300), lut=GREY_LUT)
    np.testing.assert_array_equal(fast, reference)


@pytest.mark.parametrize("signed", [False, True], ids=["sequential", "centred"])
def test_the_overlay_is_painted_as_pyqtgraph_paints_it_thresholds_and_nan_included(qapp, signed):
    """Only the part of the overlay that shows is converted and drawn: on a centred map the
    shown colours are both ends of the table, on a sequential one its top."""
    yy, xx = np.mgrid[0:90, 0:70]
    heat = np.exp(-((yy - 60) ** 2 + (xx - 20) ** 2) / 200.0).astype(np.float32)
    if signed:
        heat -= np.exp(-((yy - 15) ** 2 + (xx - 50) ** 2) / 100.0).astype(np.float32)
    heat[70:75, 10:30] = np.nan  # not computed: transparent
    style = OverlayStyle("jet", opacity=0.4, threshold=0.25)
    scale = map_scale((-1.0 if signed else 0.0, 1.0), signed, style)
    reference, fast = both(heat, levels=(scale.low, scale.high), lut=scale.lut)
    np.testing.assert_array_equal(fast, reference)
    background = (fast == reference[0, 0]).all(axis=-1)[::SCREEN_ZOOM, ::SCREEN_ZOOM]
    assert background[35:40].all() and not background[55:65, 15:25].all()  # far from / on the blob
    assert background[10:20, 45:55].all() != signed  # the negative blob shows on a centred map


def test_a_new_window_and_a_new_table_are_painted_as_pyqtgraph_paints_them(qapp):
    """The fast path keeps its colour table between frames: a change of either is seen."""
    pixels = np.random.default_rng(2).integers(0, 3000, (40, 50)).astype(np.uint16)
    reference, fast = pg.ImageItem(axisOrder="row-major"), SectionImage()
    for item in (reference, fast):
        item.setImage(pixels, autoLevels=False, levels=(900, 1300), lut=GREY_LUT)
        painted(item, pixels.shape)
    jet = map_scale((0.0, 1.0), False, OverlayStyle("jet", threshold=0.0)).lut
    for change in (lambda item: item.setLevels((0, 2500)), lambda item: item.setLookupTable(jet)):
        drawings = []
        for item in (reference, fast):
            change(item)
            drawings.append(painted(item, pixels.shape))
        np.testing.assert_array_equal(drawings[1], drawings[0])
    assert len(np.unique(drawings[1].reshape(-1, 4), axis=0)) > 100  # coloured, not grey


def test_an_outline_is_painted_as_pyqtgraph_paints_it(qapp):
    yy, xx = np.mgrid[0:90, 0:70]
    border, _, _ = mask_border((yy - 40) ** 2 + (xx - 30) ** 2 < 15**2)
    reference, fast = both(border, levels=(0, 1), lut=OUTLINE_LUT)
    np.testing.assert_array_equal(fast, reference)
    assert (fast[..., :3] == OUTLINE_COLOUR[2::-1]).all(axis=-1).any()  # magenta, BGR


def test_an_overlay_transparent_everywhere_paints_nothing(qapp):
    item = SectionImage()
    item.setImage(
        np.zeros((20, 30), np.float32),
        autoLevels=False,
        levels=(0, 1),
        lut=map_scale((0.0, 1.0), False, OverlayStyle()).lut,
    )
    assert (painted(item, (20, 30))[..., :3] == 0x80).all()


@pytest.mark.parametrize(("rows", "columns"), [((3, 9), (5, 6)), ((0, 20), (0, 30)), ((19, 20), (0, 1))])
@pytest.mark.parametrize(
    ("shown", "inside", "outside"),
    [([0, 1, 6, 7], (1, 7), 3), ([3, 4], (3, 4), 6), ([5, 6, 7], (5, 7), 2)],
    ids=["both ends", "middle", "top"],
)
def test_shown_rect_is_the_box_of_the_indices_naming_colours_not_transparent(
    rows, columns, shown, inside, outside
):
    lut = np.zeros((8, 4), np.uint8)
    lut[shown, 3] = 255
    indices = np.full((20, 30), outside, np.uint8)
    indices[rows[0], columns[0]], indices[rows[1] - 1, columns[1] - 1] = inside
    box = shown_rect(indices, lut)
    assert (box.top(), box.bottom() + 1, box.left(), box.right() + 1) == (*rows, *columns)
    assert shown_rect(np.full((20, 30), outside, np.uint8), lut).isEmpty()
    assert shown_rect(indices, lut[:, :3]) == QRect(0, 0, 30, 20)  # no alpha: all of it
    lut[:, 3] = 255
    assert shown_rect(indices, lut) == QRect(0, 0, 30, 20)  # opaque: all of it


@pytest.mark.parametrize(("rows", "columns"), [((3, 9), (5, 6)), ((0, 20), (0, 30)), ((19, 20), (0, 1))])
def test_visible_rect_is_the_box_of_the_pixels_not_transparent(rows, columns):
    image = QImage(30, 20, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0)
    pixels = np.frombuffer(image.bits(), np.uint32).reshape(20, 30)
    pixels[rows[0], columns[0]] = pixels[rows[1] - 1, columns[1] - 1] = 0x01000000  # black, alpha 1
    box = visible_rect(image)
    assert (box.top(), box.bottom() + 1, box.left(), box.right() + 1) == (*rows, *columns)
    image.fill(0)
    assert visible_rect(image).isEmpty()


def test_the_outline_is_the_border_of_the_mask_whatever_its_shape():
    """Worked out on the mask's bounding box only; the same as over the whole section."""
    rng = np.random.default_rng(1)
    for _ in range(50):
        mask = np.zeros((24, 31), bool)
        top, left = rng.integers(0, 20), rng.integers(0, 27)
        mask[top : top + rng.integers(1, 12), left : left + rng.integers(1, 12)] = True
        mask &= rng.random(mask.shape) > 0.2
        padded = np.pad(mask, 1)
        inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        border, top, left = mask_border(mask)
        drawn = np.zeros(mask.shape, bool)
        drawn[top : top + border.shape[0], left : left + border.shape[1]] = border == 1
        np.testing.assert_array_equal(drawn, mask & ~inner)
    assert mask_border(np.zeros((5, 5), bool)) is None
