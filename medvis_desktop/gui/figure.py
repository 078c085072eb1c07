"""Figures of the slice viewer's sections: the screenshot of one view or of all three, and the
clipboard copy.

Drawn from the views' own pyqtgraph image items (the screen's levels, lookup tables, overlay
and outline), at a size for a report or a slide with square pixels in mm. Around each image:
its orientation letters and a scale bar; beside the images the colour scale, under them the
score along the study and the legend. Nothing is drawn over an image, so every pixel inside
it is the section itself. Sizes and marks follow export.images, the PIL triptych's rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen, QPolygonF, QTransform

from medvis_desktop.export.images import (
    BAR_LABELS,
    BAR_WIDTH,
    LETTER,
    LETTER_SIZE,
    LINE,
    LONG_SIDE,
    MARGIN,
    SPACE,
    TEXT,
    TEXT_SIZE,
    MapScale,
    short_number,
    text_scale,
    view_marks,
    zoom_for,
)
from medvis_desktop.gui.score_track import CURRENT_PEN, CURVE_PEN, THRESHOLD_PEN, score_range
from medvis_desktop.imaging.orientation import Edges

FONT_FAMILY = "DejaVu Sans"
BAR_SPACE = BAR_WIDTH + BAR_LABELS + 14  # the colour bar, its numbers and its policy written upwards
STRIP_HEIGHT = 110  # the score along the study, axis words included
FRAME = QColor(120, 120, 120)


@dataclass(frozen=True)
class FigureOptions:
    """How large a figure is drawn: the long side in pixels of its images together (0: native,
    one pixel per finest voxel spacing; never fewer pixels than that), and nearest (each voxel
    a crisp block, for reading values) or smooth interpolation."""

    long_side: int = LONG_SIDE
    smooth: bool = False


DEFAULT_OPTIONS = FigureOptions()


@dataclass(frozen=True)
class ScoreStrip:
    """The score along the study, drawn under the images as the score track shows it."""

    scores: np.ndarray  # (z,) one per slice, NaN where not computed
    threshold: float
    current: int  # the slice on screen
    what: str  # the class scored


@dataclass(frozen=True)
class Panel:
    """One view to draw: its image items bottom first (each item's transform takes its array
    to mm), the section's size in mm, and its edges' letters (None: no patient geometry)."""

    items: tuple[pg.ImageItem, ...]
    size_mm: tuple[float, float]
    edges: Edges | None


@dataclass(frozen=True)
class Figure:
    """The picture and where its parts lie in it (for tests, and for whoever crops it)."""

    image: QImage
    views: tuple[QRect, ...]  # each view's image
    colour_bar: QRect | None
    strip: QRect | None  # the score along the study
    pixel_mm: float  # the output pixel's size in the views' units (mm, or px without spacing)


@dataclass(frozen=True)
class Placement:
    """Where a figure's images go, whatever is drawn beside and under them."""

    zoom: float  # output pixels per mm
    text: float  # the text scale (export.images.text_scale)
    views: tuple[QRect, ...]


def place(sizes_mm: list[tuple[float, float]], finest_mm: float, options: FigureOptions) -> Placement:
    """Images of these sizes (width, height in mm) side by side at the options' size
    (export.images.zoom_for over `finest_mm`, the finest spacing shown), each in its bands for
    letters and scale bar, from the figure's top left corner."""
    zoom = zoom_for(sizes_mm, finest_mm, options.long_side)
    sizes = [(round(width * zoom), round(height * zoom)) for width, height in sizes_mm]
    text = text_scale(max(sum(width for width, _ in sizes), max(height for _, height in sizes)))
    margin, space = round(MARGIN * text), round(SPACE * text)
    views, left = [], margin + space
    for width, height in sizes:
        views.append(QRect(left, margin + space, width, height))
        left += width + 2 * space + margin
    return Placement(zoom, text, tuple(views))


def render(
    panels: list[Panel],
    legend: list[str],
    *,
    finest_mm: float,
    unit: str,
    colours: MapScale | None,
    scores: ScoreStrip | None,
    options: FigureOptions,
) -> Figure:
    """The panels as `place` puts them, each with its letters and a scale bar in `unit`; the
    colour bar when `colours` is given; `scores` under them; the legend last, widening the
    figure if a line is wider. The PNG records the pixel size (pHYs) unless the unit is px."""
    placed = place([panel.size_mm for panel in panels], finest_mm, options)
    views, text = placed.views, placed.text
    margin, space = round(MARGIN * text), round(SPACE * text)
    font = QFont(FONT_FAMILY)
    font.setPixelSize(round(TEXT_SIZE * text))
    metrics = QFontMetrics(font)
    left = views[-1].left() + views[-1].width() + space + margin
    images_height = max(view.height() for view in views)
    bar = QRect(left, margin + space, round(BAR_WIDTH * text), images_height) if colours else None
    right = left + round(BAR_SPACE * text) if colours else left - margin
    top = margin + images_height + 3 * space
    strip = None
    if scores is not None and np.isfinite(scores.scores).any():
        strip = QRect(margin, top, right - margin, round(STRIP_HEIGHT * text))
        top += strip.height() + margin
    line = round(LINE * text)
    widest = max((metrics.horizontalAdvance(row) for row in legend), default=0)
    image = QImage(
        max(right, margin + widest) + margin, top + line * len(legend) + margin, QImage.Format.Format_RGB32
    )
    image.fill(QColor(0, 0, 0))
    if unit != "px":
        image.setDotsPerMeterX(round(1000 * placed.zoom))
        image.setDotsPerMeterY(round(1000 * placed.zoom))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, options.smooth)
    for panel, view in zip(panels, views, strict=True):
        _paint_section(painter, panel, view)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setFont(font)
    for panel, view in zip(panels, views, strict=True):
        _paint_marks(painter, panel.edges, view, 1 / placed.zoom, unit, text)
    if bar is not None:
        _paint_colour_bar(painter, bar, colours, text)
    if strip is not None:
        _paint_scores(painter, strip, scores, text)
    painter.setPen(QColor(*TEXT))
    for row, words in enumerate(legend):
        painter.drawText(
            QRect(margin, top + row * line, image.width(), line), Qt.AlignmentFlag.AlignVCenter, words
        )
    painter.end()
    return Figure(image, views, bar, strip, 1 / placed.zoom)


def _paint_section(painter: QPainter, panel: Panel, view: QRect) -> None:
    """The panel's items stretched over `view`: its mm at the figure's scale, filled exactly."""
    width_mm, height_mm = panel.size_mm
    placement = QTransform.fromScale(view.width() / width_mm, view.height() / height_mm)
    placement *= QTransform.fromTranslate(view.left(), view.top())
    for item in panel.items:
        item.render()  # makes item.qimage from the data, levels and lookup table
        painter.setTransform(item.transform() * placement)
        painter.drawImage(QPointF(0, 0), item.qimage)
    painter.resetTransform()


def _text_at(painter: QPainter, centre: tuple[float, float], words: str, flags: Qt.AlignmentFlag) -> None:
    """`words` placed on a point by `flags`: centred on it, or starting at it with AlignLeft
    (drawText aligns in a box; this one is wide enough never to clip)."""
    reach = 4 * max(painter.fontMetrics().horizontalAdvance(words), painter.fontMetrics().height())
    x, y = centre
    box = QRectF(x - reach, y - reach, 2 * reach, 2 * reach)
    if flags & Qt.AlignmentFlag.AlignLeft:
        box.moveLeft(x)
    painter.drawText(box, flags, words)


def _paint_marks(
    painter: QPainter, edges: Edges | None, view: QRect, units_per_pixel: float, unit: str, text: float
) -> None:
    """The view's orientation letters and scale bar, placed by export.images.view_marks."""
    marks = view_marks((view.left(), view.top(), view.width(), view.height()), units_per_pixel, SPACE * text)
    if edges is not None:
        painter.save()
        letter_font = QFont(FONT_FAMILY)
        letter_font.setPixelSize(round(LETTER_SIZE * text))
        letter_font.setBold(True)
        painter.setFont(letter_font)
        painter.setPen(QColor(*LETTER))
        for edge, centre in marks.letters.items():
            _text_at(painter, centre, getattr(edges, edge), Qt.AlignmentFlag.AlignCenter)
        painter.restore()
    start, end, y = marks.bar
    painter.setPen(QPen(QColor(*TEXT), max(2.0, 2 * text)))
    painter.drawLine(QPointF(start, y), QPointF(end, y))
    flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
    _text_at(painter, marks.label, f"{marks.length:g} {unit}", flags)


def _paint_colour_bar(painter: QPainter, rect: QRect, scale: MapScale, text: float) -> None:
    """The scale's colours, threshold marks and labels, as the exported triptych draws them."""
    table = scale.table
    width = rect.width()
    ramp = np.ascontiguousarray(table[::-1][:, np.newaxis, :].repeat(width, axis=1))
    bar = QImage(ramp.data, width, len(table), 3 * width, QImage.Format.Format_RGB888)
    painter.drawImage(QRectF(rect), bar)
    painter.setPen(QPen(QColor(*TEXT), max(1.0, text)))
    bottom, height = rect.top() + rect.height(), rect.height()
    for fraction in scale.marks:
        y = bottom - fraction * height
        painter.drawLine(QPointF(rect.left() - 3 * text, y), QPointF(rect.right() + 1 + 3 * text, y))
    flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
    for fraction, label in scale.labels:
        _text_at(painter, (rect.right() + 1 + 4 * text, bottom - fraction * height), label, flags)
    painter.save()
    painter.translate(rect.left() + (BAR_SPACE - 6) * text, rect.center().y())
    painter.rotate(-90)
    _text_at(painter, (0, 0), scale.policy, Qt.AlignmentFlag.AlignCenter)
    painter.restore()


def _paint_scores(painter: QPainter, rect: QRect, strip: ScoreStrip, text: float) -> None:
    """The score per slice as a line (a dot for a lone slice, gaps where not computed), the
    threshold dashed, the slice on screen marked, in the score track's colours; the axes named
    in words above and below the plot, never beyond the strip, and their ends numbered."""
    metrics = painter.fontMetrics()
    values = np.asarray(strip.scores, dtype=np.float64)
    low, high = score_range(values, strip.threshold)
    ends = (short_number(high), short_number(low))
    gap, line = round(4 * text), metrics.height()
    numbers = max(metrics.horizontalAdvance(number) for number in ends) + gap
    half_last = metrics.horizontalAdvance(str(len(values))) / 2  # the last slice's number, centred
    plot = QRectF(rect).adjusted(numbers, line + gap, -half_last, -2 * line - gap)
    last = max(len(values) - 1, 1)

    def point(k: float, value: float) -> QPointF:
        return QPointF(
            plot.left() + k / last * plot.width(),
            plot.bottom() - (value - low) / (high - low) * plot.height(),
        )

    painter.setPen(QPen(FRAME, max(1.0, text)))
    painter.drawRect(plot)
    painter.setPen(_pen(THRESHOLD_PEN, text))
    painter.drawLine(point(0, strip.threshold), point(last, strip.threshold))
    painter.setPen(_pen(CURRENT_PEN, text))
    painter.drawLine(point(strip.current, low), point(strip.current, high))
    curve = _pen(CURVE_PEN, text)
    painter.setPen(curve)
    painter.setBrush(curve.color())
    for run in np.split(np.arange(len(values)), np.flatnonzero(~np.isfinite(values))):
        run = run[np.isfinite(values[run])]
        if len(run) == 1:
            painter.drawEllipse(point(run[0], values[run[0]]), curve.widthF(), curve.widthF())
        elif len(run) > 1:
            painter.drawPolyline(QPolygonF([point(k, values[k]) for k in run]))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.setPen(QColor(*TEXT))
    title = metrics.elidedText(
        f"score of {strip.what}" if strip.what else "score", Qt.TextElideMode.ElideRight, rect.width()
    )
    painter.drawText(QRectF(rect.left(), rect.top(), rect.width(), line), Qt.AlignmentFlag.AlignLeft, title)
    flags = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
    for number, value in zip(ends, (high, low), strict=True):
        box = QRectF(rect.left(), point(0, value).y() - line, numbers - gap, 2 * line)
        painter.drawText(box, flags, number)
    below = plot.bottom() + gap + line / 2
    _text_at(painter, (plot.left(), below), "1", Qt.AlignmentFlag.AlignCenter)
    _text_at(painter, (plot.right(), below), str(len(values)), Qt.AlignmentFlag.AlignCenter)
    _text_at(painter, (plot.center().x(), below + line), "slice", Qt.AlignmentFlag.AlignCenter)


def _pen(pen: QPen, text: float) -> QPen:
    """The score track's pen, its width grown with the figure."""
    grown = QPen(pen)
    grown.setWidthF(max(1.0, pen.widthF()) * text)
    return grown
