"""Painting one section fast: the picture pyqtgraph's ImageItem paints, drawn the way Qt's
raster engine is quickest at.

Scrolling a 512² CT with its overlay spent most of each frame (#14) in pyqtgraph's buffered
per-chunk rescale of a uint16 or float32 section to 8-bit colour indices, and in Qt drawing
its picture: converted to 32 bits on every draw, transparent pixels blended all the same, in
a format whose scaled drawing takes Qt's generic path. Here a single-channel section with two
levels and a table of at most 256 colours has its indices found by one vectorised rescale,
pyqtgraph's own arithmetic (the same indices); the indexed picture is converted once to what
Qt draws without conversion, RGB32 when every colour is opaque and premultiplied ARGB32
otherwise. Only its part that shows is converted and drawn, found from the indices of the
table's entries that are not transparent (an overlay's threshold hides most of a section).
Anything else (NaNs, RGBA pictures) takes pyqtgraph's own path, then the same conversion.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRect, QRectF
from PySide6.QtGui import QImage, QPainter, qRgba

MAX_COLOURS = 256  # an 8-bit index


def box_where(array: np.ndarray, hit: Callable[[np.ndarray, int], np.ndarray]) -> tuple[slice, slice] | None:
    """The rows and columns of the smallest box of a 2D array holding every pixel of interest,
    None when none is; `hit(block, axis)` says which rows (axis 1) or columns (axis 0) of a
    block of rows hold one."""
    rows = np.flatnonzero(hit(array, 1))
    if rows.size == 0:
        return None
    columns = np.flatnonzero(hit(array[rows[0] : rows[-1] + 1], 0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(columns[0]), int(columns[-1]) + 1)


def bounding_box(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The box of a 2D array's non-zero entries; None when it has none."""
    return box_where(mask, lambda block, axis: block.any(axis=axis))


def rect_of(box: tuple[slice, slice] | None) -> QRect:
    if box is None:
        return QRect()
    rows, columns = box
    return QRect(columns.start, rows.start, columns.stop - columns.start, rows.stop - rows.start)


def visible_rect(image: QImage) -> QRect:
    """The smallest rectangle holding every pixel of a premultiplied ARGB32 image that is not
    fully transparent (premultiplied, such a pixel is all zeros); empty when there is none."""
    words = np.frombuffer(image.constBits(), np.uint32).reshape(image.height(), image.width())
    return rect_of(bounding_box(words))


def shown_rect(indices: np.ndarray, lut: np.ndarray) -> QRect:
    """The smallest rectangle holding every pixel whose colour index names a table entry that
    is not fully transparent. The shown entries are taken as runs of indices; a run reaching
    the table's top or bottom (a sequential map's run from its threshold up, a centred map's
    two ends) is found in a row or column by its largest or smallest index, without a mask."""
    if lut.shape[1] == 3 or lut[:, 3].all():
        return QRect(0, 0, indices.shape[1], indices.shape[0])
    edges = np.flatnonzero(np.diff(np.concatenate([[0], lut[:, 3] > 0, [0]]).astype(np.int8)))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))  # ints: no int64 pass

    def hit(block: np.ndarray, axis: int) -> np.ndarray:
        """Whether each row (axis 1) or column (axis 0) of `block` holds a shown index."""
        found = np.zeros(block.shape[1 - axis], bool)
        for start, stop in runs:
            if stop == len(lut):
                found |= block.max(axis=axis) >= start
            elif start == 0:
                found |= block.min(axis=axis) < stop
            else:
                found |= ((block >= start) & (block < stop)).any(axis=axis)
        return found

    return rect_of(box_where(indices, hit))


def rgba_rows(lut: np.ndarray) -> np.ndarray:
    """A lookup table's rows as RGBA, opaque where it gives RGB only."""
    if lut.shape[1] == 4:
        return lut
    return np.column_stack([lut, np.full(len(lut), 255, np.uint8)])


def colour_indices(values: np.ndarray, levels: tuple[float, float], colours: int) -> np.ndarray:
    """pyqtgraph's rescale of values to colour indices (functions.rescaleData): levels[0] to
    index 0, levels[1] to `colours`, clipped to the table, in float32, truncated."""
    low, high = (float(level) for level in levels)
    work = values.astype(np.float32)
    work -= low
    work *= colours / (high - low or 1)
    np.clip(work, 0, colours - 1, out=work)
    return work.astype(np.uint8)


class SectionImage(pg.ImageItem):
    """A pyqtgraph image item whose picture is made and painted by the fast path above; its
    `qimage` is what figures draw."""

    def __init__(self) -> None:
        super().__init__(axisOrder="row-major")
        self._screen: QImage | None = None
        self._drawn = QRect()  # where `_screen` goes, in the image's pixels
        self._indices: np.ndarray | None = None  # the pixels behind a fast `qimage`
        self._colour_table_of: np.ndarray | None = None  # the lookup table `_colour_table` was made from
        self._colour_table: list[int] = []

    def render(self) -> None:
        fast = self._takes_fast_path()
        if fast:
            self._render_fast()
        else:
            super().render()
            self._indices = None
        self._screen = None
        if self._unrenderable:
            return
        if fast:  # only the shown part is converted
            self._drawn = shown_rect(self._indices, self.lut)
            picture = self.qimage if self._drawn == self.qimage.rect() else self.qimage.copy(self._drawn)
        else:
            self._drawn, picture = self.qimage.rect(), self.qimage
        if self._drawn.isEmpty():
            return
        form = picture.format()
        if form not in (QImage.Format.Format_RGB32, QImage.Format.Format_ARGB32_Premultiplied):
            alpha = picture.hasAlphaChannel()
            form = QImage.Format.Format_ARGB32_Premultiplied if alpha else QImage.Format.Format_RGB32
        self._screen = picture.convertToFormat(form)
        if not fast and form == QImage.Format.Format_ARGB32_Premultiplied:
            self._drawn = visible_rect(self._screen)
            if self._drawn != self._screen.rect():
                self._screen = self._screen.copy(self._drawn)

    def paint(self, painter: QPainter, *args) -> None:
        if self.image is None:
            return
        if self._renderRequired:
            self.render()
        if self._screen is not None and not self._drawn.isEmpty():
            painter.drawImage(QRectF(self._drawn), self._screen)

    def _takes_fast_path(self) -> bool:
        """One channel of uint16 or float32 without NaNs, two levels and a table of at most
        256 colours, drawn at full resolution."""
        image, lut = self.image, self.lut
        if image is None or image.size == 0 or image.ndim != 2 or self.autoDownsample:
            return False
        if image.dtype not in (np.uint16, np.float32) or self.levels is None or np.ndim(self.levels) != 1:
            return False
        table_fits = (
            isinstance(lut, np.ndarray)
            and lut.dtype == np.uint8
            and lut.ndim == 2
            and lut.shape[1] in (3, 4)
            and len(lut) <= MAX_COLOURS
        )
        if not table_fits:
            return False
        if self._imageHasNans is None:  # as pyqtgraph's render finds them
            self._imageHasNans = image.dtype.kind == "f" and bool(np.isnan(image.min()))
        return not self._imageHasNans

    def _render_fast(self) -> None:
        """The 8-bit indexed picture pyqtgraph makes (try_make_qimage), its indices found in
        one vectorised rescale instead of its buffered one."""
        image = self.image
        if self._colour_table_of is not self.lut:  # as pyqtgraph, a new table is a new object
            self._colour_table = [qRgba(*(int(value) for value in row)) for row in rgba_rows(self.lut)]
            self._colour_table_of = self.lut
        self._indices = colour_indices(image, self.levels, len(self.lut))
        height, width = image.shape
        self.qimage = QImage(self._indices.data, width, height, width, QImage.Format.Format_Indexed8)
        self.qimage.setColorTable(self._colour_table)
        self._renderRequired = False
        self._unrenderable = False
