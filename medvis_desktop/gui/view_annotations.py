"""What a reader needs around a section: the orientation letters at its four edges, a scale
bar, and the caption (plane, slice, position in mm, window).

Every item is a child of the view box itself, not of its contents, and is placed in the box's
own pixels whenever it resizes or its range changes: panning and zooming leave the letters at
the edges, and the scale bar keeps a round length in the current zoom. The texts are plain
(Label): the caption changes on every scroll, and laying out and painting rich text documents
took a tenth of a frame.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QGraphicsLineItem, QGraphicsSimpleTextItem

from medvis_desktop.export.images import BAR_FRACTION, LETTER, round_length
from medvis_desktop.imaging.orientation import Edges

MARGIN = 6  # pixels between the box's edges and the letters, the bar
GAP = 8  # pixels kept between the caption and the top letter
TEXT_COLOUR = (230, 230, 230)
LETTER_FONT = QFont("DejaVu Sans", 12, QFont.Weight.Bold)
BAR_PEN = pg.mkPen(TEXT_COLOUR, width=2)
ANCHORS = {"left": (0, 0.5), "right": (1, 0.5), "top": (0.5, 0), "bottom": (0.5, 1)}


class Label(QGraphicsSimpleTextItem):
    """Plain text put by a point of its box: `anchor` (0, 0) is its top left, (1, 1) its
    bottom right."""

    def __init__(self, colour: tuple[int, int, int], anchor: tuple[float, float]) -> None:
        super().__init__()
        self.setBrush(QColor(*colour))
        self.anchor = anchor

    def put(self, x: float, y: float) -> None:
        """Put the anchor at (x, y) of the parent: after the text is set, as it sizes the box."""
        box = self.boundingRect()
        self.setPos(x - self.anchor[0] * box.width(), y - self.anchor[1] * box.height())


class ViewAnnotations:
    """The caption (top left), orientation letters (edge midpoints) and scale bar (bottom left)
    of one view box; the bar measures the box's view coordinates, which are mm on screen."""

    def __init__(self, box: pg.ViewBox) -> None:
        self.box = box
        self.caption = Label(TEXT_COLOUR, (0, 0))
        self.caption.setPos(MARGIN, MARGIN)
        self.letters = {edge: Label(LETTER, at) for edge, at in ANCHORS.items()}
        self.bar = QGraphicsLineItem()
        self.bar.setPen(BAR_PEN)
        self.bar_label = Label(TEXT_COLOUR, (0.5, 1))
        self.unit = "mm"
        self.bar_length = 0.0  # in the view's units (mm), as the label says
        for item in (self.caption, *self.letters.values(), self.bar, self.bar_label):
            item.setParentItem(box)
        for item in self.letters.values():
            item.setFont(LETTER_FONT)
        box.sigResized.connect(self.place)
        box.sigRangeChanged.connect(self.place)

    def set_caption(self, text: str) -> None:
        self.caption.setText(text)
        self._put_letters()  # the top one below the caption if it reaches it

    def set_edges(self, edges: Edges | None) -> None:
        """The letters to show (None: none, for an image without patient geometry)."""
        for edge, item in self.letters.items():
            item.setText("" if edges is None else getattr(edges, edge))
        self.place()

    def set_unit(self, unit: str) -> None:
        """What the view's coordinates measure: "mm", or "px" when the study gives no spacing."""
        self.unit = unit
        self.place()

    def units_per_pixel(self) -> float:
        """View units (mm) per screen pixel: the box keeps the aspect, so one number."""
        return self.box.viewRect().width() / max(self.box.width(), 1.0)

    def place(self, *_) -> None:
        """Put the letters at the edge midpoints, and size the bar to a round length for the
        zoom."""
        self._put_letters()
        width = self.box.width()
        per_pixel = self.units_per_pixel()
        visible = width > 0 and per_pixel > 0
        self.bar.setVisible(visible)
        self.bar_label.setVisible(visible)
        if not visible:
            return
        self.bar_length = round_length(width * BAR_FRACTION * per_pixel)
        pixels = self.bar_length / per_pixel
        y = self.box.height() - MARGIN - 2
        self.bar.setLine(MARGIN, y, MARGIN + pixels, y)
        self.bar_label.setText(f"{self.bar_length:g} {self.unit}")
        self.bar_label.put(MARGIN + pixels / 2, y - 1)

    def _put_letters(self) -> None:
        """At the edge midpoints, the top one below the caption if the caption reaches it."""
        width, height = self.box.width(), self.box.height()
        top = self.letters["top"]
        caption_right = self.caption.mapRectToParent(self.caption.boundingRect()).right()
        clear = caption_right + GAP <= (width - top.boundingRect().width()) / 2
        top_y = MARGIN if clear else self.caption.mapRectToParent(self.caption.boundingRect()).bottom()
        positions = {
            "left": (MARGIN, height / 2),
            "right": (width - MARGIN, height / 2),
            "top": (width / 2, top_y),
            "bottom": (width / 2, height - MARGIN),
        }
        for edge, item in self.letters.items():
            item.put(*positions[edge])
