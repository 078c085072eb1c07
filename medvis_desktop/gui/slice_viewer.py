"""The slice viewer: axial, coronal and sagittal sections with the explanation laid over them.

Each view shows a section of the volume in millimetres (the image item's transform carries
the spacing, so anatomy keeps its true proportions) with patient superior up and patient left
on the screen's right (radiological convention, imaging.orientation), its edges lettered, a
scale bar and a caption (gui.view_annotations). Pixels go to pyqtgraph as uint16 (voxels
less a fixed offset) or float32 with levels and a lookup table, the form its fast path needs,
converted section by section as they are drawn (gui.section_pixels): opening a study copies
nothing, and a window changes the levels only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import zip_longest

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QAction, QKeyEvent, QTransform
from PySide6.QtWidgets import (
    QGraphicsView,
    QGridLayout,
    QHBoxLayout,
    QMenu,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from medvis_desktop import imaging
from medvis_desktop.export import OverlayStyle
from medvis_desktop.export.images import map_scale, scale_range
from medvis_desktop.gui import figure
from medvis_desktop.gui.figure import DEFAULT_OPTIONS, Figure, FigureOptions, Panel, ScoreStrip
from medvis_desktop.gui.section_image import SectionImage, bounding_box
from medvis_desktop.gui.section_pixels import SectionPixels
from medvis_desktop.gui.view_annotations import ViewAnnotations
from medvis_desktop.imaging import Volume, Window, orientation

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

BAR_LABEL_SIZE = "8pt"
BAR_WIDGET_WIDTH = 84
GREY_LUT = np.repeat(np.arange(256, dtype=np.uint8)[:, np.newaxis], 3, axis=1)
PAGE_STEP = 10
# Right-drag window/level: fraction of the window width per screen pixel.
WINDOW_DRAG_RATE = 0.005
CROSSHAIR_PEN = pg.mkPen((255, 220, 0, 160), width=1)
BAR_MARK_PEN = pg.mkPen((235, 235, 235), width=1)
# Magenta: apart from grey and from the overlay colour maps' hues.
OUTLINE_COLOUR = (255, 0, 255, 255)
OUTLINE_LUT = np.array([(0, 0, 0, 0), OUTLINE_COLOUR], np.uint8)  # mask_border's 0 and 1
SINGLE, THREE = "single", "three"


def mask_border(mask: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """The border of a 2D mask (its pixels with a background pixel above, below or beside
    them) within the mask's bounding box, uint16 1 on the border and 0 elsewhere, and the box's
    top row and left column; None for an empty mask. Only the box is worked on and drawn: a
    lesion is small beside its section, and this runs on every scroll."""
    box = bounding_box(mask)
    if box is None:
        return None
    padded = np.pad(mask[box], 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    border = (padded[1:-1, 1:-1] & ~inner).view(np.uint8).astype(np.uint16)
    return border, box[0].start, box[1].start


def window_number(value: float) -> str:
    """A window's width or centre as a reader writes it: whole above 100 (HU, raw detector
    values), else a few digits (normalised MRI)."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


@dataclass(frozen=True)
class Section:
    """How one view cuts the volume: the array axis it fixes and the two it shows."""

    axis: int
    rows: int
    columns: int

    @classmethod
    def through(cls, axis: int) -> Section:
        rows, columns = (a for a in range(3) if a != axis)
        return cls(axis, rows, columns)

    def name(self, volume: Volume) -> str:
        return orientation.plane_name(volume.direction, self.axis)

    def cut(self, array: np.ndarray, index: int) -> np.ndarray:
        return array[index] if self.axis == 0 else np.take(array, index, axis=self.axis)

    def transform(self, volume: Volume) -> QTransform:
        """Array (column, row) → screen millimetres, flipped to put superior up, left right."""
        sy, sx = volume.spacing[self.rows], volume.spacing[self.columns]
        ny, nx = volume.shape[self.rows], volume.shape[self.columns]
        flip_rows, flip_columns = orientation.flips(volume.direction, self.rows, self.columns)
        return QTransform(
            -sx if flip_columns else sx, 0, 0, -sy if flip_rows else sy,
            nx * sx if flip_columns else 0, ny * sy if flip_rows else 0,
        )  # fmt: skip


class SliceViewBox(pg.ViewBox):
    """Wheel scrolls slices (Ctrl+wheel zooms), right-drag sets window/level, click aims."""

    scrolled = Signal(int)
    window_dragged = Signal(float, float)
    clicked = Signal(object)  # scene position
    menu_requested = Signal(object)  # screen position

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)

    def wheelEvent(self, event, axis=None) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(event, axis)
            return
        self.scrolled.emit(1 if event.delta() > 0 else -1)
        event.accept()

    def mouseDragEvent(self, event, axis=None) -> None:
        if event.button() == Qt.MouseButton.RightButton:
            event.accept()
            delta = event.screenPos() - event.lastScreenPos()
            self.window_dragged.emit(delta.x(), delta.y())
            return
        super().mouseDragEvent(event, axis)

    def mouseClickEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(event.scenePos())
            event.accept()
        elif event.button() == Qt.MouseButton.RightButton:
            self.menu_requested.emit(event.screenPos().toPoint())
            event.accept()


class PlaneView(pg.GraphicsLayoutWidget):
    """One section: the grey image, the overlay on it, crosshair lines, and its annotations
    (caption, orientation letters, scale bar)."""

    def __init__(self, section: Section, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.section = section
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setBackground("k")
        # The opaque black background covers the whole view on every paint: filling it is
        # quicker than copying a cached one, and Qt need not clear what lies under the view.
        self.setCacheMode(QGraphicsView.CacheModeFlag.CacheNone)
        self.viewport().setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.box = SliceViewBox()
        self.addItem(self.box)
        self.image = SectionImage()
        self.overlay = SectionImage()
        self.overlay.setZValue(1)
        self.outline = SectionImage()  # a reference mask's border, its bounding box only
        self.outline.setZValue(1.5)
        self.outline.setLookupTable(OUTLINE_LUT)
        self.outline.setLevels((0, 1))
        self.box.addItem(self.image)
        self.box.addItem(self.overlay)
        self.box.addItem(self.outline, ignoreBounds=True)  # inside the image: fitting ignores it
        self.lines = (
            pg.InfiniteLine(angle=90, pen=CROSSHAIR_PEN),
            pg.InfiniteLine(angle=0, pen=CROSSHAIR_PEN),
        )
        for line in self.lines:
            line.setZValue(2)
            self.box.addItem(line, ignoreBounds=True)
        self.annotations = ViewAnnotations(self.box)

    def set_volume(self, volume: Volume) -> None:
        """Lay the volume's sections out in mm, and letter the edges by its geometry."""
        transform = self.section.transform(volume)
        for item in (self.image, self.overlay):  # the outline's is set with its pixels
            item.setTransform(transform)
        self.annotations.set_edges(orientation.view_edges(volume, self.section.rows, self.section.columns))
        self.annotations.set_unit(orientation.length_unit(volume))

    def index_at(self, scene_position: QPointF) -> tuple[int, int] | None:
        """(row, column) of the pixel under a scene position, None outside the image."""
        point = self.image.mapFromScene(scene_position)
        row, column = math.floor(point.y()), math.floor(point.x())
        height, width = self.image.image.shape[:2]
        return (row, column) if 0 <= row < height and 0 <= column < width else None

    def show_outline(self, mask: np.ndarray | None) -> None:
        """Outline a reference mask's section (None or empty: no outline), drawn over the mask's
        bounding box only, placed by the item's transform."""
        border = None if mask is None else mask_border(mask)
        self.outline.setVisible(border is not None)
        if border is not None:
            pixels, top, left = border
            self.outline.setImage(pixels, autoLevels=False)
            self.outline.setTransform(QTransform.fromTranslate(left, top) * self.image.transform())

    def set_crosshair(self, row: int, column: int) -> None:
        point = self.image.transform().map(QPointF(column + 0.5, row + 0.5))
        self.lines[0].setValue(point.x())
        self.lines[1].setValue(point.y())

    def reset_view(self) -> None:
        """Fit the image again, and keep fitting it as the window resizes until the user zooms."""
        self.box.enableAutoRange()

    def panel(self, volume: Volume) -> Panel:
        """What a figure draws of this view: the image, and the overlay and outline if shown."""
        section = self.section
        shown = tuple(item for item in (self.overlay, self.outline) if item.isVisible())
        size_mm = (
            self.image.width() * volume.spacing[section.columns],
            self.image.height() * volume.spacing[section.rows],
        )
        return Panel(
            (self.image, *shown), size_mm, orientation.view_edges(volume, section.rows, section.columns)
        )


class SliceViewer(QWidget):
    """The three sections of one volume around a cursor voxel, and the explanation's maps.

    The cursor (z, y, x) is shared: a view shows the section through the cursor and its
    crosshair marks where the other views cut. The explanation is an Explanation (or None);
    each section shows the maps of its own slice, read from `explanation.maps`.
    """

    cursor_changed = Signal(int, int, int)
    hovered = Signal(object)  # (z, y, x) under the mouse, or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.volume: Volume | None = None
        self.explanation = None
        self.style = OverlayStyle()
        self.overlay_visible = True
        self.reference: np.ndarray | None = None  # bool (z, y, x), e.g. a demo's true lesions
        self.reference_label = ""
        self.window = Window("", 0.0, 1.0)
        self.cursor = [0, 0, 0]
        self.active_axis = 0
        self.layout_mode = SINGLE
        self._pixels = SectionPixels(0)  # how the volume's sections are drawn
        self._map_range = (0.0, 1.0)  # what the colour scale spans (export.images.scale_range)
        # What _map_range was taken for: the policy, and the section on screen for "slice".
        self._range_of: tuple | None = None
        self.scale = map_scale(self._map_range, False, self.style)  # how its values are coloured
        self.views = [PlaneView(Section.through(axis)) for axis in range(3)]
        # Signed maps (deconvnet, pixel attributions) are also shown alone, beside the slice.
        self.projection = PlaneView(Section.through(0))
        for view in (*self.views, self.projection):
            view.image.setLookupTable(GREY_LUT)
        self.projection.box.setXLink(self.views[0].box)
        self.projection.box.setYLink(self.views[0].box)
        # The bar is scaled 0-1 (scale low to high) and the raw ends are written once above and
        # below it: raw ticks of maps around 1e-4 would crowd into each other. A signed map's
        # bar has its zero ticked in the middle; lines mark the threshold.
        self.colour_bar = pg.ColorBarItem(values=(0, 1), width=14, interactive=False, colorMapMenu=False)
        self.bar_title = self.colour_bar.getAxis("left")  # the scale's policy, written along the bar
        self.bar_marks = [pg.InfiniteLine(angle=0, pen=BAR_MARK_PEN, movable=False) for _ in range(2)]
        for mark in self.bar_marks:
            self.colour_bar.addItem(mark)
        bar_widget = pg.GraphicsLayoutWidget()
        bar_widget.setBackground("k")
        bar_widget.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        bar_widget.setFixedWidth(BAR_WIDGET_WIDTH)
        self.bar_high = bar_widget.addLabel(row=0, col=0, size=BAR_LABEL_SIZE)
        bar_widget.addItem(self.colour_bar, row=1, col=0)
        self.bar_low = bar_widget.addLabel(row=2, col=0, size=BAR_LABEL_SIZE)
        self._bar_widget = bar_widget
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(self._slider_moved)
        self._grid = QGridLayout()
        self._grid.setSpacing(2)
        row = QHBoxLayout()
        row.addLayout(self._grid, 1)
        row.addWidget(bar_widget)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(row, 1)
        column.addWidget(self.slider)
        for view in (*self.views, self.projection):
            view.box.scrolled.connect(self._make_scroll(view))
            view.box.window_dragged.connect(self._drag_window)
            view.box.clicked.connect(self._make_click(view))
            view.box.menu_requested.connect(self._show_menu)
            view.scene().sigMouseMoved.connect(self._make_hover(view))
        self._set_scale()
        self._arrange()

    # --- what is shown ---------------------------------------------------------------------

    def set_volume(self, volume: Volume) -> None:
        """Show a new volume at its middle slice, in its default window, without maps."""
        self.volume = volume
        self.explanation = None
        self.reference = None
        self._pixels = SectionPixels.of(volume.voxels)
        self.cursor = [n // 2 for n in volume.shape]
        for view in (*self.views, self.projection):
            view.set_volume(volume)
        self.set_window(imaging.default_window(volume))
        self._refresh()
        self.reset_view()

    def set_explanation(self, explanation: object | None) -> None:
        """Show an Explanation's maps (None: no overlay), coloured by the style's scale policy
        over its computed slices, diverging about zero when they are signed (see
        export.images.scale_range and map_scale)."""
        self.explanation = explanation
        self._range_of = None  # new maps (or more slices of them): take the range again
        self._arrange()
        self._refresh()

    def set_reference(self, mask: np.ndarray | None, label: str = "") -> None:
        """Outline a reference region on every section (None: none), such as the true extent
        of a demo's lesions, to hold the explanation against; `label` says what it is."""
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            shape = None if self.volume is None else self.volume.shape
            if mask.shape != shape:
                raise ValueError(f"The reference mask is {mask.shape}; the volume is {shape}")
        self.reference, self.reference_label = mask, label
        self._refresh()

    def set_style(self, style: OverlayStyle) -> None:
        self.style = style
        self._refresh()

    def set_overlay_visible(self, visible: bool) -> None:
        self.overlay_visible = visible
        self._refresh()

    def set_window(self, window: Window) -> None:
        self.window = window
        levels = self._pixels.levels(window)
        for view in self.views:
            view.image.setLevels(levels)
            if self.volume is not None:
                view.annotations.set_caption(self._caption(view))

    def set_layout_mode(self, mode: str, axis: int | None = None) -> None:
        """SINGLE shows the view through `axis` (default: the active one); THREE shows all."""
        self.layout_mode = mode
        if axis is not None:
            self.active_axis = axis
        self._arrange()
        self._refresh()
        self.reset_view()

    def refresh_slices(self, slices: list[int] | np.ndarray) -> None:
        """Draw the sections on screen again if they show any of these slices, newly decoded
        by a load in the background (sections are converted from the volume as they are drawn:
        nothing else holds the old values)."""
        axial_only = all(view.section.axis == 0 for view in self._visible_views())
        if self.volume is not None and (not axial_only or self.cursor[0] in slices):
            self._refresh()

    def set_slice(self, index: int) -> None:
        """Move the active view to slice `index` (clipped to the volume)."""
        if self.volume is None:
            return
        self.cursor[self.active_axis] = int(np.clip(index, 0, self.volume.shape[self.active_axis] - 1))
        self._refresh()

    @property
    def current_slice(self) -> int:
        return self.cursor[self.active_axis]

    def reset_view(self) -> None:
        for view in (*self.views, self.projection):
            view.reset_view()

    def fill_presets_menu(self, menu: QMenu) -> None:
        """Put the window presets of the current volume in `menu` (emptied first)."""
        menu.clear()
        for window in imaging.presets(self.volume) if self.volume is not None else []:
            action = QAction(f"{window.name}  ({window.center:g} / {window.width:g})", menu)
            action.triggered.connect(self._make_preset(window))
            menu.addAction(action)

    def snapshot(
        self,
        legend: list[str],
        *,
        all_views: bool = False,
        options: FigureOptions = DEFAULT_OPTIONS,
        scores: ScoreStrip | None = None,
    ) -> Figure:
        """The active view's section (or all three side by side) with its overlay, drawn by
        gui.figure at the options' size with the legend and `scores` under it and the colour
        scale beside it: what the user sees, without the zoom."""
        views = self.views if all_views else [self.views[self.active_axis]]
        maps = self.explanation.maps if self.explanation is not None else None
        for view in views:
            self._show_section(view, maps)  # hidden views are not kept up to date
        finest = min(
            self.volume.spacing[a] for view in views for a in (view.section.rows, view.section.columns)
        )
        return figure.render(
            [view.panel(self.volume) for view in views],
            legend,
            finest_mm=finest,
            unit=views[0].annotations.unit,
            colours=self.scale if maps is not None and self.overlay_visible else None,
            scores=scores,
            options=options,
        )

    # --- drawing ---------------------------------------------------------------------------

    def _visible_views(self) -> list[PlaneView]:
        views = self.views if self.layout_mode == THREE else [self.views[self.active_axis]]
        return [*views, self.projection] if self._shows_projection() else views

    def _shows_projection(self) -> bool:
        """Signed maps (deconvnet, pixel attributions) live in the image's space: show them alone too."""
        return self.explanation is not None and self.explanation.signed

    def _arrange(self) -> None:
        for view in (*self.views, self.projection):
            self._grid.removeWidget(view)
            view.hide()
        for position, view in enumerate(self._visible_views()):
            self._grid.addWidget(view, position // 2, position % 2)
            view.show()
        self._bar_widget.setVisible(self.explanation is not None and self.overlay_visible)

    def _refresh(self) -> None:
        """Hand every visible view its sections for the cursor: array slices (and the
        reference's outline, drawn from its section)."""
        if self.volume is None:
            return
        self._update_scale()
        maps = self.explanation.maps if self.explanation is not None else None
        for view in self._visible_views():
            self._show_section(view, maps)
        self.slider.blockSignals(True)
        self.slider.setRange(0, self.volume.shape[self.active_axis] - 1)
        self.slider.setValue(self.current_slice)
        self.slider.blockSignals(False)
        self.cursor_changed.emit(*self.cursor)

    def _show_section(self, view: PlaneView, maps: np.ndarray | None) -> None:
        """Hand one view its section through the cursor, with its overlay, crosshair, caption."""
        section = view.section
        index = self.cursor[section.axis]
        if view is self.projection:
            levels = (self.scale.low, self.scale.high)
            view.image.setImage(self.scale.shown(section.cut(maps, index)), autoLevels=False, levels=levels)
        else:
            pixels = self._pixels.convert(section.cut(self.volume.voxels, index))
            view.image.setImage(pixels, autoLevels=False)
            self._show_overlay(view, None if maps is None else section.cut(maps, index))
        reference = (
            None if self.reference is None or view is self.projection else section.cut(self.reference, index)
        )
        view.show_outline(reference)
        view.set_crosshair(self.cursor[section.rows], self.cursor[section.columns])
        for line in view.lines:
            line.setVisible(self.layout_mode == THREE)
        view.annotations.set_caption(self._caption(view))

    def _caption(self, view: PlaneView) -> str:
        """Where the section is and how it is shown, "axial 12/40 · z = 35.0 mm · W 80 / C 40";
        a projection's image is named by its view ("L CC") instead."""
        volume, section = self.volume, view.section
        index = self.cursor[section.axis]
        planar = orientation.planar_view(volume)
        if planar is not None and section.axis == 0:
            where = planar
        else:
            coordinate, position = orientation.slice_position(volume, section.axis, index)
            unit = view.annotations.unit
            where = (
                f"{section.name(volume)} {index + 1}/{volume.shape[section.axis]}"
                f" · {coordinate} = {position:.1f} {unit}"
            )
        window = f"W {window_number(self.window.width)} / C {window_number(self.window.center)}"
        return f"{where} · {'map only' if view is self.projection else window}"

    def _show_overlay(self, view: PlaneView, heat: np.ndarray | None) -> None:
        shown = heat is not None and self.overlay_visible
        view.overlay.setVisible(shown)
        if shown:
            levels = (self.scale.low, self.scale.high)
            view.overlay.setImage(self.scale.shown(heat), autoLevels=False, levels=levels)

    def _update_scale(self) -> None:
        """Take the colour scale's range again when what it depends on changed (new maps, the
        policy, the section on screen under "this slice"); recolour when the scale changed."""
        signed = self.explanation is not None and self.explanation.signed
        key = (self.style.scale, self.style.fixed_low, self.style.fixed_high)
        if self.style.scale == "slice":
            key += (self.active_axis, self.current_slice)
        if self.explanation is not None and key != self._range_of:
            maps, computed = self.explanation.maps, self.explanation.computed
            current = self.views[self.active_axis].section.cut(maps, self.current_slice)
            self._map_range = scale_range(maps, computed, current, self.style, signed)
            self._range_of = key
        scale = map_scale(self._map_range, signed, self.style)
        if scale != self.scale:
            self.scale = scale
            self._set_scale()

    def _set_scale(self) -> None:
        """Colour the maps by self.scale: overlays' lookup table, the colour bar, its threshold
        marks, its ends and the policy that set them."""
        scale = self.scale
        for view in self.views:
            view.overlay.setLookupTable(scale.lut)
        self.colour_bar.setColorMap(pg.ColorMap(np.linspace(0, 1, len(scale.table)), scale.table))
        self.colour_bar.axis.setTicks([[(0.5, "0")], []] if scale.centred else None)
        for mark, fraction in zip_longest(self.bar_marks, scale.marks):
            mark.setVisible(fraction is not None)
            mark.setValue((fraction or 0.0) * len(scale.table))  # the bar's view runs 0…256
        high, low = scale.labels[0][1], scale.labels[-1][1]
        self.bar_high.setText(f"+{high}" if scale.centred else high)
        self.bar_low.setText(low)
        self.bar_title.setLabel(scale.policy)

    # --- interaction -----------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        steps = {
            Qt.Key.Key_Up: 1, Qt.Key.Key_Right: 1, Qt.Key.Key_Down: -1, Qt.Key.Key_Left: -1,
            Qt.Key.Key_PageUp: PAGE_STEP, Qt.Key.Key_PageDown: -PAGE_STEP,
        }  # fmt: skip
        if event.key() in steps:
            self.set_slice(self.current_slice + steps[event.key()])
        elif event.key() in (Qt.Key.Key_Home, Qt.Key.Key_End) and self.volume is not None:
            last = self.volume.shape[self.active_axis] - 1
            self.set_slice(last if event.key() == Qt.Key.Key_End else 0)
        elif event.key() == Qt.Key.Key_O:
            self.set_overlay_visible(not self.overlay_visible)
        elif event.key() == Qt.Key.Key_R:
            self.reset_view()
        else:
            super().keyPressEvent(event)

    def _slider_moved(self, value: int) -> None:
        self.set_slice(value)

    def _make_scroll(self, view: PlaneView):
        def scroll(steps: int) -> None:
            self.active_axis = view.section.axis
            self.set_slice(self.cursor[view.section.axis] + steps)

        return scroll

    def _make_click(self, view: PlaneView):
        def click(scene_position: QPointF) -> None:
            self.setFocus()
            index = view.index_at(scene_position)
            self.active_axis = view.section.axis
            if index is not None and self.layout_mode == THREE:
                self.cursor[view.section.rows], self.cursor[view.section.columns] = index
                self._refresh()

        return click

    def _make_hover(self, view: PlaneView):
        def hover(scene_position: QPointF) -> None:
            index = view.index_at(scene_position) if self.volume is not None else None
            if index is None:
                self.hovered.emit(None)
                return
            voxel = list(self.cursor)
            voxel[view.section.rows], voxel[view.section.columns] = index
            self.hovered.emit(tuple(voxel))

        return hover

    def _make_preset(self, window: Window):
        return lambda: self.set_window(window)

    def _drag_window(self, dx: float, dy: float) -> None:
        width = max(self.window.width * (1 + dx * WINDOW_DRAG_RATE * 2), 1e-3)
        center = self.window.center - dy * self.window.width * WINDOW_DRAG_RATE
        self.set_window(replace(self.window, name="Custom", center=center, width=width))

    def _show_menu(self, screen_position) -> None:
        menu = QMenu(self)
        self.fill_presets_menu(menu.addMenu("Window"))
        menu.addAction("Reset view", self.reset_view)
        overlay = menu.addAction(
            "Show overlay (O)", lambda: self.set_overlay_visible(not self.overlay_visible)
        )
        overlay.setCheckable(True)
        overlay.setChecked(self.overlay_visible)
        menu.exec(screen_position)
