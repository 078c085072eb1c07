"""The score a method explains: one class of one model output, before its softmax or sigmoid.

Every gradient method differentiates the same thing, so it is written once: the target's
logit per sample (a saturated softmax has near-zero gradients everywhere), summed over a
region for segmentation outputs (Seg-Grad-CAM), and the model's outputs as the model gives
them from the same pass, so a viewer gets the scores without a second forward pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from medvis_desktop.explain.base import ExplainError
from medvis_desktop.explain.graph import (
    LayerCall,
    LayerPath,
    call_with_activation,
    compiled,
    plain_call,
    replay,
)
from medvis_desktop.models.layers import layer_activation


@dataclass(frozen=True)
class Score:
    """Which score to explain, checked against the model: made by `score_for`."""

    index: int  # the model output
    targets: np.ndarray  # int32 (N,): one class per sample
    region: np.ndarray | None  # float32 (N, *output spatial), 1 inside; None: no mask

    def take(self, samples: np.ndarray) -> Score:
        """The score for a batch made of these samples' (perturbed) copies."""
        region = None if self.region is None else self.region[samples]
        return Score(self.index, self.targets[samples], region)


def score_for(
    model: keras.Model,
    count: int,
    target: int | Sequence[int],
    output: int | str | None = None,
    mask: object = None,
) -> Score:
    """The score of `target` on `output` (restricted to `mask`) for a batch of `count`."""
    index = output_index(model, output)
    shape = tuple(model.outputs[index].shape)
    region = None if mask is None else segmentation_region(mask, count, shape)
    return Score(index, class_targets(target, count, shape[-1]), region)


def scored_replay(
    model: keras.Model,
    x: tf.Tensor,
    path: LayerPath | None,
    score: tuple[int, tf.Tensor, tf.Tensor | None],
    call: LayerCall = plain_call,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Replay `model` on `x` (inside a tape): (the layer's activation, the score per sample
    (N,), the output as the model gives it). `score` is (output index, targets, region) as
    tensors; `call` runs every layer but the output's softmax/sigmoid, which is taken off.
    Samples are independent, so the gradient of the scores' sum is every sample's own."""
    index, targets, region = score
    logits_of: dict[int, tf.Tensor] = {}
    features, outputs = replay(model, x, path, call=functools.partial(_logits_call, logits_of, call))
    logits = tf.cast(logits_of.get(id(outputs[index]), outputs[index]), tf.float32)
    return features, class_scores(logits, targets, region), tf.cast(outputs[index], tf.float32)


def class_scores(values: tf.Tensor, targets: tf.Tensor, region: tf.Tensor | None) -> tf.Tensor:
    """Each sample's value for its target class (N,): summed over `region`, or over the whole
    output, when the output is a segmentation (N, *spatial, classes)."""
    classes = tf.one_hot(targets, values.shape[-1])
    classes = tf.reshape(classes, [-1] + [1] * (values.shape.rank - 2) + [values.shape[-1]])
    scores = tf.reduce_sum(values * classes, axis=-1)
    if region is not None:
        scores *= region
    return tf.reduce_sum(tf.reshape(scores, [tf.shape(scores)[0], -1]), axis=1)


def score_tensors(score: Score) -> tuple[int, tf.Tensor, tf.Tensor | None]:
    region = None if score.region is None else tf.constant(score.region)
    return score.index, tf.constant(score.targets), region


def _logits_call(
    logits_of: dict[int, tf.Tensor],
    inner: LayerCall,
    layer: keras.layers.Layer,
    args: tuple,
    kwargs: dict,
    at_output: bool,
):
    """The layer as `inner` runs it, but where a softmax/sigmoid produces a model output, the
    logits before it are kept in `logits_of` (by the output tensor's id): the score to explain
    is the logit, while later layers, and the outputs returned, see what the model computes."""
    if at_output and layer_activation(layer) in ("softmax", "sigmoid"):
        logits = call_with_activation(layer, keras.activations.linear, args, kwargs)
        squash = layer if isinstance(layer, keras.layers.Softmax) else layer.activation
        probabilities = squash(logits)
        logits_of[id(probabilities)] = logits
        return probabilities
    return inner(layer, args, kwargs, at_output)


def output_index(model: keras.Model, output: int | str | None) -> int:
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


def class_targets(target: int | Sequence[int], count: int, classes: int | None) -> np.ndarray:
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


def segmentation_region(mask: object, count: int, output_shape: tuple[int | None, ...]) -> np.ndarray:
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


def target_scores(model: keras.Model, batch: np.ndarray, score: Score) -> np.ndarray:
    """The score per sample (N,), before the output's softmax/sigmoid: what perturbation
    methods (Score-CAM, occlusion) compare between inputs."""
    forward = compiled(model, ("target_scores", score.index), lambda ref: _target_scores(ref, score.index))
    _, targets, region = score_tensors(score)
    return np.asarray(forward(tf.constant(batch), targets, region), dtype=np.float32)


def _target_scores(model_ref: Callable[[], keras.Model], index: int) -> Callable:
    def forward(x: tf.Tensor, targets: tf.Tensor, region: tf.Tensor | None) -> tf.Tensor:
        return scored_replay(model_ref(), x, None, (index, targets, region))[1]

    return forward


def input_gradients(
    model: keras.Model,
    batch: np.ndarray,
    score: Score,
    *,
    call: LayerCall = plain_call,
    key: str = "gradient",
) -> tuple[np.ndarray, np.ndarray]:
    """d score / d input, shaped like `batch`, and the model's outputs from the same pass.

    `call` changes how layers run (guided backprop swaps every ReLU's gradient); `key` names
    that variant in the cache of compiled functions."""
    make = functools.partial(_input_gradients, index=score.index, call=call)
    gradients = compiled(model, (key, score.index), make)
    _, targets, region = score_tensors(score)
    grads, outputs = gradients(tf.constant(batch), targets, region)
    return np.asarray(grads, dtype=np.float32), np.asarray(outputs, dtype=np.float32)


def _input_gradients(model_ref: Callable[[], keras.Model], *, index: int, call: LayerCall) -> Callable:
    def gradients(x: tf.Tensor, targets: tf.Tensor, region: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            _, scores, outputs = scored_replay(model_ref(), x, None, (index, targets, region), call)
            total = tf.reduce_sum(scores)
        return tf.cast(tape.gradient(total, x), tf.float32), outputs

    return gradients
