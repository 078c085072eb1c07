"""Compare methods: two to four methods on the slice on screen, side by side in one row, each
over the slice with its own colour bar, its deletion and insertion AUCs and the time it took.

The row is one widget, so the exported picture is exactly what is on screen. Each map gets
the window's overlay style and its own scale (export.images.map_scale, the viewer's rule):
methods differ by orders of magnitude. The window measures (quality_menu.py); this view
collects the choice and shows what it is handed, method by method as they come in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QCoreApplication, QRectF, Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QCheckBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from medvis_desktop.export import OverlayStyle
from medvis_desktop.export.images import finite_range, map_scale

if TYPE_CHECKING:  # loads TensorFlow: the window loads it later, on purpose
    from medvis_desktop.evaluate import SliceMeasures

MIN_METHODS, MAX_METHODS = 2, 4
CHOICE_COLUMNS = 4
TILE_SIZE = 220  # pixels of a map's side on screen
BAR_LABEL_SIZE = "8pt"
BAR_COLUMN_WIDTH = 64  # pixels: '+1.73e-05' in BAR_LABEL_SIZE
BAR_LABEL_HEIGHT = 18


class CompareView(QWidget):
    compare_requested = Signal(list)  # the chosen method names, in the order offered
    export_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.choices: dict[str, QCheckBox] = {}
        self._choice_grid = QGridLayout()
        self.compare_button = QPushButton("Compare")
        self.compare_button.setEnabled(False)
        self.export_button = QPushButton("Export picture…")
        self.export_button.setEnabled(False)
        self.hint = QLabel(f"Choose {MIN_METHODS} to {MAX_METHODS} methods for the slice on screen.")
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.row = QWidget()  # header and tiles: what the picture shows
        self.row.setStyleSheet("background: black; color: rgb(235, 235, 235)")
        self._tiles_layout = QHBoxLayout()
        row_layout = QVBoxLayout(self.row)
        row_layout.addWidget(self.header)
        row_layout.addLayout(self._tiles_layout)
        self.tiles: list[MethodTile] = []
        buttons = QHBoxLayout()
        buttons.addWidget(self.hint, 1)
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addLayout(self._choice_grid)
        layout.addLayout(buttons)
        layout.addWidget(self.row, 1)
        self.row.hide()
        self.compare_button.clicked.connect(lambda: self.compare_requested.emit(self.chosen()))
        self.export_button.clicked.connect(self.export_requested)

    def set_methods(self, labels: dict[str, str]) -> None:
        """The methods on offer (name: label): those that give evidence for a class."""
        for box in self.choices.values():
            box.deleteLater()
        self.choices = {name: QCheckBox(label) for name, label in labels.items()}
        for index, box in enumerate(self.choices.values()):
            box.toggled.connect(self._choice_changed)
            self._choice_grid.addWidget(box, index // CHOICE_COLUMNS, index % CHOICE_COLUMNS)

    def choose(self, names: list[str]) -> None:
        for name, box in self.choices.items():
            box.setChecked(name in names)

    def chosen(self) -> list[str]:
        return [name for name, box in self.choices.items() if box.isChecked()]

    def clear(self) -> None:
        for tile in self.tiles:
            tile.deleteLater()
        self.tiles = []
        self.header.clear()
        self.row.hide()
        self.export_button.setEnabled(False)

    def start(self, caption: str, labels: list[str]) -> None:
        """An empty tile per method, filled as each one is measured."""
        self.clear()
        self.header.setText(caption)
        self.tiles = [MethodTile(label) for label in labels]
        for tile in self.tiles:
            self._tiles_layout.addWidget(tile)
        self.row.show()

    def show_method(
        self,
        index: int,
        grey: np.ndarray,
        spacing_yx: tuple[float, float],
        study_map: np.ndarray,
        signed: bool,
        style: OverlayStyle,
        measures: SliceMeasures,
    ) -> None:
        self.tiles[index].show_map(grey, spacing_yx, study_map, signed, style, measures)
        self.export_button.setEnabled(all(tile.measures is not None for tile in self.tiles))

    def picture(self) -> QImage:
        """The row as it is on screen: the header, and each method with its bar and numbers
        (laid out first: the last method may have come in a moment ago)."""
        QCoreApplication.sendPostedEvents()
        return self.row.grab().toImage()

    def _choice_changed(self) -> None:
        count = len(self.chosen())
        self.compare_button.setEnabled(MIN_METHODS <= count <= MAX_METHODS)
        self.hint.setText(
            f"{count} chosen: choose {MIN_METHODS} to {MAX_METHODS} methods for the slice on screen."
            if not MIN_METHODS <= count <= MAX_METHODS
            else f"{count} methods, on the slice on screen."
        )


class MethodTile(QWidget):
    """One method: its map over the slice, its colour bar, its AUCs and its time."""

    def __init__(self, label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = label
        self.measures: SliceMeasures | None = None
        self.title = QLabel(f"<b>{label}</b>")
        self.title.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("k")
        self.canvas.setMinimumSize(TILE_SIZE + 80, TILE_SIZE)
        self.view = self.canvas.addViewBox(row=0, col=0, lockAspect=True, invertY=True, enableMouse=False)
        # The bar's ends are written above and below it, as the viewer's: raw ticks of maps
        # around 1e-5 would not fit beside it.
        self.bar_column = self.canvas.addLayout(row=0, col=1)
        # The map takes the width; the bar's column only what its widest end label needs.
        self.canvas.ci.layout.setColumnStretchFactor(0, 1)
        self.canvas.ci.layout.setColumnMaximumWidth(1, BAR_COLUMN_WIDTH)
        self.bar_high = self.bar_column.addLabel(row=0, col=0, size=BAR_LABEL_SIZE)
        self.bar_low = self.bar_column.addLabel(row=2, col=0, size=BAR_LABEL_SIZE)
        for label in (self.bar_high, self.bar_low):
            label.setMaximumHeight(BAR_LABEL_HEIGHT)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.view.addItem(self.overlay)
        self.bar: pg.ColorBarItem | None = None
        self.numbers = QLabel("computing…")
        self.numbers.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.numbers)

    def show_map(
        self,
        grey: np.ndarray,
        spacing_yx: tuple[float, float],
        study_map: np.ndarray,
        signed: bool,
        style: OverlayStyle,
        measures: SliceMeasures,
    ) -> None:
        """The slice in the window's grey levels with the map over it on its own scale; pixels
        square in mm."""
        self.measures = measures
        scale = map_scale(finite_range(study_map), signed, style)
        height, width = grey.shape
        rect = QRectF(0, 0, width * spacing_yx[1], height * spacing_yx[0])
        self.image.setImage(grey, autoLevels=False, levels=(0, 255))
        self.overlay.setLookupTable(scale.lut)
        self.overlay.setImage(scale.shown(study_map), autoLevels=False, levels=(scale.low, scale.high))
        for item in (self.image, self.overlay):
            item.setRect(rect)
        self.view.autoRange(padding=0)
        if self.bar is not None:
            self.bar_column.removeItem(self.bar)
        colours = pg.ColorMap(np.linspace(0, 1, len(scale.table)), scale.table)
        self.bar = pg.ColorBarItem(
            values=(0, 1), width=12, colorMap=colours, interactive=False, colorMapMenu=False
        )
        self.bar.axis.setTicks([[(0.5, "0")] if scale.centred else [], []])
        self.bar_column.addItem(self.bar, row=1, col=0)
        high, low = scale.labels[0][1], scale.labels[-1][1]
        self.bar_high.setText(f"+{high}" if scale.centred else high)
        self.bar_low.setText(low)
        self.numbers.setText(
            f"Deletion AUC {measures.deletion_auc:.3f} · Insertion AUC {measures.insertion_auc:.3f}\n"
            f"MuFidelity {measures.mu_fidelity:.3f} · {measures.seconds:.3g} s"
        )
