"""Saliency by the gradient (Simonyan et al. 2014) and input × gradient (Shrikumar et al. 2016).

Both explain the target's score before the output softmax/sigmoid (explain/scores.py): a
saturated softmax has a near-zero gradient everywhere. The maps are shaped like the inputs
(N, *spatial, C), float32, signed and not normalised. Also here, for the methods built on
many gradients (integrated gradients, SmoothGrad): the weighted sum of the attributions of
images derived from each sample, computed a bounded batch at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np

from medvis_desktop.explain.base import Method, check_inputs, maps_only
from medvis_desktop.explain.scores import Score, input_gradients, score_for
from medvis_desktop.models.layers import has_spatial_output

# (model, batch, its score) -> attributions shaped like the batch.
Attribute = Callable[[keras.Model, np.ndarray, Score], np.ndarray]
# (sample of each row, derived image of each row) -> those images (rows, *spatial, C).
Derive = Callable[[np.ndarray, np.ndarray], np.ndarray]


def gradient_with_outputs(
    model: keras.Model,
    inputs: object,
    target: int | Sequence[int],
    *,
    output: int | str | None = None,
    mask: object = None,
) -> tuple[np.ndarray, np.ndarray]:
    """gradient, and the model's outputs (softmax/sigmoid applied) from the same pass."""
    batch = check_inputs(model, inputs)
    return input_gradients(model, batch, score_for(model, len(batch), target, output, mask))


def input_x_gradient_with_outputs(
    model: keras.Model,
    inputs: object,
    target: int | Sequence[int],
    *,
    output: int | str | None = None,
    mask: object = None,
) -> tuple[np.ndarray, np.ndarray]:
    """input_x_gradient, and the model's outputs (softmax/sigmoid applied) from the same pass."""
    batch = check_inputs(model, inputs)
    grads, outputs = gradient_with_outputs(model, batch, target, output=output, mask=mask)
    return batch * grads, outputs


gradient = maps_only(
    gradient_with_outputs,
    "gradient",
    """d score / d input: how the target's logit changes with each input value.

    target: a class index, or one per sample. output: which model output (index or name)
    when there are several. mask: for a segmentation output, the region (output's spatial
    shape, or one per sample) whose logits of the class are summed into the score.
    """,
)
input_x_gradient = maps_only(
    input_x_gradient_with_outputs,
    "input_x_gradient",
    """inputs × gradient: the first-order contribution of each input value against a zero
    input (so it depends on what 0 means in model-input units). Arguments as `gradient`.""",
)


def plain_gradient(model: keras.Model, batch: np.ndarray, score: Score) -> np.ndarray:
    """The gradient as an `Attribute`, for methods that average gradients."""
    return input_gradients(model, batch, score)[0]


def weighted_sum(
    model: keras.Model,
    batch: np.ndarray,
    score: Score,
    *,
    attribute: Attribute,
    derive: Derive,
    weights: np.ndarray,
    batch_size: int,
) -> np.ndarray:
    """Σ_k weights[k] × attribute(image k derived from sample n), per sample n.

    The N × len(weights) derived images are made and explained batch_size at a time, in
    sample-major order (all of sample 0's, then sample 1's...), so memory stays bounded for
    3D and `derive` may draw random numbers in a reproducible order."""
    count = len(weights)
    total = np.zeros_like(batch)
    for start in range(0, len(batch) * count, batch_size):
        rows, ks = np.divmod(np.arange(start, min(start + batch_size, len(batch) * count)), count)
        values = attribute(model, derive(rows, ks), score.take(rows))
        values = values * weights[ks].reshape(-1, *[1] * (batch.ndim - 1)).astype(np.float32)
        for n in np.unique(rows):
            total[n] += values[rows == n].sum(axis=0)
    return total


GRADIENT = Method(
    name="gradient",
    label="Gradient",
    run=gradient,
    can_target=has_spatial_output,
    kind="attribution",
    uses_layer=False,
    run_with_outputs=gradient_with_outputs,
)
INPUT_X_GRADIENT = Method(
    name="input_x_gradient",
    label="Input × gradient",
    run=input_x_gradient,
    can_target=has_spatial_output,
    kind="attribution",
    uses_layer=False,
    run_with_outputs=input_x_gradient_with_outputs,
)
METHODS = (GRADIENT, INPUT_X_GRADIENT)
