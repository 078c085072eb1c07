"""The plots beside the images (score track, deletion curves, sanity cascade) made one way."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QSize

PREFERRED_SHARE = 1.5  # of the minimum height


class PlainPlot(pg.PlotWidget):
    """A plot with named axes in plain numbers (pyqtgraph would draw scores below 1 as
    "(x0.001)" with ticks from 0 to 800), no context menu, and a preferred height of half as
    much again as its minimum: it takes the room a dock gives it, but asks for little more.
    pyqtgraph's preferred height (about 480 px) made the Quality panel taller than its dock,
    the curves out of sight below it."""

    def __init__(self, bottom: str, left: str, min_height: int) -> None:
        super().__init__()
        self.setMinimumHeight(min_height)
        self.setMenuEnabled(False)
        for side, label in (("bottom", bottom), ("left", left)):
            self.setLabel(side, label)
            self.getAxis(side).enableAutoSIPrefix(False)

    def sizeHint(self) -> QSize:
        return QSize(super().sizeHint().width(), round(PREFERRED_SHARE * self.minimumHeight()))
