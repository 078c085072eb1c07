"""The Quality dock: how faithful, how well placed and how sane the result on screen is, for the
slice on screen.

Measure draws the deletion and insertion curves (their AUCs in the legend) and gives MuFidelity
and, with a reference mask open, the pointing game and the energy inside; Sanity check shows
the randomisation cascade's maps layer by layer and their rank correlation with the original;
Compare puts two to four methods side by side (compare_view.py). The panel only shows what it
is handed and asks for work through its signals: the window turns them into worker jobs
(quality_menu.py). No TensorFlow here: the window's modules load before it does.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from medvis_desktop.export import OverlayStyle
from medvis_desktop.export.images import finite_range, map_scale
from medvis_desktop.gui.compare_view import CompareView
from medvis_desktop.gui.plots import PlainPlot

if TYPE_CHECKING:  # both load TensorFlow: the window loads it later, on purpose
    from medvis_desktop.gui.worker import Measurement
    from medvis_desktop.metrics import Cascade

DELETION_PEN = pg.mkPen((230, 90, 60), width=2)
INSERTION_PEN = pg.mkPen((70, 150, 240), width=2)
SSIM_PEN = pg.mkPen((150, 150, 150), width=1, style=Qt.PenStyle.DashLine)
THRESHOLD_PEN = pg.mkPen((230, 80, 80), width=1, style=Qt.PenStyle.DotLine)
WARNING_STYLE = "color: #e0a030; font-weight: bold"
ERROR_STYLE = "color: #d04040"
TILE = 96  # pixels per side of a cascade map
TILE_COLUMNS = 5
# Each cascade map on its own scale (they change by orders of magnitude), fully opaque.
TILE_STYLE = OverlayStyle(opacity=1.0, threshold=0.0)
LEGEND_TEXT = (235, 235, 235)
NOTHING_MEASURED = "Run a method, then Measure: its result on the slice on screen."
NO_CASCADE = "Sanity check: randomises a copy of the model layer by layer (the model is untouched)."
BASELINES = {"0 (model-input units)": 0.0, "blur": "blur"}
DEFAULT_STEPS, DEFAULT_SAMPLES = 10, 128


class QualityPanel(QWidget):
    measure_requested = Signal()
    sanity_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._started = 0.0
        self._failed = False
        self.caption = QLabel(NOTHING_MEASURED)
        self.caption.setWordWrap(True)
        self.steps = QSpinBox()
        self.steps.setRange(1, 100)
        self.steps.setValue(DEFAULT_STEPS)
        self.steps.setToolTip("Points of the deletion and insertion curves after the first")
        self.samples = QSpinBox()
        self.samples.setRange(1, 4096)
        self.samples.setValue(DEFAULT_SAMPLES)
        self.samples.setToolTip("Random subsets of grid cells for MuFidelity")
        self.baseline = QComboBox()
        for label, value in BASELINES.items():
            self.baseline.addItem(label, value)
        self.baseline.setToolTip(
            "What removed voxels become: a value of the model's input, or the image blurred"
        )
        self.measure_button = QPushButton("Measure")
        self.measure_button.setToolTip("Deletion, insertion, MuFidelity (and pointing game, energy inside)")
        self.sanity_button = QPushButton("Sanity check")
        self.sanity_button.setToolTip("Randomise the model layer by layer and watch the map change")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.plot = PlainPlot("fraction of the voxels moved, highest-ranked first", "model output", 160)
        self.legend = legend_above(self.plot)
        self.values = {
            name: QLabel("—") for name in ("mu_fidelity", "pointing_game", "energy_inside", "seconds")
        }
        for label in self.values.values():
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        numbers = QFormLayout()
        numbers.addRow("MuFidelity", self.values["mu_fidelity"])
        numbers.addRow("Pointing game", self.values["pointing_game"])
        numbers.addRow("Energy inside", self.values["energy_inside"])
        numbers.addRow("Method on this slice", self.values["seconds"])
        faithfulness = QWidget()
        curves_and_numbers = QHBoxLayout()
        curves_and_numbers.addWidget(self.plot, 1)
        curves_and_numbers.addLayout(numbers)
        faithfulness_layout = QVBoxLayout(faithfulness)
        faithfulness_layout.addWidget(self.caption)
        faithfulness_layout.addLayout(curves_and_numbers, 1)

        self.sanity = SanityView()
        self.compare = CompareView()
        self.tabs = QTabWidget()
        self.tabs.addTab(faithfulness, "Faithfulness")
        self.tabs.addTab(self.sanity, "Sanity check")
        self.tabs.addTab(self.compare, "Compare methods")

        settings = QHBoxLayout()
        for label, widget in (("Steps", self.steps), ("Samples", self.samples), ("Baseline", self.baseline)):
            settings.addWidget(QLabel(label))
            settings.addWidget(widget)
        settings.addStretch(1)
        for button in (self.measure_button, self.sanity_button, self.cancel_button):
            settings.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(settings)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(self.tabs, 1)

        self.measure_button.clicked.connect(self.measure_requested)
        self.sanity_button.clicked.connect(self.sanity_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)

    def settings(self) -> dict[str, object]:
        """The metrics' settings, as the jobs and the provenance record take them."""
        return {
            "steps": self.steps.value(),
            "samples": self.samples.value(),
            "baseline": self.baseline.currentData(),
        }

    # --- run state -------------------------------------------------------------------------

    def set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        if running:
            self._started = time.monotonic()
            self._failed = False
            self.message.clear()
            self.message.setStyleSheet("")
            self.progress.setRange(0, 0)  # busy until the first report
            self.progress.setFormat("starting…")

    def show_progress(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self._started
        left = elapsed / done * (total - done) if done else 0.0
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat("%v / %m" + (f", {left:.0f} s left" if done < total else ", done"))

    def show_error(self, message: str) -> None:
        self._failed = True
        self.message.setStyleSheet(ERROR_STYLE)
        self.message.setText(message)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("failed")

    def finish(self) -> None:
        """The job ended: done, failed (said already) or stopped by the user."""
        self.cancel_button.setEnabled(False)
        if self._failed:
            return
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        if self.progress.value() < self.progress.maximum():
            self.progress.setFormat("%v / %m, stopped")

    # --- results ---------------------------------------------------------------------------

    def clear(self) -> None:
        """Nothing measured yet (a new result or a new study)."""
        self.caption.setText(NOTHING_MEASURED)
        self.plot.clear()
        self.legend.clear()
        for label in self.values.values():
            label.setText("—")
        self.sanity.clear()
        self.compare.clear()

    def show_measurement(self, caption: str, measurement: Measurement, reference: bool) -> None:
        """The curves with their AUCs in the legend and the numbers; `reference`: a reference
        mask is open (else the localisation metrics say how to get one)."""
        measures = measurement.measures
        self.caption.setText(caption)
        self.plot.clear()
        self.legend.clear()
        for name, curve, pen, better in (
            ("Deletion", measures.deletion, DELETION_PEN, "lower"),
            ("Insertion", measures.insertion, INSERTION_PEN, "higher"),
        ):
            x = np.linspace(0.0, 1.0, curve.curve.shape[1])
            label = f"{name} · AUC {curve.auc[0]:.3f} ({better} is more faithful)"
            self.plot.plot(x, curve.curve[0], pen=pen, name=label)
        fit_legend_row(self.plot)
        self.values["mu_fidelity"].setText(_number(measures.mu_fidelity, "no ranking (a flat map)"))
        if not reference:
            hint = "open a reference mask (File › Open reference mask…)"
            self.values["pointing_game"].setText(hint)
            self.values["energy_inside"].setText("—")
        elif math.isnan(measurement.pointing_game):
            self.values["pointing_game"].setText("no reference on this slice")
            self.values["energy_inside"].setText("—")
        else:
            self.values["pointing_game"].setText("hit" if measurement.pointing_game == 1 else "miss")
            energy = measurement.energy_inside
            self.values["energy_inside"].setText(_number(100 * energy, "no positive evidence", "{:.1f} %"))
        self.values["seconds"].setText(f"{measures.seconds:.3g} s")
        self.tabs.setCurrentIndex(0)

    def legend_texts(self) -> list[str]:
        """The plot's legend, line by line (what a reader sees next to the curves)."""
        return [label.text for _, label in self.legend.items]

    def show_sanity(self, caption: str, label: str, cascade: Cascade) -> None:
        self.sanity.show_cascade(caption, label, cascade)
        self.tabs.setCurrentWidget(self.sanity)


class SanityView(QWidget):
    """The randomisation cascade of one slice: a map per step (the original, then one more layer
    re-initialised each, from the output down), the rank correlation with the original along
    the steps, and a plain warning when the maps barely changed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = QLabel(NO_CASCADE)
        self.caption.setWordWrap(True)
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        self.grid = QGridLayout()
        self.grid.setSpacing(4)
        tiles = QWidget()
        tiles.setLayout(self.grid)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(tiles)
        self.plot = PlainPlot(
            "layers re-initialised, from the output down (0: the trained model)", "similarity", 140
        )
        self.plot.setYRange(-1, 1)
        legend_above(self.plot)
        self.captions: list[str] = []  # under each map, in order: "original", then a layer each
        columns = QHBoxLayout()
        columns.addWidget(scroll, 1)
        columns.addWidget(self.plot, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.caption)
        layout.addWidget(self.verdict)
        layout.addLayout(columns, 1)

    def clear(self) -> None:
        self.captions = []
        while self.grid.count():
            self.grid.takeAt(0).widget().deleteLater()
        self.plot.clear()
        self.caption.setText(NO_CASCADE)
        self.verdict.setStyleSheet("")
        self.verdict.clear()

    def show_cascade(self, caption: str, label: str, cascade: Cascade) -> None:
        from medvis_desktop.metrics import INSENSITIVE_SPEARMAN

        self.clear()
        self.caption.setText(caption)
        rho = [1.0, *(row.spearman_mean for row in cascade.rows)]
        self.captions = ["original"] + [
            f"{row.layer}\nρ {_number(row.spearman_mean, 'n/a', '{:.2f}')}" for row in cascade.rows
        ]
        for index, (caption, maps) in enumerate(zip(self.captions, cascade.maps[:, 0], strict=True)):
            self.grid.addWidget(_tile(maps, caption), index // TILE_COLUMNS, index % TILE_COLUMNS)
        steps = np.arange(len(rho), dtype=float)
        self.plot.getAxis("bottom").setTicks([[(step, str(int(step))) for step in steps], []])
        self.plot.plot(steps, rho, pen=DELETION_PEN, symbol="o", symbolSize=6, name="Spearman ρ (mean)")
        ssim = [1.0, *(float(np.nanmean(row.ssim)) for row in cascade.rows)]
        self.plot.plot(steps, ssim, pen=SSIM_PEN, name="SSIM (mean)")
        fit_legend_row(self.plot)
        self.plot.addItem(pg.InfiniteLine(INSENSITIVE_SPEARMAN, angle=0, pen=THRESHOLD_PEN))
        if cascade.insensitive():
            self.verdict.setStyleSheet(WARNING_STYLE)
            self.verdict.setText(
                f"Warning: {label}'s maps barely change when the model's weights are replaced by random "
                f"ones (rank correlation with the original at least {INSENSITIVE_SPEARMAN} at every "
                "layer). They show the image more than what the model learnt: do not read them as "
                "the model's reasons."
            )
        else:
            changed = next(
                (row for row in cascade.rows if not row.spearman_mean >= INSENSITIVE_SPEARMAN), None
            )
            if changed is None:
                self.verdict.setText("The model has no layer with weights to randomise.")
                return
            rho_text = _number(changed.spearman_mean, "no ranking left: flat maps", "ρ {:.2f}")
            self.verdict.setText(
                f"{label} passes: its maps change once the layers from the output down to "
                f"{changed.layer} are randomised ({rho_text})."
            )

    def is_warning(self) -> bool:
        return self.verdict.styleSheet() == WARNING_STYLE


def _tile(maps: np.ndarray, caption: str) -> QWidget:
    """One cascade map, min-max coloured on its own scale, with its caption below."""
    rgba = np.ascontiguousarray(map_scale(finite_range(maps), False, TILE_STYLE).rgba(maps))
    height, width = rgba.shape[:2]
    image = QImage(rgba.data, width, height, 4 * width, QImage.Format.Format_RGBA8888).copy()
    picture = QLabel()
    picture.setPixmap(
        QPixmap.fromImage(image).scaled(
            TILE, TILE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
    )
    text = QLabel(caption)
    text.setAlignment(Qt.AlignmentFlag.AlignHCenter)
    tile = QWidget()
    column = QVBoxLayout(tile)
    column.setContentsMargins(0, 0, 0, 0)
    column.addWidget(picture, alignment=Qt.AlignmentFlag.AlignHCenter)
    column.addWidget(text)
    return tile


def _number(value: float, missing: str, form: str = "{:.3f}") -> str:
    return missing if math.isnan(value) else form.format(value)


def legend_above(plot: pg.PlotWidget) -> pg.LegendItem:
    """The plot's legend in one row above its curves, in the row of the title (which these plots
    do not have): a legend inside the plot hides the part of a curve under it."""
    item = plot.getPlotItem()
    legend = pg.LegendItem(labelTextColor=LEGEND_TEXT)
    legend.setColumnCount(2)
    item.legend = legend  # where plot(name=...) adds its entry
    item.layout.removeItem(item.titleLabel)
    item.titleLabel.hide()
    item.layout.addItem(legend, 0, 1)
    return legend


def fit_legend_row(plot: pg.PlotWidget) -> None:
    """The legend's row as tall as its entries (call once they are drawn)."""
    item = plot.getPlotItem()
    item.layout.setRowFixedHeight(0, item.legend.boundingRect().height())
