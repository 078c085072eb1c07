"""Grad-CAM (Selvaraju et al. 2017) and Seg-Grad-CAM for segmentation outputs, and the CAM
machinery every gradient-weighted CAM shares.

alpha_k = spatial mean of d score / d A_k, map = ReLU(sum_k alpha_k A_k), with the score taken
before the output softmax/sigmoid (explain/scores.py). A variant (Grad-CAM++, HiResCAM, ...)
is a `Weigh` function from the layer's activations A and gradients g to the map before the
ReLU, run inside the same compiled pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from medvis_desktop.arrays import resize_linear
from medvis_desktop.explain.base import ExplainError, Method, check_inputs, maps_only
from medvis_desktop.explain.graph import compiled, resolve, resolve_target
from medvis_desktop.explain.scores import score_for, score_tensors, scored_replay
from medvis_desktop.models.layers import has_spatial_output

# (A, g) -> map before the ReLU: A and g are float32 (N, *layer spatial, C), the map (N, *spatial).
Weigh = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def grad_cam_weigh(features: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
    """alpha_k = spatial mean of g_k; the map before the ReLU is sum_k alpha_k A_k."""
    alpha = tf.reduce_mean(grads, axis=spatial_axes(features), keepdims=True)
    return tf.reduce_sum(alpha * features, axis=-1)


def spatial_axes(features: tf.Tensor) -> list[int]:
    return list(range(1, features.shape.rank - 1))


def cam_method(name: str, label: str, weigh: Weigh, doc: str) -> Method:
    """The registry entry of a gradient-weighted CAM: its public function, named `name`, is
    run(model, inputs, layer, target, *, upsample=True, output=None, mask=None) -> (N, *spatial),
    and run_with_outputs also gives the model's outputs from the same pass."""

    def run_with_outputs(
        model: keras.Model,
        inputs: object,
        layer: str,
        target: int | Sequence[int],
        *,
        upsample: bool = True,
        output: int | str | None = None,
        mask: object = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        return cam_with_outputs(
            method, weigh, model, inputs, layer, target, upsample=upsample, output=output, mask=mask
        )

    run = maps_only(run_with_outputs, name, doc)
    run_with_outputs.__name__ = run_with_outputs.__qualname__ = f"{name}_with_outputs"
    run_with_outputs.__doc__ = (
        f"{name}, and the model's outputs (softmax/sigmoid applied) from the same pass."
    )
    method = Method(name, label, run, has_spatial_output, run_with_outputs=run_with_outputs)
    return method


def cam_with_outputs(
    method: Method,
    weigh: Weigh,
    model: keras.Model,
    inputs: object,
    layer: str,
    target: int | Sequence[int],
    *,
    upsample: bool = True,
    output: int | str | None = None,
    mask: object = None,
) -> tuple[np.ndarray, np.ndarray]:
    """ReLU(weigh(A, g)) at `layer` for the target's score, and the model's outputs, for
    `method` (its name keys the compiled pass, its label is in messages)."""
    batch = check_inputs(model, inputs)
    path = resolve_target(model, layer, has_spatial_output, method.label)
    score = score_for(model, len(batch), target, output, mask)
    key = (method.name, path.name, score.index)
    cam = compiled(model, key, lambda ref: _cam(ref, path.name, score.index, weigh))
    _, targets, region = score_tensors(score)
    maps, outputs = cam(tf.constant(batch), targets, region)
    maps = np.asarray(maps, dtype=np.float32)
    return (resize_linear(maps, batch.shape[1:-1]) if upsample else maps), np.asarray(outputs, np.float32)


def _cam(model_ref: Callable[[], keras.Model], layer: str, index: int, weigh: Weigh) -> Callable:
    def cam(x: tf.Tensor, targets: tf.Tensor, region: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
        model = model_ref()
        with tf.GradientTape() as tape:
            tape.watch(x)  # every op is recorded, whatever is trainable
            path = resolve(model, layer)
            features, scores, outputs = scored_replay(model, x, path, (index, targets, region))
            total = tf.reduce_sum(scores)
        grads = tape.gradient(total, features)
        if grads is None:
            raise ExplainError(f"The model's output {index} does not depend on layer '{layer}'.")
        features = tf.cast(features, tf.float32)
        return tf.nn.relu(weigh(features, tf.cast(grads, tf.float32))), outputs

    return cam


METHOD = cam_method(
    "grad_cam",
    "Grad-CAM",
    grad_cam_weigh,
    """Grad-CAM of class `target` at `layer`: (N, *spatial) of the input, or of the layer.

    target: a class index, or one per sample. output: which model output (index or name)
    when there are several. mask: for a segmentation output (N, *spatial, classes), a boolean
    region of the output's spatial shape (or one per sample); the score is the sum of the
    class's logits inside it (the whole image without a mask). The map is not normalised;
    upsample resizes it to the input's grid by linear interpolation along each axis with
    half-pixel centres (arrays.resize_linear: tf.image.resize(method="bilinear") in 2D).
    """,
)
grad_cam = METHOD.run
grad_cam_with_outputs = METHOD.run_with_outputs
