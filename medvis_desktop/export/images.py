"""PNG figures: the paper's triptych (image | heat map | overlay) and activation grids.

Pillow only, no Qt, so the CLI and batch scripts make the same figures as the GUI: MapScale,
how a map's values become colours (signed maps about zero on a diverging map), is the rule the
slice viewer draws by too. Pixels are made square in millimetres, so anatomy keeps its true
proportions. Nothing identifying the patient is drawn unless the caller passes it in `legend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from medvis_desktop import colormaps
from medvis_desktop.export.atomic import atomic_write

BACKGROUND = (0, 0, 0)
TEXT = (235, 235, 235)
DEAD = (255, 40, 40)
MARGIN = 8
BAR_WIDTH = 16
BAR_LABELS = 70  # room for the colour bar's numbers
BAR_TITLE = 16  # and for its policy, written along it
SIGNS = ("signed", "positive", "absolute")
# What spans the colour scale (scale_range), and how the colour bar names it.
SCALES = {
    "robust": "study, 99.5th pct",
    "max": "study, maximum",
    "slice": "this slice",
    "fixed": "fixed range",
}
# A few extreme voxels (a model's stray predictions far from the lesion) must not set the scale.
ROBUST_PERCENTILE = 99.5
# The span given to a constant map, so that it still has a scale to be drawn on.
FLAT = 1e-6


@dataclass(frozen=True)
class OverlayStyle:
    """How a heat map is laid over the image: the GUI's overlay settings, for exports."""

    colormap: str = "turbo"
    opacity: float = 0.5
    # Weaker values than this fraction of the scale are not drawn: of the range for maps of one
    # sign, of the largest |value| for signed maps shown signed.
    threshold: float = 0.2
    # Signed maps (pixel attributions, deconvnet): "signed" on the diverging map centred on zero,
    # "positive" (negative values not drawn) or "absolute" (|value|) on the sequential map.
    sign: str = "signed"
    # Which values the colour scale spans: a key of SCALES (see scale_range); "fixed" spans
    # fixed_low to fixed_high, in the map's units.
    scale: str = "robust"
    fixed_low: float = 0.0
    fixed_high: float = 1.0

    def __post_init__(self) -> None:
        if self.sign not in SIGNS:
            raise ValueError(f"Unknown sign mode '{self.sign}'; use one of {', '.join(SIGNS)}")
        if self.scale not in SCALES:
            raise ValueError(f"Unknown colour scale '{self.scale}'; use one of {', '.join(SCALES)}")


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


def _square_pixels(image: Image.Image, spacing_yx: tuple[float, float]) -> Image.Image:
    """Stretch the shorter-spaced axis so one screen pixel is as tall as it is wide in mm."""
    row_mm, column_mm = spacing_yx
    width, height = image.size
    if abs(row_mm - column_mm) < 1e-6 * max(row_mm, column_mm):
        return image
    if row_mm > column_mm:
        height = round(height * row_mm / column_mm)
    else:
        width = round(width * column_mm / row_mm)
    return image.resize((width, height), Image.Resampling.BILINEAR)


def _font(size: int = 14) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _colour_bar(height: int, scale: MapScale) -> Image.Image:
    """The bar with its ends (and zero), threshold marks, and its policy written upwards beside
    it, as a plotted colour bar's label is."""
    rows = scale.table[np.round(np.linspace(colormaps.SIZE - 1, 0, height)).astype(np.intp)]
    bar = Image.fromarray(np.ascontiguousarray(rows[:, np.newaxis, :].repeat(BAR_WIDTH, axis=1)))
    labelled = Image.new("RGB", (BAR_WIDTH + BAR_LABELS + BAR_TITLE, height + 2 * MARGIN), BACKGROUND)
    labelled.paste(bar, (0, MARGIN))
    draw = ImageDraw.Draw(labelled)
    font = _font(12)
    for fraction, text in scale.labels:
        draw.text(
            (BAR_WIDTH + 4, MARGIN - 6 + round((1 - fraction) * (height - 2))), text, fill=TEXT, font=font
        )
    for fraction in scale.marks:
        y = MARGIN + round((1 - fraction) * (height - 1))
        draw.line([(0, y), (BAR_WIDTH + 2, y)], fill=TEXT, width=1)
    title = Image.new("RGB", (round(draw.textlength(scale.policy, font=font)) + 2, BAR_TITLE), BACKGROUND)
    ImageDraw.Draw(title).text((1, 1), scale.policy, fill=TEXT, font=font)
    title = title.rotate(90, expand=True)
    labelled.paste(title, (BAR_WIDTH + BAR_LABELS, max(MARGIN, (labelled.height - title.height) // 2)))
    return labelled


def _with_legend(body: Image.Image, legend: Sequence[str]) -> Image.Image:
    font = _font(14)
    line_height = 18
    header = MARGIN + line_height * len(legend)
    figure = Image.new("RGB", (body.width + 2 * MARGIN, body.height + header + MARGIN), BACKGROUND)
    draw = ImageDraw.Draw(figure)
    for row, line in enumerate(legend):
        draw.text((MARGIN, MARGIN + row * line_height), line, fill=TEXT, font=font)
    figure.paste(body, (MARGIN, header))
    return figure


def triptych(
    grey: np.ndarray,
    heat: np.ndarray,
    *,
    scale: MapScale | None = None,
    spacing_yx: tuple[float, float] = (1.0, 1.0),
    legend: Sequence[str] = (),
) -> Image.Image:
    """The paper's figure: image | heat map | overlay, with a colour bar and a legend. `scale`
    (default: the slice's own range, as a map of one sign) is the viewer's, for the same look."""
    scale = scale or map_scale(finite_range(heat), False, OverlayStyle(scale="slice"))
    rgba = scale.rgba(heat)
    panels = [
        Image.fromarray(np.asarray(grey, dtype=np.uint8)).convert("RGB"),
        Image.fromarray(np.ascontiguousarray(rgba[..., :3])),
        Image.fromarray(overlay(grey, rgba)),
    ]
    panels = [_square_pixels(panel, spacing_yx) for panel in panels]
    width, height = panels[0].size
    bar = _colour_bar(height - 2 * MARGIN, scale)
    body = Image.new("RGB", (3 * width + 2 * MARGIN + MARGIN + bar.width, height), BACKGROUND)
    for k, panel in enumerate(panels):
        body.paste(panel, (k * (width + MARGIN), 0))
    body.paste(bar, (3 * width + 3 * MARGIN, 0))
    return _with_legend(body, legend)


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
    """Plain PNG: no text chunks, so no metadata rides along with the picture. Written
    atomically, never over `source` (the study it shows)."""
    path = Path(path)
    with atomic_write(path, source=source) as temporary:
        image.save(temporary, format="PNG")
    return path
