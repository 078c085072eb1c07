"""The plots beside the images (score track, deletion curves, sanity cascade) made one way."""

from __future__ import annotations

import pyqtgraph as pg


def plain_plot(bottom: str, left: str, min_height: int) -> pg.PlotWidget:
    """A plot with named axes in plain numbers: pyqtgraph would draw scores below 1 as
    "(x0.001)" with ticks from 0 to 800. No context menu: its export and ranges are ours."""
    plot = pg.PlotWidget()
    plot.setMinimumHeight(min_height)
    plot.setMenuEnabled(False)
    for side, label in (("bottom", bottom), ("left", left)):
        plot.setLabel(side, label)
        plot.getAxis(side).enableAutoSIPrefix(False)
    return plot
