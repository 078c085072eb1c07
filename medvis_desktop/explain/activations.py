"""Activation maps: what each filter of a layer responds to, and which filters never respond."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from medvis_desktop.arrays import resize_linear
from medvis_desktop.explain.base import ExplainError, Method, check_inputs
from medvis_desktop.explain.graph import compiled, replay, resolve, resolve_target
from medvis_desktop.models.layers import has_spatial_output


def activation_maps(model: keras.Model, inputs: object, layer: str) -> np.ndarray:
    """The layer's output for the batch, (N, *spatial, C), one map per filter."""
    batch = check_inputs(model, inputs)
    path = resolve_target(model, layer, has_spatial_output, "Activation maps")
    forward = compiled(model, ("activation_maps", path.name), lambda ref: _forward(ref, path.name))
    return np.asarray(forward(tf.constant(batch)), dtype=np.float32)


def filter_map(model: keras.Model, inputs: object, layer: str, filter: int | None = None) -> np.ndarray:
    """One filter's map (the mean over filters when None) on the input's grid, (N, *spatial):
    what a viewer lays over the image."""
    maps = activation_maps(model, inputs, layer)
    if filter is not None and not (isinstance(filter, int | np.integer) and 0 <= filter < maps.shape[-1]):
        raise ExplainError(
            f"Filter {filter!r} is not a filter index: layer '{layer}' has {maps.shape[-1]} filters."
        )
    chosen = maps.mean(axis=-1) if filter is None else maps[..., filter]
    return resize_linear(chosen, np.shape(inputs)[1:-1])


def dead_filters(model: keras.Model, inputs: object, layer: str) -> np.ndarray:
    """Boolean (C,): filters never > 0 anywhere on these inputs.

    Zeiler & Fergus read many dead filters as the sign of a too-large learning rate.
    """
    maps = activation_maps(model, inputs, layer)
    return ~np.any(maps > 0, axis=tuple(range(maps.ndim - 1)))


def _forward(model_ref: Callable[[], keras.Model], layer: str) -> Callable:
    def forward(x: tf.Tensor) -> tf.Tensor:
        model = model_ref()
        activation, _ = replay(model, x, resolve(model, layer), stop_at_target=True)
        return activation

    return forward


METHOD = Method(
    name="activation_maps",
    label="Activation maps",
    run=filter_map,
    can_target=has_spatial_output,
    kind="features",
    uses_target=False,
    uses_filter=True,
)
