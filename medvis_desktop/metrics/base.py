"""What every metric shares: its error type, the checks of (model, inputs, maps, target), the
score it watches, and batched forward passes over perturbed copies of the inputs.

The score is the target's output as the model gives it (score="output": after its softmax or
sigmoid, what a reader of the model sees) or before them (score="logit", the score the
methods explain: explain/scores.py). For a segmentation output either is summed over the
region of `mask` (Seg-Grad-CAM), over the whole output without one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from medvis_desktop.errors import MedvisError
from medvis_desktop.explain.base import ExplainError, check_batch_size, check_inputs
from medvis_desktop.explain.graph import compiled
from medvis_desktop.explain.scores import Score, class_scores, score_for, score_tensors, target_scores

SCORES = ("output", "logit")
BATCH_SIZE = 32

# (samples, perturbations), both int (k,) -> bool (k, *spatial): the voxels of each perturbed
# copy that take the end image's values instead of the start image's.
Moved = Callable[[np.ndarray, np.ndarray], np.ndarray]


class MetricError(MedvisError):
    """A metric cannot run as asked (map shape, baseline, counts, score name, ...)."""


@contextlib.contextmanager
def metric_errors() -> Iterator[None]:
    """The methods' own checks (inputs, target, output, mask, batch size) report as MetricError
    here, so a caller of a metric has one error type to catch; the message is unchanged."""
    try:
        yield
    except ExplainError as error:
        raise MetricError(str(error)) from error


@dataclass(frozen=True)
class Problem:
    """A metric's checked arguments: made by `prepare`."""

    model: keras.Model
    batch: np.ndarray  # float32 (N, *spatial, C)
    maps: np.ndarray  # float64 (N, *spatial), channels averaged
    score: Score
    kind: str  # one of SCORES
    batch_size: int


def prepare(
    model: keras.Model,
    inputs: object,
    maps: object,
    target: int | Sequence[int],
    *,
    score: str = "output",
    output: int | str | None = None,
    mask: object = None,
    batch_size: int = BATCH_SIZE,
) -> Problem:
    """Check what every metric takes, with the inputs, target, output and mask as the methods
    take them."""
    if score not in SCORES:
        raise MetricError(
            f"score must be one of {', '.join(SCORES)} (the output as the model gives it, or the "
            f"logit before its softmax/sigmoid), not {score!r}."
        )
    with metric_errors():
        batch = check_inputs(model, inputs)
        check_batch_size(batch_size)
        scored = score_for(model, len(batch), target, output, mask)
    return Problem(model, batch, channel_mean(maps, batch.shape), scored, score, batch_size)


def channel_mean(maps: object, shape: tuple[int, ...]) -> np.ndarray:
    """One map per image (N, *spatial) in float64 from maps shaped (N, *spatial) or like the
    inputs (N, *spatial, C), whose channels are averaged."""
    count, *spatial = shape[:-1]
    try:
        values = np.asarray(maps, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise MetricError(f"maps must be a numeric array: {error}") from error
    if values.shape == shape:
        values = values.mean(axis=-1)
    elif values.shape != (count, *spatial):
        raise MetricError(
            f"maps have shape {values.shape}; for inputs of shape {shape} give one map per image "
            f"{(count, *spatial)} or one per channel {shape} (averaged). A map at a layer's "
            "resolution must be resized to the input's grid first (upsample=True)."
        )
    if not np.isfinite(values).all():
        raise MetricError("maps contain NaN or infinite values: a ranking of the voxels needs finite values.")
    return values


def check_count(value: object, name: str, meaning: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise MetricError(f"{name} must be a whole number of at least 1 ({meaning}), not {value!r}.")
    return int(value)


def perturbed_scores(
    problem: Problem, start: np.ndarray, end: np.ndarray, moved: Moved, perturbations: int
) -> np.ndarray:
    """The score (float64 (N, perturbations)) of each image's perturbed copies: copy p of image
    i is start[i] with the voxels moved(i, p) taken from end[i], all channels of a voxel
    together. The copies are built batch by batch, `batch_size` per forward pass."""
    count = len(problem.batch)
    scores = np.empty(count * perturbations, dtype=np.float64)
    for first in range(0, len(scores), problem.batch_size):
        items = np.arange(first, min(first + problem.batch_size, len(scores)))
        samples, places = items // perturbations, items % perturbations  # sample-major
        images = np.where(moved(samples, places)[..., None], end[samples], start[samples])
        scores[items] = score_batch(problem.model, images, problem.score.take(samples), problem.kind)
    return scores.reshape(count, perturbations)


def score_batch(model: keras.Model, images: np.ndarray, score: Score, kind: str) -> np.ndarray:
    """The score per image (N,) of one forward pass, compiled once per model and output."""
    with metric_errors():
        if kind == "logit":
            return target_scores(model, images, score)
        key = ("metric_output_scores", score.index)
        forward = compiled(model, key, lambda ref: _output_scores(ref, score.index))
        _, targets, region = score_tensors(score)
        return np.asarray(forward(tf.constant(images), targets, region), dtype=np.float32)


def _output_scores(model_ref: Callable[[], keras.Model], index: int) -> Callable:
    def forward(x: tf.Tensor, targets: tf.Tensor, region: tf.Tensor | None) -> tf.Tensor:
        outputs = keras.tree.flatten(model_ref()(x, training=False))[index]  # model.outputs order
        return class_scores(tf.cast(outputs, tf.float32), targets, region)

    return forward
