"""Localisation: does a map point at the lesion a reader marked? 2D and 3D, numpy only.

pointing_game (Zhang et al. 2018) asks whether the map's maximum lies in the reference mask or
within `tolerance_mm` of it; energy_inside (Wang et al. 2020, Score-CAM's energy-based pointing
game) is the share of the map's positive mass that falls inside the mask.

maps: (N, *spatial) or (N, *spatial, C) with the channels averaged; reference: a boolean mask
per sample (N, *spatial) (nonzero counts as inside), for a 2D image or a 3D volume alike. Both
give one float64 value per sample, NaN where the sample cannot be scored (an empty reference),
so that np.nanmean is the rate over the samples that count.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from medvis_desktop.metrics.base import MetricError

# The pointing game's tolerance. Zhang et al. allow 15 pixels on 224² ImageNet images; in a
# medical image a distance in mm means the same at any resolution, and 5 mm is the smallest
# lesion of the demo studies and the tolerance their recorded pointing games use.
TOLERANCE_MM = 5.0
# (peaks x reference voxels) distances computed at once: bounds the memory of a large mask.
_PAIRS_PER_CHUNK = 1 << 22


def pointing_game(
    maps: object,
    reference: object,
    spacing: Sequence[float],
    tolerance_mm: float = TOLERANCE_MM,
) -> np.ndarray:
    """Per sample 1.0 for a hit, 0.0 for a miss, NaN when the reference is empty (not counted).

    A hit: a voxel where the map takes its maximum lies within `tolerance_mm` of a voxel of the
    reference, by the Euclidean distance between voxel centres with `spacing` (mm per spatial
    axis, in the maps' axis order: (y, x) or (z, y, x)); tolerance 0 asks for the maximum inside
    the mask. Tied maxima: a hit when any of them is close enough, as in Quantus' PointingGame
    (a map that is flat on a plateau points at all of it). A constant map has no maximum to
    point with and counts as a miss, so maps that vanished (all-zero Grad-CAM) lower the rate
    instead of winning every game.
    """
    values, mask = _prepare(maps, reference)
    scale = _spacing(spacing, mask.ndim - 1)
    if (
        isinstance(tolerance_mm, bool)
        or not isinstance(tolerance_mm, numbers.Real)
        or not 0 <= tolerance_mm < math.inf
    ):
        raise MetricError(f"tolerance_mm must be a distance of 0 mm or more, not {tolerance_mm!r}.")
    hits = np.full(len(values), np.nan)
    for i, (heat, inside) in enumerate(zip(values, mask, strict=True)):
        if not inside.any():
            continue
        top = heat.max()
        if heat.min() == top:
            hits[i] = 0.0
            continue
        peaks = np.argwhere(heat == top) * scale
        cells = np.argwhere(inside) * scale
        hits[i] = float(_nearest_squared(peaks, cells) <= tolerance_mm**2)
    return hits


def energy_inside(maps: object, reference: object) -> np.ndarray:
    """Per sample Σ ReLU(map) inside the reference / Σ ReLU(map), in [0, 1].

    Only the positive part counts: a map's negative evidence is not energy pointing anywhere.
    NaN when the map has no positive mass (nothing to share out) or the reference is empty.
    """
    values, mask = _prepare(maps, reference)
    positive = np.maximum(values, 0.0).reshape(len(values), -1)
    total = positive.sum(axis=1)
    inside = np.where(mask.reshape(len(mask), -1), positive, 0.0).sum(axis=1)
    scored = (total > 0) & mask.reshape(len(mask), -1).any(axis=1)
    return np.where(scored, inside / np.where(scored, total, 1.0), np.nan)


def _prepare(maps: object, reference: object) -> tuple[np.ndarray, np.ndarray]:
    """Maps (N, *spatial) float64, channels averaged, and the mask (N, *spatial) bool."""
    try:
        values = np.asarray(maps, dtype=np.float64)
        mask = np.asarray(reference) != 0
    except (TypeError, ValueError) as error:
        raise MetricError(f"maps and reference must be numeric arrays: {error}") from error
    if values.size == 0:
        raise MetricError(f"maps are empty (shape {values.shape}): give at least one map.")
    if mask.ndim not in (3, 4):
        raise MetricError(
            f"reference has shape {mask.shape}; give one mask per sample, (N, H, W) for images "
            "or (N, D, H, W) for volumes."
        )
    if values.shape == (*mask.shape, values.shape[-1]):
        values = values.mean(axis=-1)
    elif values.shape != mask.shape:
        raise MetricError(
            f"maps have shape {values.shape} but the reference {mask.shape}: give one map per mask, "
            f"{mask.shape} or with channels {(*mask.shape, 'C')}, on the same grid (resize the maps "
            "to the reference's grid first)."
        )
    if not np.isfinite(values).all():
        raise MetricError("maps contain NaN or infinite values: score only the samples that were explained.")
    return values, mask


def _spacing(spacing: Sequence[float], rank: int) -> np.ndarray:
    try:
        scale = np.asarray(spacing, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise MetricError(f"spacing must be numbers (mm per axis): {error}") from error
    if scale.shape != (rank,) or not (np.isfinite(scale).all() and (scale > 0).all()):
        raise MetricError(
            f"spacing must be {rank} positive voxel sizes in mm, one per spatial axis of the maps, "
            f"not {spacing!r}."
        )
    return scale


def _nearest_squared(points: np.ndarray, cells: np.ndarray) -> float:
    """The smallest squared distance between a point and a cell (both (k, rank), in mm)."""
    chunk = max(1, _PAIRS_PER_CHUNK // len(cells))
    return min(
        float((((points[start : start + chunk, None] - cells[None]) ** 2).sum(axis=-1)).min())
        for start in range(0, len(points), chunk)
    )
