"""Zeiler-Fergus deconvnet: project a layer's activations back into input space.

Going down, every ReLU passes the positive part of the signal coming back (ignoring where
the forward pass was zero), max pooling unpools through its switches and convolutions are
transposed. That is the gradient of the layer's activations, seeded with the kept
activations, once every ReLU's backward pass is replaced by a ReLU on the upstream signal
and max pooling's by a route to one switch per window; a convolution's gradient is its
transpose, and every other layer (batch norm, average pooling, add, dense, ...) passes the
signal back as its exact derivative. Both swaps happen while replaying the graph, never in
the user's model.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from medvis_desktop.explain.base import ExplainError, Method, Param, check_inputs
from medvis_desktop.explain.graph import (
    call_with_activation,
    compiled,
    plain_call,
    replay,
    resolve,
    resolve_target,
)
from medvis_desktop.models.layers import has_spatial_output, layer_activation, output_shape

MODES = ("feature_map", "max")


@tf.custom_gradient
def deconv_relu(x: tf.Tensor) -> tuple[tf.Tensor, Callable]:
    """ReLU forward; backward, the ReLU of the signal coming back (the deconvnet's rule)."""

    def backward(upstream: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(upstream)

    return tf.nn.relu(x), backward


def deconvnet(
    model: keras.Model,
    inputs: object,
    layer: str,
    filter: int | None = None,
    *,
    mode: str = "feature_map",
) -> np.ndarray:
    """Projection of `layer`'s activations into input space, same shape as `inputs`.

    filter: keep only this filter's activations (all filters when None).
    mode: "feature_map" keeps the whole map; "max" keeps only the filter's single strongest
    activation in each sample, as in the paper's figures.
    """
    batch = check_inputs(model, inputs)
    path = resolve_target(model, layer, has_spatial_output, "Deconvnet")
    if mode not in MODES:
        raise ExplainError(f"Unknown deconvnet mode '{mode}'; use one of: {', '.join(MODES)}.")
    channels = output_shape(path.layer)[-1]
    if filter is not None and not (isinstance(filter, int | np.integer) and 0 <= filter < channels):
        raise ExplainError(
            f"Filter {filter!r} is not a filter index: layer '{layer}' has {channels} filters "
            f"(0 to {channels - 1})."
        )
    if mode == "max" and filter is None:
        raise ExplainError('mode="max" needs a filter: the strongest activation of which one?')
    keep = np.ones(channels, np.float32)
    if filter is not None:
        keep = np.eye(channels, dtype=np.float32)[filter]
    project = compiled(model, ("deconvnet", path.name, mode), lambda ref: _deconvnet(ref, path.name, mode))
    return np.asarray(project(tf.constant(batch), tf.constant(keep)), dtype=np.float32)


def _deconvnet(model_ref: Callable[[], keras.Model], layer: str, mode: str) -> Callable:
    def project(x: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
        model = model_ref()
        with tf.GradientTape() as tape:
            tape.watch(x)
            activation, _ = replay(model, x, resolve(model, layer), call=_deconv_call, stop_at_target=True)
        seed = activation * tf.cast(keep, activation.dtype)
        if mode == "max":
            seed *= _strongest(seed)
        return tf.cast(tape.gradient(activation, x, output_gradients=seed), tf.float32)

    return project


def _deconv_call(layer: keras.layers.Layer, args: tuple, kwargs: dict, at_output: bool):
    """ReLUs run as deconv ReLUs, max pooling with switches, every other layer as it is."""
    if layer_activation(layer) == "relu":
        return call_with_activation(layer, deconv_relu, args, kwargs)
    if isinstance(layer, _MAX_POOLING) and layer.data_format == "channels_last":
        return max_pool_with_switches(layer, args[0])
    return plain_call(layer, args, kwargs, at_output)


_MAX_POOLING = keras.layers.MaxPooling1D | keras.layers.MaxPooling2D | keras.layers.MaxPooling3D


def max_pool_with_switches(layer: keras.layers.Layer, x: tf.Tensor) -> tf.Tensor:
    """The max pooling layer's output, whose gradient goes to one switch per window.

    The switch is the window's first maximum in row-major order. TensorFlow's own MaxPool3D
    gradient goes to every tied position instead (all 8 of an all-zero window after a ReLU),
    which is not an unpooling. Built as a sum of strided slices of `x`, each kept where it
    is the window's switch, so the gradient of the slices does the unpooling.
    """
    pooled = layer(x)
    pool, strides = layer.pool_size, layer.strides
    out = tf.shape(pooled)[1:-1]
    if layer.padding == "same":  # pad as TensorFlow does: the smaller half before
        total = tf.maximum((out - 1) * strides + pool - tf.shape(x)[1:-1], 0)
        pads = tf.stack([total // 2, total - total // 2], axis=1)
        pads = tf.concat([[[0, 0]], pads, [[0, 0]]], axis=0)
        x = tf.pad(x, pads, constant_values=x.dtype.min)
    switched = tf.zeros_like(pooled)
    taken = tf.zeros_like(pooled, dtype=tf.bool)
    for offset in itertools.product(*(range(size) for size in pool)):
        corner = [
            slice(start, start + (out[axis] - 1) * stride + 1, stride)
            for axis, (start, stride) in enumerate(zip(offset, strides, strict=True))
        ]
        window = x[(slice(None), *corner, slice(None))]
        switch = tf.logical_and(tf.equal(window, pooled), tf.logical_not(taken))
        switched += tf.where(switch, window, tf.zeros_like(window))
        taken = tf.logical_or(taken, switch)
    return switched


def _strongest(seed: tf.Tensor) -> tf.Tensor:
    """(N, *spatial, 1): 1 at each sample's strongest position of the kept filter, else 0."""
    flat = tf.reshape(tf.reduce_sum(seed, axis=-1), [tf.shape(seed)[0], -1])
    position = tf.one_hot(tf.argmax(flat, axis=1), tf.shape(flat)[1], dtype=seed.dtype)
    return tf.reshape(position, tf.concat([tf.shape(seed)[:-1], [1]], axis=0))


METHOD = Method(
    name="deconvnet",
    label="Deconvnet",
    run=deconvnet,
    can_target=has_spatial_output,
    kind="attribution",
    uses_target=False,
    uses_filter=True,
    params=(
        Param(
            "mode",
            "Deconvolution",
            "feature_map",
            choices=MODES,
            help="feature_map: the whole map of the filter(s); max: only the filter's strongest activation",
        ),
    ),
)
