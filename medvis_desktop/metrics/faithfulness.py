"""Faithfulness: does the model's score depend on the voxels a map says matter?

Deletion and insertion (Petsiuk et al. 2018, RISE) move voxels between the input and a
baseline in the order the map ranks them; MuFidelity (Bhatt et al. 2020) sets random grid
cells to the baseline and correlates the score's drop with the map's sum over those cells.
Every metric takes (model, inputs, maps, target, ...) with inputs, target, output and mask as
the methods take them, maps (N, *spatial) or (N, *spatial, C) with the channels averaged, and
a score that is the target's output after the model's softmax/sigmoid (score="output") or
before it (score="logit"), summed over `mask` for segmentation outputs (metrics/base.py).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np

from medvis_desktop.metrics.base import (
    BATCH_SIZE,
    MetricError,
    Problem,
    check_count,
    perturbed_scores,
    prepare,
)

BLUR = "blur"
# Petsiuk et al.'s code blurs with nsig=5 (on 224² images, with an 11-pixel kernel).
SIGMA = 5.0
TRUNCATE = 4.0  # the Gaussian kernel ends at 4 sigma, as scipy.ndimage.gaussian_filter's


@dataclass(frozen=True)
class Curve:
    """A deletion or insertion curve per image, and the area under it."""

    curve: np.ndarray  # float64 (N, steps + 1): the score at steps 0..steps
    auc: np.ndarray  # float64 (N,): mean((s[:-1] + s[1:]) / 2), the trapezoid rule on [0, 1]


def deletion(
    model: keras.Model,
    inputs: object,
    maps: object,
    target: int | Sequence[int],
    *,
    steps: int = 10,
    baseline: float | np.ndarray | str = 0.0,
    sigma: float = SIGMA,
    score: str = "output",
    batch_size: int = BATCH_SIZE,
    output: int | str | None = None,
    mask: object = None,
) -> Curve:
    """The score as the voxels the map ranks highest are set to the baseline (lower AUC: more
    faithful). Step 0 is the input, step `steps` the baseline.

    Voxels are ranked by the map, highest first; ties keep raster order (C order over the
    spatial axes: np.argsort(-map, kind="stable")), so a flat map moves the first rows first.
    At step k the first floor(k·n/steps) of the n voxels have moved, all channels of a voxel
    together. The AUC is the trapezoid rule on equally spaced steps over [0, 1].
    baseline: a number, an array that broadcasts to the inputs (one image (*spatial, C), one
    value per channel (C,), or one image per input), in the model's input units; or "blur",
    each input blurred by `gaussian_blur` with `sigma` (voxels, the same on every axis).
    score, output, mask: the target's score (module docstring). Curve and AUC are float64.
    steps + 1 scored images per input, `batch_size` per forward pass (memory, not result).
    """
    problem = prepare(
        model, inputs, maps, target, score=score, output=output, mask=mask, batch_size=batch_size
    )
    return _curve(problem, baseline, sigma, steps, delete=True)


def insertion(
    model: keras.Model,
    inputs: object,
    maps: object,
    target: int | Sequence[int],
    *,
    steps: int = 10,
    baseline: float | np.ndarray | str = 0.0,
    sigma: float = SIGMA,
    score: str = "output",
    batch_size: int = BATCH_SIZE,
    output: int | str | None = None,
    mask: object = None,
) -> Curve:
    """The score as the voxels the map ranks highest are revealed from a baseline image
    (higher AUC: more faithful). Step 0 is the baseline, step `steps` the input; the rest as
    in `deletion`."""
    problem = prepare(
        model, inputs, maps, target, score=score, output=output, mask=mask, batch_size=batch_size
    )
    return _curve(problem, baseline, sigma, steps, delete=False)


def _curve(problem: Problem, baseline: object, sigma: float, steps: int, *, delete: bool) -> Curve:
    """Move the voxels in the map's order, from the input to the baseline (`delete`) or back."""
    steps = check_count(steps, "steps", "points of the curve after the first")
    fill = baseline_images(baseline, problem.batch, sigma)
    start, end = (problem.batch, fill) if delete else (fill, problem.batch)
    spatial = problem.batch.shape[1:-1]
    count = math.prod(spatial)
    order = np.argsort(-problem.maps.reshape(len(problem.maps), count), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(count)[None], axis=1)  # 0: the highest voxel
    moving = np.arange(steps + 1) * count // steps  # floor(k·n/steps), exactly

    def moved(samples: np.ndarray, step: np.ndarray) -> np.ndarray:
        return (ranks[samples] < moving[step, None]).reshape(len(samples), *spatial)

    curve = perturbed_scores(problem, start, end, moved, steps + 1)
    return Curve(curve, ((curve[:, :-1] + curve[:, 1:]) / 2).mean(axis=1))


def mu_fidelity(
    model: keras.Model,
    inputs: object,
    maps: object,
    target: int | Sequence[int],
    *,
    grid: int = 9,
    subset: float = 0.2,
    samples: int = 128,
    baseline: float | np.ndarray | str = 0.0,
    sigma: float = SIGMA,
    seed: int = 0,
    score: str = "output",
    batch_size: int = BATCH_SIZE,
    output: int | str | None = None,
    mask: object = None,
) -> np.ndarray:
    """MuFidelity per image (N,): the Spearman correlation, over `samples` random subsets S of
    grid cells, between score(x) − score(x with S set to the baseline) and the map's sum
    over S (1: the map predicts every drop's rank).

    Each spatial axis of L voxels is cut into `grid` cells, voxel i in cell
    floor((i + 0.5)·grid / L) (nearest-neighbour upsampling of the grid with half-pixel
    centres, as Xplique's; on an axis shorter than grid some cells are empty, and grid may
    not exceed the longest axis). Each cell is in S with
    probability `subset`, independently (Bhatt et al.; Xplique takes a fixed count); the
    subsets come from np.random.default_rng(seed).random((samples, cells)) < subset, the same
    for every image, so an image's result depends neither on the batch nor on batch_size.
    Ranks average their ties, as scipy.stats.spearmanr's; NaN where the drops or the sums are
    all equal (a zero map). Baseline as in `deletion`. samples + 1 scored images per input.
    """
    problem = prepare(
        model, inputs, maps, target, score=score, output=output, mask=mask, batch_size=batch_size
    )
    grid = check_count(grid, "grid", "cells along each spatial axis")
    samples = check_count(samples, "samples", "random subsets of cells")
    if isinstance(subset, bool) or not isinstance(subset, numbers.Real) or not 0 < subset < 1:
        raise MetricError(
            f"subset must lie strictly between 0 and 1 (the chance of each cell to be set to the "
            f"baseline), not {subset!r}."
        )
    spatial = problem.batch.shape[1:-1]
    if grid > max(spatial):
        raise MetricError(
            f"grid ({grid}) is larger than the input ({' × '.join(map(str, spatial))}): choose at most "
            f"{max(spatial)} cells along each axis (a cell is at least one voxel)."
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise MetricError(f"seed must be a whole number of 0 or more (it fixes the subsets), not {seed!r}.")
    fill = baseline_images(baseline, problem.batch, sigma)
    cells = grid_cells(spatial, grid)
    chosen = np.random.default_rng(seed).random((samples, grid ** len(spatial))) < subset
    masks = np.concatenate([np.zeros_like(chosen[:1]), chosen])  # copy 0: the input itself

    def moved(images: np.ndarray, copies: np.ndarray) -> np.ndarray:
        return masks[copies][:, cells].reshape(len(images), *spatial)

    scores = perturbed_scores(problem, problem.batch, fill, moved, samples + 1)
    drops = scores[:, :1] - scores[:, 1:]
    flat = problem.maps.reshape(len(problem.maps), -1)
    cell_sums = np.stack([np.bincount(cells, weights=m, minlength=chosen.shape[1]) for m in flat])
    return spearman(drops, cell_sums @ chosen.T)


def grid_cells(spatial: Sequence[int], grid: int) -> np.ndarray:
    """The cell (raster index over grid**rank cells) of every voxel, flattened in C order."""
    per_axis = [((np.arange(size) + 0.5) * grid / size).astype(np.intp) for size in spatial]
    return np.ravel_multi_index(np.meshgrid(*per_axis, indexing="ij"), (grid,) * len(spatial)).ravel()


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's correlation of the rows of a and b (N, M), ties given their average rank."""
    ranks_a, ranks_b = average_ranks(a), average_ranks(b)
    ranks_a -= ranks_a.mean(axis=1, keepdims=True)
    ranks_b -= ranks_b.mean(axis=1, keepdims=True)
    norms = np.sqrt((ranks_a**2).sum(axis=1) * (ranks_b**2).sum(axis=1))
    products = (ranks_a * ranks_b).sum(axis=1)
    return np.where(norms > 0, products / np.where(norms > 0, norms, 1), np.nan)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks (0-based, float64) along the rows of (N, M); equal values share their mean rank."""
    ranks = np.empty(values.shape, dtype=np.float64)
    for row, value in zip(ranks, values, strict=True):
        order = np.argsort(value, kind="stable")
        ordered = value[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], len(ordered)]
        row[order] = np.repeat((starts + ends - 1) / 2, ends - starts)
    return ranks


def baseline_images(baseline: object, batch: np.ndarray, sigma: float) -> np.ndarray:
    """The baseline of every input, shaped like the batch (see `deletion`)."""
    if isinstance(baseline, str):
        if baseline != BLUR:
            raise MetricError(f"baseline must be a number, an array or '{BLUR}', not {baseline!r}.")
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 < sigma < math.inf:
            raise MetricError(f"sigma must be a positive number of voxels (the blur's width), not {sigma!r}.")
        return gaussian_blur(batch, sigma)
    try:
        return np.broadcast_to(np.asarray(baseline, dtype=np.float32), batch.shape)
    except (TypeError, ValueError):
        raise MetricError(
            f"baseline has shape {np.shape(baseline)}: give a number, '{BLUR}', or an array that broadcasts "
            f"to the inputs {batch.shape}: one image {batch.shape[1:]}, one value per channel "
            f"({batch.shape[-1]},), or one image per input."
        ) from None


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Each image of (N, *spatial, C) blurred along its spatial axes, channel by channel.

    The numbers of scipy.ndimage.gaussian_filter(image, (0, sigma, ..., 0), mode="reflect",
    truncate=4), up to float rounding (scipy is not a dependency): a separable kernel exp(−x²/2σ²) on the
    integers |x| ≤ round(4σ), normalised to sum 1, with borders mirrored including the edge
    voxel (d c b a | a b c d; np.pad mode="symmetric").
    """
    radius = int(TRUNCATE * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    result = np.asarray(images, dtype=np.float64)
    for axis in range(1, result.ndim - 1):
        moved = np.moveaxis(result, axis, 0)
        padded = np.pad(moved, [(radius, radius)] + [(0, 0)] * (moved.ndim - 1), mode="symmetric")
        size = moved.shape[0]
        blurred = sum(weight * padded[shift : shift + size] for shift, weight in enumerate(kernel))
        result = np.moveaxis(blurred, 0, axis)
    return result.astype(np.float32)
