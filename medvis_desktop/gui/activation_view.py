"""All feature maps of one layer for the slice on screen, as one mosaic image.

One ImageItem holds every tile (hundreds of filters stay one draw call); each tile is scaled
to its own maximum once, when the result arrives. Dead filters are crossed out in red.
Clicking a tile shows that filter large and offers to deconvolve it.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from medvis_desktop.gui.slice_viewer import GREY_LUT

GAP = 1
DEAD_PEN = pg.mkPen((255, 40, 40), width=2)
CHOSEN_PEN = pg.mkPen((255, 220, 0), width=2)


def tile_grid(count: int) -> tuple[int, int]:
    """(rows, columns) of a near-square mosaic of `count` tiles."""
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def mosaic_image(maps: np.ndarray) -> np.ndarray:
    """(y, x, C) maps → one float32 image of tiles in 0–1, NaN in the gaps (drawn transparent)."""
    height, width, count = maps.shape
    rows, columns = tile_grid(count)
    image = np.full((rows * (height + GAP), columns * (width + GAP)), np.nan, dtype=np.float32)
    positive = np.maximum(maps, 0)
    peaks = positive.reshape(-1, count).max(axis=0)
    scaled = positive / np.where(peaks > 0, peaks, 1)
    for index in range(count):
        top, left = (index // columns) * (height + GAP), (index % columns) * (width + GAP)
        image[top : top + height, left : left + width] = scaled[..., index]
    return image


class ActivationView(QWidget):
    """The mosaic on the left, the chosen filter large on the right."""

    deconvolve_requested = Signal(int)  # filter index

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mosaic = None  # an explain.slice_inputs.Mosaic
        self.chosen: int | None = None
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("k")
        self.grid_box = self.graphics.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.large_box = self.graphics.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.tiles = pg.ImageItem(axisOrder="row-major", levels=(0, 1), lut=GREY_LUT)
        self.large = pg.ImageItem(axisOrder="row-major", lut=GREY_LUT)
        self.marks = pg.PlotCurveItem(pen=DEAD_PEN, connect="pairs")
        self.frame = pg.PlotCurveItem(pen=CHOSEN_PEN, connect="pairs")
        for item in (self.tiles, self.marks, self.frame):
            self.grid_box.addItem(item)
        self.large_box.addItem(self.large)
        self.grid_box.scene().sigMouseClicked.connect(self._clicked)
        self.caption = QLabel("Run Activation maps (or pick a layer) to see its feature maps.")
        self.caption.setWordWrap(True)  # a long caption must not widen the window past the screen
        self.deconvolve = QPushButton("Deconvolve this filter")
        self.deconvolve.setEnabled(False)
        self.deconvolve.clicked.connect(self._deconvolve)
        bottom = QHBoxLayout()
        bottom.addWidget(self.caption, 1)
        bottom.addWidget(self.deconvolve)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics, 1)
        layout.addLayout(bottom)

    def set_mosaic(self, mosaic: object) -> None:
        """Show a Mosaic (explain.slice_inputs: layer, slice, maps (y, x, C), dead (C,))."""
        self.mosaic = mosaic
        self.tiles.setImage(mosaic_image(mosaic.maps), autoLevels=False, levels=(0, 1))
        self.marks.setData(*self._crosses(np.flatnonzero(mosaic.dead)))
        self.grid_box.autoRange(padding=0.01)
        count = mosaic.maps.shape[-1]
        self.caption.setText(
            f"{mosaic.layer}: {count} feature maps of slice {mosaic.slice + 1} ({mosaic.shown}), "
            f"{int(mosaic.dead.sum())} dead (crossed; never active on {mosaic.sampled} model inputs "
            "through the study)"
        )
        self.choose(self.chosen if self.chosen is not None and self.chosen < count else None)

    def choose(self, index: int | None) -> None:
        """Show filter `index` large (None: none)."""
        self.chosen = index
        self.deconvolve.setEnabled(index is not None)
        if index is None:
            self.large.clear()
            self.frame.setData([], [])
            return
        self.large.setImage(self.mosaic.maps[..., index], autoLevels=True)
        self.large_box.autoRange(padding=0.01)
        self.frame.setData(*self._outline(index))
        self.deconvolve.setText(f"Deconvolve filter {index}")

    def tile_at(self, point: QPointF) -> int | None:
        """The filter whose tile holds `point` (mosaic pixel coordinates), None in a gap."""
        height, width, count = self.mosaic.maps.shape
        _, columns = tile_grid(count)
        row, column = int(point.y() // (height + GAP)), int(point.x() // (width + GAP))
        index = row * columns + column
        inside = point.x() >= 0 and point.y() >= 0 and column < columns
        return index if inside and index < count else None

    def _clicked(self, event) -> None:
        if self.mosaic is None or event.button() != Qt.MouseButton.LeftButton:
            return
        index = self.tile_at(self.tiles.mapFromScene(event.scenePos()))
        if index is not None:
            self.choose(index)

    def _deconvolve(self) -> None:
        if self.chosen is not None:
            self.deconvolve_requested.emit(self.chosen)

    def _corners(self, index: int) -> tuple[float, float, float, float]:
        height, width, count = self.mosaic.maps.shape
        _, columns = tile_grid(count)
        top, left = (index // columns) * (height + GAP), (index % columns) * (width + GAP)
        return left, top, left + width, top + height

    def _crosses(self, indices: np.ndarray) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for index in indices:
            left, top, right, bottom = self._corners(int(index))
            xs += [left, right, left, right]
            ys += [top, bottom, bottom, top]
        return xs, ys

    def _outline(self, index: int) -> tuple[list[float], list[float]]:
        left, top, right, bottom = self._corners(index)
        xs = [left, right, right, right, right, left, left, left]
        ys = [top, top, top, bottom, bottom, bottom, bottom, top]
        return xs, ys
