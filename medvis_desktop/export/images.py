"""PNG figures: the paper's triptych (image | heat map | overlay) and activation grids.

Pillow only, no Qt, so the CLI and batch scripts make the same figures as the GUI. Pixels are
made square in millimetres, so anatomy keeps its true proportions. Nothing identifying the
patient is drawn unless the caller passes it in `legend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class OverlayStyle:
    """How a heat map is laid over the image: the GUI's overlay settings, for exports."""

    colormap: str = "turbo"
    opacity: float = 0.5
    # Map values (after scaling to 0–1) below this are not drawn.
    threshold: float = 0.2


def short_number(value: float) -> str:
    """A map value in a few characters (0.25, 130, 1.2e-04): tiny gradients stay legible."""
    if value == 0 or 1e-2 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return f"{value:.1e}"


def finite_range(values: np.ndarray) -> tuple[float, float]:
    """The finite values' min and max; (0, 1) when there are none (a map not computed yet)."""
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)


def normalise(values: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Scale to 0–1 over `value_range` (default: finite_range); NaN stays NaN."""
    values = np.asarray(values, dtype=np.float32)
    low, high = finite_range(values) if value_range is None else value_range
    return np.clip((values - low) / max(high - low, 1e-12), 0.0, 1.0)


def overlay(grey: np.ndarray, heat: np.ndarray, style: OverlayStyle) -> np.ndarray:
    """RGB (y, x, 3) uint8: `heat` (0–1) coloured and blended over `grey` (uint8)."""
    base = np.repeat(np.asarray(grey, dtype=np.float32)[..., np.newaxis], 3, axis=-1)
    colour = colormaps.apply(heat, style.colormap).astype(np.float32)
    shown = (np.nan_to_num(heat, nan=0.0) >= style.threshold)[..., np.newaxis]
    blended = np.where(shown, (1 - style.opacity) * base + style.opacity * colour, base)
    return np.round(blended).astype(np.uint8)


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


def _colour_bar(height: int, style: OverlayStyle, value_range: tuple[float, float]) -> Image.Image:
    ramp = np.linspace(1.0, 0.0, height)[:, np.newaxis].repeat(BAR_WIDTH, axis=1)
    bar = Image.fromarray(colormaps.apply(ramp, style.colormap))
    labelled = Image.new("RGB", (BAR_WIDTH + 70, height + 2 * MARGIN), BACKGROUND)
    labelled.paste(bar, (0, MARGIN))
    draw = ImageDraw.Draw(labelled)
    font = _font(12)
    draw.text((BAR_WIDTH + 4, MARGIN - 6), short_number(value_range[1]), fill=TEXT, font=font)
    draw.text((BAR_WIDTH + 4, MARGIN + height - 8), short_number(value_range[0]), fill=TEXT, font=font)
    threshold_y = MARGIN + round((1 - style.threshold) * (height - 1))
    draw.line([(0, threshold_y), (BAR_WIDTH + 2, threshold_y)], fill=TEXT, width=1)
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
    style: OverlayStyle = OverlayStyle(),
    spacing_yx: tuple[float, float] = (1.0, 1.0),
    value_range: tuple[float, float] | None = None,
    legend: Sequence[str] = (),
) -> Image.Image:
    """The paper's figure: image | heat map | overlay, with a colour bar and a legend."""
    value_range = value_range or finite_range(heat)
    scaled = normalise(heat, value_range)
    panels = [
        Image.fromarray(np.asarray(grey, dtype=np.uint8)).convert("RGB"),
        Image.fromarray(colormaps.apply(scaled, style.colormap)),
        Image.fromarray(overlay(grey, scaled, style)),
    ]
    panels = [_square_pixels(panel, spacing_yx) for panel in panels]
    width, height = panels[0].size
    bar = _colour_bar(height - 2 * MARGIN, style, value_range)
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
