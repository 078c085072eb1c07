"""PNG figures: the paper's triptych (image | heat map | overlay) and activation grids.

Pillow only, no Qt, so the CLI and batch scripts make the same figures as the GUI: MapScale,
how a map's values become colours (signed maps about zero on a diverging map), is the rule the
slice viewer draws by too. Pixels are made square in millimetres, so anatomy keeps its true
proportions. Nothing identifying the patient is drawn unless the caller passes it in `legend`.

Figures are drawn at a size for reports and slides (LONG_SIDE, zoom_for) with orientation
letters and a scale bar around each image (view_marks): the rules the Qt screenshot
(gui.figure) shares, so that both kinds of figure read alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from medvis_desktop import colormaps
from medvis_desktop.export.atomic import atomic_write
from medvis_desktop.export.style import LONG_SIDE, SCALES, OverlayStyle
from medvis_desktop.imaging import orientation
from medvis_desktop.imaging.orientation import Edges
from medvis_desktop.imaging.volume import Volume

BACKGROUND = (0, 0, 0)
TEXT = (235, 235, 235)
LETTER = (255, 235, 130)  # orientation letters, as on screen (gui.view_annotations)
DEAD = (255, 40, 40)
# Sizes in pixels at text scale 1 (native figures); larger figures multiply them by text_scale.
MARGIN = 8
BAR_WIDTH = 16
BAR_LABELS = 70  # room for the colour bar's numbers
BAR_TITLE = 16  # and for its policy, written along it
TEXT_SIZE = 13
LINE = 18  # a legend line
LETTER_SIZE = 16
SPACE = 24  # the band outside each edge of an image that holds its letter (and the scale bar)
TEXT_PER_SCALE = 1000  # px of a figure's long side per unit of text scale
BAR_FRACTION = 0.25  # a scale bar is at most this fraction of its image's width
# A few extreme voxels (a model's stray predictions far from the lesion) must not set the scale.
ROBUST_PERCENTILE = 99.5
# The span given to a constant map, so that it still has a scale to be drawn on.
FLAT = 1e-6


@dataclass(frozen=True)
class MapScale:
    """How a map's values become colours: one rule for the viewer, its colour bars and the
    exports, so that a figure shows what the screen shows.

    Values are first transformed (`shown`), then placed on (low, high) and looked up in a
    256-entry table the way pyqtgraph does it (scaled to 0…256, clipped, truncated); entries
    inside the threshold are transparent, and so is NaN (not computed, or not drawn).
    """

    low: float
    high: float
    colormap: str
    # "" for maps of one sign (drawn as they are), else the OverlayStyle.sign of a signed map.
    sign: str
    threshold: float
    opacity: float
    policy: str = ""  # what set (low, high), in words for the colour bar: a value of SCALES

    @property
    def centred(self) -> bool:
        """(low, high) is (−m, m) on the diverging map: zero in the middle, the threshold on |v|."""
        return self.sign == "signed"

    def shown(self, maps: np.ndarray) -> np.ndarray:
        """float32 values to colour: |v| for "absolute", negative ones NaN for "positive"."""
        maps = np.asarray(maps, dtype=np.float32)
        if self.sign == "absolute":
            return np.abs(maps)
        if self.sign == "positive":
            return np.where(maps < 0, np.float32(np.nan), maps)
        return maps

    @cached_property
    def table(self) -> np.ndarray:
        """(256, 3) uint8: the colour map, opaque."""
        return colormaps.lookup_table(self.colormap)

    @cached_property
    def visible(self) -> np.ndarray:
        """bool (256,): the entries drawn, entry i standing for i/255 of the way from low to high.
        From the threshold up on a sequential map; centred, where |v| ≥ threshold·m, but never
        the two middle entries, between which zero falls."""
        position = np.arange(colormaps.SIZE) / (colormaps.SIZE - 1)
        if not self.centred:
            return position >= self.threshold
        visible = np.abs(2 * position - 1) >= self.threshold  # |v| / m
        visible[colormaps.SIZE // 2 - 1 : colormaps.SIZE // 2 + 1] = False
        return visible

    @cached_property
    def lut(self) -> np.ndarray:
        """(256, 4) uint8 RGBA: the table with the opacity, transparent where not `visible`."""
        lut = np.zeros((colormaps.SIZE, 4), dtype=np.uint8)
        lut[:, :3] = self.table
        lut[:, 3] = np.where(self.visible, round(self.opacity * 255), 0)
        return lut

    def rgba(self, maps: np.ndarray) -> np.ndarray:
        """(…, 4) uint8: each value's entry of `lut`, as the viewer draws it; NaN transparent black."""
        shown = self.shown(maps)
        missing = np.isnan(shown)
        position = np.where(missing, 0.0, shown - self.low) * (colormaps.SIZE / (self.high - self.low))
        rgba = self.lut[np.clip(position, 0, colormaps.SIZE - 1).astype(np.intp)]
        rgba[missing] = 0
        return rgba

    @property
    def marks(self) -> tuple[float, ...]:
        """Where the threshold cuts the colour bar, as fractions of its height from the bottom."""
        if self.centred:
            return (0.5 - self.threshold / 2, 0.5 + self.threshold / 2)
        return (self.threshold,)

    @property
    def labels(self) -> tuple[tuple[float, str], ...]:
        """The colour bar's labels as (fraction from the bottom, text): its ends, and 0 between
        them when centred, so a signed bar reads −m … 0 … m."""
        middle = ((0.5, "0"),) if self.centred else ()
        return ((1.0, short_number(self.high)), *middle, (0.0, short_number(self.low)))


def scale_range(
    maps: np.ndarray, computed: np.ndarray, current: np.ndarray, style: OverlayStyle, signed: bool
) -> tuple[float, float]:
    """The values the colour scale spans, by the style's policy: over the study's computed
    slices of `maps` (z, y, x), or over `current`, the section on screen ("slice").

    "robust" (the default) runs from the study's floor (its minimum) to the ROBUST_PERCENTILE
    of its values above the floor, so that the strongest voxels of a few slices do not leave
    every other slice's map under the threshold; values past it take the top colour. Only
    values above the floor count: a ReLU map is zero almost everywhere, and its percentile over
    all voxels would be that zero. A signed map's ends are each sign's percentile of |value|
    (map_scale then shows both signs, the positive part or |value| on it). "max" spans the
    study's range, "fixed" the style's (fixed_low, fixed_high), typed in either order.
    """
    if style.scale == "fixed":
        return min(style.fixed_low, style.fixed_high), max(style.fixed_low, style.fixed_high)
    if style.scale == "slice":
        return finite_range(current)
    values = maps[computed]
    if style.scale == "max":
        return finite_range(values)
    values = values[np.isfinite(values)]
    if not values.size:
        return finite_range(values)
    if signed:
        return -_robust_end(-values[values < 0], 0.0), _robust_end(values[values > 0], 0.0)
    floor = float(values.min())
    return floor, _robust_end(values[values > floor], floor)


def _robust_end(values: np.ndarray, empty: float) -> float:
    """The ROBUST_PERCENTILE of `values`; `empty` when there are none."""
    return float(np.percentile(values, ROBUST_PERCENTILE)) if values.size else empty


def map_scale(value_range: tuple[float, float], signed: bool, style: OverlayStyle) -> MapScale:
    """The display rule for a map whose finite values span `value_range` (scale_range of the
    style's policy, taken when the maps or the policy change, so that other style changes cost
    nothing).

    Maps of one sign (CAM, activations) keep the style's sequential map over their range. A
    signed map shown "signed" goes on the diverging map over (−m, m), m the larger end in |value|,
    so zero is the neutral middle whatever the imbalance of the signs; "positive" and
    "absolute" put v or |v| on the sequential map over (0, high) or (0, m).
    """
    low, high = value_range
    sign = style.sign if signed else ""
    if sign == "signed":
        peak = max(-low, high) or FLAT
        return MapScale(
            -peak, peak, colormaps.DIVERGING, sign, style.threshold, style.opacity, SCALES[style.scale]
        )
    if sign == "absolute":
        low, high = 0.0, max(-low, high)
    elif sign == "positive":
        low = 0.0
    high = high if high > low else low + FLAT
    return MapScale(low, high, style.colormap, sign, style.threshold, style.opacity, SCALES[style.scale])


def short_number(value: float) -> str:
    """A map value in a few characters (0.25, 130, 1.2e-04): tiny gradients stay legible."""
    if value == 0 or 1e-2 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return f"{value:.1e}"


def finite_range(values: np.ndarray) -> tuple[float, float]:
    """The finite values' min and max; (0, 1) when there are none (a map not computed yet)."""
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)


def overlay(grey: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """RGB (y, x, 3) uint8: `rgba` (MapScale.rgba of a map) blended over `grey` (uint8) by its alpha."""
    base = np.repeat(np.asarray(grey, dtype=np.float32)[..., np.newaxis], 3, axis=-1)
    alpha = rgba[..., 3:].astype(np.float32) / 255
    return np.round((1 - alpha) * base + alpha * rgba[..., :3]).astype(np.uint8)


def round_length(longest: float) -> float:
    """The longest length of the form 1, 2 or 5 × 10^k that is not over `longest` (> 0)."""
    power = 10 ** math.floor(math.log10(longest))
    return max(step * power for step in (1, 2, 5) if step * power <= longest * (1 + 1e-9))


def zoom_for(sizes_mm: Sequence[tuple[float, float]], finest_mm: float, long_side: int) -> float:
    """Output pixels per mm for images laid side by side, each (width, height) in mm: their
    row reaches `long_side` pixels on its long side, but never has fewer pixels than voxels
    (one pixel per `finest_mm`, the finest spacing shown); `long_side` 0 keeps that native size."""
    native = 1 / finest_mm
    if long_side <= 0:
        return native
    row = max(sum(width for width, _ in sizes_mm), max(height for _, height in sizes_mm))
    return max(native, long_side / row)


def text_scale(long_side_px: float) -> float:
    """How much text, bands and lines grow with a figure whose images are `long_side_px` long:
    legible still when a 3,000 px figure is shrunk onto a slide."""
    return max(1.0, long_side_px / TEXT_PER_SCALE)


@dataclass(frozen=True)
class ViewMarks:
    """Where an image's orientation letters and scale bar go, in figure pixels."""

    letters: dict[str, tuple[float, float]]  # edge name → centre of its letter
    bar: tuple[float, float, float]  # the scale bar: x from, x to, y
    label: tuple[float, float]  # left end and vertical centre of the bar's label
    length: float  # the bar's length in the image's units (mm, or px without spacing)


def view_marks(box: tuple[float, float, float, float], units_per_pixel: float, space: float) -> ViewMarks:
    """The marks around an image at `box` (left, top, width, height): each letter centred in
    the band `space` wide outside its edge, so no mark covers the image; the scale bar in a
    second band under the bottom one, from the image's left edge, the round length
    (round_length) nearest under BAR_FRACTION of the image's width, as on screen."""
    left, top, width, height = box
    middle_x, middle_y = left + width / 2, top + height / 2
    letters = {
        "left": (left - space / 2, middle_y),
        "right": (left + width + space / 2, middle_y),
        "top": (middle_x, top - space / 2),
        "bottom": (middle_x, top + height + space / 2),
    }
    length = round_length(width * units_per_pixel * BAR_FRACTION)
    end, y = left + length / units_per_pixel, top + height + 1.5 * space
    return ViewMarks(letters, (left, end, y), (end + space / 4, y), length)


def axial_layout(volume: Volume) -> dict[str, object]:
    """triptych's keywords that lay out an axial slice of `volume` as the viewer shows it: its
    spacing, flips, edge letters and the unit of its scale bar."""
    return {
        "spacing_yx": volume.spacing[1:],
        "flips": orientation.flips(volume.direction, 1, 2),
        "edges": orientation.view_edges(volume, 1, 2),
        "unit": orientation.length_unit(volume),
    }


def as_shown(section: np.ndarray, flips: tuple[bool, bool]) -> np.ndarray:
    """A section (rows, columns) mirrored the way the viewer shows it (imaging.orientation.flips)."""
    flip_rows, flip_columns = flips
    return section[:: -1 if flip_rows else 1, :: -1 if flip_columns else 1]


def _font(size: int = 14) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _colour_bar(height: int, scale: MapScale, text: float = 1.0) -> Image.Image:
    """The bar `height` px tall (from its image's row MARGIN · `text` down) with its ends (and
    zero), threshold marks, and its policy written upwards beside it, as a plotted colour bar's
    label is; sizes grown by the text scale `text`."""
    pad, width = round(MARGIN * text), round(BAR_WIDTH * text)
    labels_width, title_width = round(BAR_LABELS * text), round(BAR_TITLE * text)
    rows = scale.table[np.round(np.linspace(colormaps.SIZE - 1, 0, height)).astype(np.intp)]
    bar = Image.fromarray(np.ascontiguousarray(rows[:, np.newaxis, :].repeat(width, axis=1)))
    labelled = Image.new("RGB", (width + labels_width + title_width, height + 2 * pad), BACKGROUND)
    labelled.paste(bar, (0, pad))
    draw = ImageDraw.Draw(labelled)
    font = _font(round(12 * text))
    for fraction, label in scale.labels:
        y = pad + round((1 - fraction) * (height - 1))
        draw.text((width + round(4 * text), y), label, fill=TEXT, font=font, anchor="lm")
    for fraction in scale.marks:
        y = pad + round((1 - fraction) * (height - 1))
        draw.line([(0, y), (width + 2, y)], fill=TEXT, width=max(1, round(text)))
    title = Image.new("RGB", (round(draw.textlength(scale.policy, font=font)) + 2, title_width), BACKGROUND)
    ImageDraw.Draw(title).text((1, title_width // 2), scale.policy, fill=TEXT, font=font, anchor="lm")
    title = title.rotate(90, expand=True)
    labelled.paste(title, (width + labels_width, max(pad, (labelled.height - title.height) // 2)))
    return labelled


def _with_legend(body: Image.Image, legend: Sequence[str], text: float = 1.0) -> Image.Image:
    """`body` with the legend under it; a line wider than the body widens the figure, so the
    legend never covers an image."""
    font, line, margin = _font(round(14 * text)), round(LINE * text), round(MARGIN * text)
    widest = max((round(font.getlength(row)) for row in legend), default=0)
    figure = Image.new(
        "RGB",
        (max(body.width, widest) + 2 * margin, body.height + line * len(legend) + 2 * margin),
        BACKGROUND,
    )
    figure.paste(body, (margin, margin))
    draw = ImageDraw.Draw(figure)
    for row, words in enumerate(legend):
        draw.text((margin, margin + body.height + row * line), words, fill=TEXT, font=font)
    return figure


def _draw_marks(
    draw: ImageDraw.ImageDraw, marks: ViewMarks, edges: Edges | None, unit: str, text: float
) -> None:
    """Burn an image's orientation letters (none when `edges` is None) and scale bar in."""
    if edges is not None:
        font = _font(round(LETTER_SIZE * text))
        for edge, centre in marks.letters.items():
            draw.text(centre, getattr(edges, edge), fill=LETTER, font=font, anchor="mm")
    left, right, y = marks.bar
    draw.line([(left, y), (right, y)], fill=TEXT, width=max(2, round(2 * text)))
    label = f"{marks.length:g} {unit}"
    draw.text(marks.label, label, fill=TEXT, font=_font(round(TEXT_SIZE * text)), anchor="lm")


def triptych(
    grey: np.ndarray,
    heat: np.ndarray,
    *,
    scale: MapScale | None = None,
    spacing_yx: tuple[float, float] = (1.0, 1.0),
    legend: Sequence[str] = (),
    edges: Edges | None = None,
    flips: tuple[bool, bool] = (False, False),
    unit: str = "mm",
    long_side: int = LONG_SIDE,
    smooth: bool = False,
) -> Image.Image:
    """The paper's figure: image | heat map | overlay, with a colour bar and the legend under
    them. `scale` (default: the slice's own range, as a map of one sign) is the viewer's, for
    the same look; `flips` (imaging.orientation.flips) lays the slice out as the viewer does,
    `edges` its letters (None: no patient geometry), `unit` what the scale bar measures ("px"
    when the study gives no spacing). The panels together are `long_side` px long (zoom_for;
    0: native), nearest or `smooth`ly interpolated; info["dpi"] holds the pixel size in mm
    for save_png to record, unless the unit is px."""
    grey, heat = as_shown(np.asarray(grey, dtype=np.uint8), flips), as_shown(heat, flips)
    scale = scale or map_scale(finite_range(heat), False, OverlayStyle(scale="slice"))
    rgba = scale.rgba(heat)
    rows, columns = grey.shape
    size_mm = (columns * spacing_yx[1], rows * spacing_yx[0])
    zoom = zoom_for([size_mm] * 3, min(spacing_yx), long_side)
    size = (round(size_mm[0] * zoom), round(size_mm[1] * zoom))
    resample = Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST
    panels = [
        Image.fromarray(panel).convert("RGB").resize(size, resample)
        for panel in (grey, np.ascontiguousarray(rgba[..., :3]), overlay(grey, rgba))
    ]
    text = text_scale(max(3 * size[0], size[1]))
    space, gap = round(SPACE * text), round(MARGIN * text)
    cell = size[0] + 2 * space + gap
    bar = _colour_bar(size[1], scale, text)
    body = Image.new("RGB", (3 * cell + bar.width, size[1] + 3 * space), BACKGROUND)
    draw = ImageDraw.Draw(body)
    for k, panel in enumerate(panels):
        box = (k * cell + space, space, *size)
        body.paste(panel, box[:2])
        _draw_marks(draw, view_marks(box, 1 / zoom, space), edges, unit, text)
    body.paste(bar, (3 * cell, space - round(MARGIN * text)))
    figure = _with_legend(body, legend, text)
    if unit != "px":
        figure.info["dpi"] = (25.4 * zoom, 25.4 * zoom)
    return figure


def activation_grid(
    maps: np.ndarray,
    dead: np.ndarray | None = None,
    *,
    columns: int | None = None,
    tile: int = 96,
    legend: Sequence[str] = (),
) -> Image.Image:
    """One tile per filter of `maps` (y, x, C), each scaled to its own maximum; dead ones crossed."""
    count = maps.shape[-1]
    dead = np.zeros(count, dtype=bool) if dead is None else np.asarray(dead, dtype=bool)
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    gap = 2
    grid = Image.new("RGB", (columns * (tile + gap), rows * (tile + gap)), (40, 40, 40))
    draw = ImageDraw.Draw(grid)
    font = _font(10)
    for index in range(count):
        feature = np.maximum(maps[..., index], 0)
        peak = float(feature.max())
        grey = (feature / peak * 255) if peak > 0 else np.zeros_like(feature)
        image = Image.fromarray(grey.astype(np.uint8)).resize((tile, tile), Image.Resampling.NEAREST)
        left, top = (index % columns) * (tile + gap), (index // columns) * (tile + gap)
        grid.paste(image.convert("RGB"), (left, top))
        draw.text((left + 2, top + 1), str(index), fill=TEXT, font=font)
        if dead[index]:
            draw.rectangle([left, top, left + tile - 1, top + tile - 1], outline=DEAD, width=2)
            draw.line([(left, top), (left + tile - 1, top + tile - 1)], fill=DEAD, width=2)
    return _with_legend(grid, legend)


def save_png(image: Image.Image, path: Path | str, *, source: Path | str | None = None) -> Path:
    """Plain PNG: no text chunks, so no metadata rides along with the picture; only the pixel
    size a figure records in info["dpi"] (pHYs). Written atomically, never over `source` (the
    study it shows)."""
    path = Path(path)
    with atomic_write(path, source=source) as temporary:
        image.save(temporary, format="PNG", dpi=image.info.get("dpi"))
    return path
