"""The model's score along the study: which slices it flags, and how strongly, at a glance.

A pyqtgraph plot of one class's score per slice (for 3D patch models the best patch covering
each slice), filled in as results arrive; a marker at the slice on screen, a threshold line
the reader can drag; a click jumps to that slice, N and P step through the flagged slices.
Slices are numbered from 1 on screen, as in the view's caption ("axial 59/108") and the
exported figure; signals and the cursor keep numpy's 0-based index. A study of one image (a
mammogram, a radiograph) has no track to draw: its score is said in the caption instead.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from medvis_desktop.arrays import next_flagged
from medvis_desktop.gui.plots import PlainPlot

DEFAULT_THRESHOLD = 0.5  # a probability: the model's own decision for a sigmoid or softmax head
CURVE_PEN = pg.mkPen((90, 170, 255), width=2)
CURRENT_PEN = pg.mkPen((255, 220, 0), width=1)
THRESHOLD_PEN = pg.mkPen((230, 80, 80), width=1, style=Qt.PenStyle.DashLine)
FLAGGED_BRUSH = pg.mkBrush(230, 80, 80)
MAX_NUMBERED = 12  # up to this many slices each is numbered on the axis, never a fraction


class ScoreTrack(QWidget):
    """The caption until the first scores arrive, then the plot, built then: it is hidden
    until there are scores, and building it would delay the window's first paint."""

    slice_chosen = Signal(int)
    threshold_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.track = np.empty(0, dtype=np.float32)
        self.what = ""
        self.current = 0
        self._threshold = DEFAULT_THRESHOLD  # set here or by dragging the line
        self.plot: pg.PlotWidget | None = None
        self.caption = QLabel("No scores yet: run a method")
        self.caption.setWordWrap(True)  # a long caption must not widen the window past the screen
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.caption, alignment=Qt.AlignmentFlag.AlignTop)  # plot or not

    def _build_plot(self) -> None:
        self.plot = PlainPlot("slice", "score", 90)
        self.plot.setMouseEnabled(x=False, y=False)
        self.curve = self.plot.plot(pen=CURVE_PEN, connect="finite")
        self.flagged = pg.ScatterPlotItem(size=5, brush=FLAGGED_BRUSH, pen=None)
        self.plot.addItem(self.flagged)
        self.marker = pg.InfiniteLine(self.current + 1, angle=90, pen=CURRENT_PEN)
        self.threshold_line = pg.InfiniteLine(self._threshold, angle=0, pen=THRESHOLD_PEN, movable=True)
        self.plot.addItem(self.marker)
        self.plot.addItem(self.threshold_line)
        self._layout.addWidget(self.plot)
        self.plot.scene().sigMouseClicked.connect(self._clicked)
        self.threshold_line.sigPositionChangeFinished.connect(self._threshold_moved)

    @property
    def threshold(self) -> float:
        return self._threshold

    def set_threshold(self, value: float) -> None:
        self._threshold = value
        if self.plot is not None:
            self.threshold_line.setValue(value)
        self._draw()
        self.caption.setText(self._caption())

    def set_track(self, track: np.ndarray | None, what: str = "") -> None:
        """Scores per slice (NaN: not computed yet); None clears the track."""
        self.track = np.empty(0, dtype=np.float32) if track is None else np.asarray(track, np.float32)
        self.what = what
        self.caption.setText(self._caption())
        drawn = len(self.track) > 1
        if self.plot is None and drawn:
            self._build_plot()
        if self.plot is not None:
            self.plot.setVisible(drawn)
        self._draw()

    def _caption(self) -> str:
        of = f"Score of {self.what}" if self.what else "Score"
        if not len(self.track):
            return "No scores yet"
        if len(self.track) > 1:
            return f"{of} per slice: click a slice, N / P for the next / previous above the line"
        [score] = self.track
        if np.isnan(score):
            return f"{of}: not computed yet"
        side = "above" if score >= self.threshold else "below"
        return f"{of}: {score:.3g}, {side} the threshold {self.threshold:.3g}"

    def set_current(self, z: int) -> None:
        self.current = z
        if self.plot is not None:
            self.marker.setValue(z + 1)

    def step(self, direction: int) -> int | None:
        """The next (+1) or previous (-1) flagged slice from the current one, chosen."""
        found = next_flagged(self.track, self.threshold, self.current, direction)
        if found is not None:
            self.slice_chosen.emit(found)
        return found

    def keyPressEvent(self, event: QKeyEvent) -> None:
        steps = {Qt.Key.Key_N: 1, Qt.Key.Key_P: -1}
        if event.key() in steps:
            self.step(steps[event.key()])
        else:
            super().keyPressEvent(event)

    def _draw(self) -> None:
        if self.plot is None:
            return
        slices = np.arange(1, len(self.track) + 1)
        self.curve.setData(slices, self.track)
        above = np.nan_to_num(self.track, nan=-np.inf) >= self.threshold
        self.flagged.setData(slices[above], self.track[above])
        numbers = [[(k, str(k)) for k in slices]] if len(slices) <= MAX_NUMBERED else None
        self.plot.getAxis("bottom").setTicks(numbers)
        if len(self.track):
            self.plot.setXRange(1, max(len(self.track), 2), padding=0.02)
        if np.isfinite(self.track).any():
            self.plot.setYRange(*score_range(self.track, self.threshold), padding=0.05)

    def _clicked(self, event) -> None:
        if not len(self.track) or event.button() != Qt.MouseButton.LeftButton:
            return
        x = self.plot.getPlotItem().vb.mapSceneToView(event.scenePos()).x()
        z = int(np.clip(round(x) - 1, 0, len(self.track) - 1))
        self.slice_chosen.emit(z)

    def _threshold_moved(self) -> None:
        self._threshold = float(self.threshold_line.value())
        self._draw()
        self.threshold_changed.emit(self.threshold)


def score_range(scores: np.ndarray, threshold: float) -> tuple[float, float]:
    """The score axis: 0 to 1 (a probability's range) widened to the scores and the threshold,
    so tracks of two studies compare at a glance (the exported figure's strip uses it too)."""
    finite = scores[np.isfinite(scores)]
    return min(0.0, threshold, float(finite.min())), max(1.0, threshold, float(finite.max()))
