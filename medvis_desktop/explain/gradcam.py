"""Grad-CAM (Selvaraju et al. 2017) and Seg-Grad-CAM for segmentation outputs.

alpha_k = spatial mean of d score / d A_k, map = ReLU(sum_k alpha_k A_k), with the score taken
before the output softmax/sigmoid: a saturated softmax has near-zero gradients everywhere.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from medvis_desktop.arrays import resize_linear
from medvis_desktop.explain.base import ExplainError, Method, check_inputs
from medvis_desktop.explain.graph import (
    call_with_activation,
    compiled,
    plain_call,
    replay,
    resolve,
    resolve_target,
)
from medvis_desktop.models.layers import has_spatial_output, layer_activation


def grad_cam(
    model: keras.Model,
    inputs: object,
    layer: str,
    target: int | Sequence[int],
    *,
    upsample: bool = True,
    output: int | str | None = None,
    mask: object = None,
) -> np.ndarray:
    """Grad-CAM of class `target` at `layer`: (N, *spatial) of the input, or of the layer.

    target: a class index, or one per sample. output: which model output (index or name)
    when there are several. mask: for a segmentation output (N, *spatial, classes), a boolean
    region of the output's spatial shape (or one per sample); the score is the sum of the
    class's logits inside it (the whole image without a mask). The map is not normalised;
    upsample resizes it to the input's grid by linear interpolation along each axis with
    half-pixel centres (arrays.resize_linear: tf.image.resize(method="bilinear") in 2D).
    """
    return grad_cam_with_outputs(model, inputs, layer, target, upsample=upsample, output=output, mask=mask)[0]


def grad_cam_with_outputs(
    model: keras.Model,
    inputs: object,
    layer: str,
    target: int | Sequence[int],
    *,
    upsample: bool = True,
    output: int | str | None = None,
    mask: object = None,
) -> tuple[np.ndarray, np.ndarray]:
    """grad_cam, and the model's output for the batch as the model gives it (its softmax or
    sigmoid applied) from the same pass: a viewer needs the scores too, and a second forward
    pass would cost nearly as much as Grad-CAM itself."""
    batch = check_inputs(model, inputs)
    path = resolve_target(model, layer, has_spatial_output, "Grad-CAM")
    index = _output_index(model, output)
    output_shape = tuple(model.outputs[index].shape)
    targets = _targets(target, len(batch), output_shape[-1])
    region = None if mask is None else tf.constant(_region(mask, len(batch), output_shape))
    cam = compiled(model, ("grad_cam", path.name, index), lambda ref: _grad_cam(ref, path.name, index))
    maps, outputs = cam(tf.constant(batch), tf.constant(targets), region)
    maps = np.asarray(maps, dtype=np.float32)
    return (resize_linear(maps, batch.shape[1:-1]) if upsample else maps), np.asarray(outputs, np.float32)


def _grad_cam(model_ref: Callable[[], keras.Model], layer: str, index: int) -> Callable:
    def cam(x: tf.Tensor, targets: tf.Tensor, region: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
        model = model_ref()
        logits_of: dict[int, tf.Tensor] = {}
        with tf.GradientTape() as tape:
            tape.watch(x)  # every op is recorded, whatever is trainable
            features, outputs = replay(
                model, x, resolve(model, layer), call=functools.partial(_logits_call, logits_of)
            )
            logits = tf.cast(logits_of.get(id(outputs[index]), outputs[index]), tf.float32)
            classes = tf.one_hot(targets, logits.shape[-1])  # (N, K)
            classes = tf.reshape(classes, [-1] + [1] * (logits.shape.rank - 2) + [logits.shape[-1]])
            scores = tf.reduce_sum(logits * classes, axis=-1)  # (N,) or (N, *output spatial)
            if region is not None:
                scores *= region
            score = tf.reduce_sum(scores)  # samples are independent: one gradient for all
        grads = tape.gradient(score, features)
        if grads is None:
            raise ExplainError(f"The model's output {index} does not depend on layer '{layer}'.")
        features = tf.cast(features, tf.float32)
        spatial_axes = list(range(1, features.shape.rank - 1))
        alpha = tf.reduce_mean(tf.cast(grads, tf.float32), axis=spatial_axes, keepdims=True)
        as_model = tf.cast(outputs[index], tf.float32)
        return tf.nn.relu(tf.reduce_sum(alpha * features, axis=-1)), as_model

    return cam


def _logits_call(
    logits_of: dict[int, tf.Tensor], layer: keras.layers.Layer, args: tuple, kwargs: dict, at_output: bool
):
    """The layer as the model runs it, but where a softmax/sigmoid produces a model output, the
    logits before it are kept in `logits_of` (by the output tensor's id): the score to explain
    is the logit, while later layers, and the outputs returned, see what the model computes."""
    if at_output and layer_activation(layer) in ("softmax", "sigmoid"):
        logits = call_with_activation(layer, keras.activations.linear, args, kwargs)
        squash = layer if isinstance(layer, keras.layers.Softmax) else layer.activation
        probabilities = squash(logits)
        logits_of[id(probabilities)] = logits
        return probabilities
    return plain_call(layer, args, kwargs, at_output)


def _output_index(model: keras.Model, output: int | str | None) -> int:
    count = len(model.outputs)
    names = list(getattr(model, "output_names", None) or [model.layers[-1].name])  # Sequential has none
    if output is None:
        if count > 1:
            raise ExplainError(
                f"Model '{model.name}' has {count} outputs ({', '.join(names)}): "
                "choose one with output=<index or name>."
            )
        return 0
    if isinstance(output, str):
        if output not in names:
            raise ExplainError(f"No output '{output}'; the outputs are: {', '.join(names)}.")
        return names.index(output)
    if not 0 <= output < count:
        raise ExplainError(f"Output index {output} is out of range: the model has {count} outputs.")
    return output


def _targets(target: int | Sequence[int], count: int, classes: int | None) -> np.ndarray:
    """One class index per sample, checked against the number of classes."""
    values = np.asarray(target)
    if values.ndim == 0:
        values = np.full(count, values)
    if values.shape != (count,) or not np.issubdtype(values.dtype, np.integer):
        raise ExplainError(f"target must be a class index or one index per sample ({count}), got {target!r}.")
    limit = classes if classes is not None else np.iinfo(np.int32).max
    bad = values[(values < 0) | (values >= limit)]
    if bad.size:
        raise ExplainError(
            f"target class {int(bad[0])} is out of range: the output has {classes} classes "
            f"(0 to {limit - 1})."
        )
    return values.astype(np.int32)


def _region(mask: object, count: int, output_shape: tuple[int | None, ...]) -> np.ndarray:
    """The Seg-Grad-CAM region as float (N, *output spatial): 1 inside, 0 outside."""
    spatial = output_shape[1:-1]
    if not spatial:
        raise ExplainError(
            f"mask only applies to segmentation outputs (N, *spatial, classes); this output "
            f"has shape {output_shape}."
        )
    region = np.asarray(mask).astype(bool)
    if region.ndim == len(spatial):
        region = np.broadcast_to(region, (count, *region.shape))
    fits = (
        region.ndim == len(spatial) + 1
        and region.shape[0] == count
        and all(want is None or want == got for want, got in zip(spatial, region.shape[1:], strict=True))
    )
    if not fits:
        raise ExplainError(
            f"mask has shape {np.shape(mask)}; it must match the output's spatial shape "
            f"{spatial}, optionally with the batch ({count}) first."
        )
    if not region.any():
        raise ExplainError("mask is empty: mark at least one pixel of the region to explain.")
    return region.astype(np.float32)


METHOD = Method(name="grad_cam", label="Grad-CAM", run=grad_cam, can_target=has_spatial_output)
