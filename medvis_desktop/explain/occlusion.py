"""Occlusion (Zeiler & Fergus 2014, §4.2): how much the target's score falls when a window of
the image is hidden, slid over every position. Model-agnostic, no gradients, one forward pass
per window position: the cost is the number of positions (see `window_boxes`). A window that
is already the baseline everywhere (air around the body with an air baseline, a mammogram's
zero background with 0) hides nothing: its drop is exactly 0 and it costs no pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import keras
import numpy as np

from medvis_desktop.explain.base import (
    BATCH_PARAM,
    ExplainError,
    Method,
    Param,
    ParamValue,
    check_batch_size,
    check_inputs,
)
from medvis_desktop.explain.scores import score_for, target_scores
from medvis_desktop.models.layers import has_spatial_output

LABEL = "Occlusion"
# Half-window steps: every voxel away from the border is covered by 2 windows per axis, which
# smooths the blocks; 31² = 961 positions on a 256² image, 7³ = 343 on 64³ (15³ on 128³).
WINDOW = 16
STRIDE = 8

Box = tuple[slice, ...]


def occlusion(
    model: keras.Model,
    inputs: object,
    target: int | Sequence[int],
    *,
    window: int | Sequence[int] = WINDOW,
    stride: int | Sequence[int] = STRIDE,
    baseline: float | np.ndarray = 0.0,
    batch_size: int = 32,
    output: int | str | None = None,
    mask: object = None,
) -> np.ndarray:
    """Occlusion map of class `target`, shaped like `inputs` (N, *spatial, C), signed.

    For each window position, drop = score(x) - score(x with the window set to `baseline`
    in every channel), the score taken before the output's softmax/sigmoid (explain/scores.py;
    for a segmentation output the sum of the class's logits inside `mask`, or everywhere).
    Each voxel gets the mean drop over the windows covering it, the same in all its channels;
    positive where hiding the voxel lowers the score.
    window, stride: voxels, one int for every spatial axis or one per axis. Windows start at
    0 and step by the stride; where the stride does not divide (size - window) a last window
    is added flush with the end, so every voxel is covered. The window may not exceed the
    input nor the stride the window (voxels no window covers would have no value).
    baseline: in the model's input units (after any normalisation the card applies), a number
    or an array broadcastable to one image (*spatial, C), e.g. one value per channel (C,).
    batch_size: occluded images per forward pass (memory against speed, same result).
    """
    batch = check_inputs(model, inputs)
    check_batch_size(batch_size)
    spatial = batch.shape[1:-1]
    boxes = window_boxes(spatial, window, stride)
    fill = baseline_image(baseline, batch.shape[1:])
    score = score_for(model, len(batch), target, output, mask)
    clean = target_scores(model, batch, score)
    covered = np.zeros(spatial, dtype=np.float64)
    for box in boxes:
        covered[box] += 1
    totals = np.zeros((len(batch), *spatial), dtype=np.float64)
    hides = [[not np.array_equal(image[box], fill[box]) for box in boxes] for image in batch]
    changed = np.flatnonzero(hides)  # sample-major; a window already at the baseline drops 0
    for start in range(0, len(changed), batch_size):
        items = changed[start : start + batch_size]
        samples, places = items // len(boxes), items % len(boxes)
        occluded = batch[samples]  # a copy, one per window position in this pass
        for image, place in zip(occluded, places, strict=True):
            image[boxes[place]] = fill[boxes[place]]
        drops = clean[samples] - target_scores(model, occluded, score.take(samples))
        for sample, place, drop in zip(samples, places, drops, strict=True):
            totals[sample][boxes[place]] += drop
    maps = (totals / covered).astype(np.float32)
    return np.repeat(maps[..., None], batch.shape[-1], axis=-1)


def window_boxes(spatial: Sequence[int], window: object, stride: object) -> list[Box]:
    """The window positions over an input of shape `spatial`, as slices, in raster order."""
    sizes = per_axis(window, "window", len(spatial))
    steps = per_axis(stride, "stride", len(spatial))
    starts = []
    for axis, (size, length, step) in enumerate(zip(spatial, sizes, steps, strict=True)):
        if length > size:
            raise ExplainError(
                f"The occlusion window ({length} voxels) is larger than the input along axis {axis} "
                f"(input {' × '.join(map(str, spatial))}): choose a window of at most {size} voxels "
                "there (one size per axis if the axes differ)."
            )
        if step > length:
            raise ExplainError(
                f"The stride ({step}) is larger than the window ({length}) along axis {axis}: voxels "
                "between windows would have no value. Choose a stride of at most the window."
            )
        axis_starts = list(range(0, size - length + 1, step))
        if axis_starts[-1] != size - length:
            axis_starts.append(size - length)  # flush with the end
        starts.append([slice(first, first + length) for first in axis_starts])
    return list(itertools.product(*starts))


def per_axis(value: object, name: str, rank: int) -> tuple[int, ...]:
    """One positive int per spatial axis from an int or a sequence of `rank` ints."""
    values = tuple(value) if isinstance(value, Sequence) else (value,) * rank
    whole = all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values)
    if len(values) != rank or not whole or min(values) < 1:
        raise ExplainError(
            f"{name} must be a whole number of voxels of at least 1, or one per spatial axis "
            f"({rank}), not {value!r}."
        )
    return tuple(int(v) for v in values)


def baseline_image(baseline: object, image: tuple[int, ...]) -> np.ndarray:
    """`baseline` as one image (*spatial, C), or an error saying what shapes fit."""
    try:
        return np.broadcast_to(np.asarray(baseline, dtype=np.float32), image)
    except (TypeError, ValueError):
        raise ExplainError(
            f"baseline has shape {np.shape(baseline)}: give a number or an array that broadcasts to "
            f"one image {image} (spatial axes, then channels), e.g. one value per channel ({image[-1]},)."
        ) from None


def _cost(params: Mapping[str, ParamValue], spatial: tuple[int, ...], channels: int) -> int:
    """At most one pass per window position, and one for the unoccluded image."""
    return len(window_boxes(spatial, params["window"], params["stride"])) + 1


METHOD = Method(
    name="occlusion",
    label=LABEL,
    run=occlusion,
    can_target=has_spatial_output,  # unused: occlusion takes no layer
    kind="attribution",
    uses_layer=False,
    params=(
        Param(
            "window",
            "Window",
            WINDOW,
            minimum=1,
            unit="voxels",
            help="edge of the hidden cube (square in 2D); larger finds larger structures",
        ),
        Param(
            "stride",
            "Stride",
            STRIDE,
            minimum=1,
            unit="voxels",
            help="step between windows, at most the window; the cost grows as 1/stride per axis",
        ),
        Param(
            "baseline",
            "Baseline",
            0.0,
            help="value the window is set to, in the model's input units (0: the mean of z-scored inputs)",
        ),
        BATCH_PARAM,
    ),
    cost=_cost,
)
