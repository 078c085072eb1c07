"""Activation maps: what each filter of a layer responds to, and which filters never respond."""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
    return ~fired_filters(activation_maps(model, inputs, layer))


def fired_filters(maps: np.ndarray) -> np.ndarray:
    """Boolean (C,): the filters > 0 somewhere in these maps (..., C)."""
    return np.any(maps > 0, axis=tuple(range(maps.ndim - 1)))


@dataclass
class FiringRecord:
    """Which filters of a model's layers fired on which model inputs, known by the inputs' bytes.

    A feature-map mosaic finds its layer's dead filters on the inputs behind 8 slices through
    the study; they stay the same as the cursor moves, so each goes through the model once. A
    slice decoded since (a series still loading) changes its input's bytes and is run again;
    another model empties the record.
    """

    model: Callable[[], keras.Model | None] = lambda: None  # a weak reference
    fired: dict[tuple[str, bytes], np.ndarray] = field(default_factory=dict)

    def note(self, model: keras.Model, layer: str, batch: np.ndarray, maps: np.ndarray) -> None:
        """Keep what the layer's maps (N, *spatial, C) of a batch (N, ...) say fired."""
        self._for(model)
        for one_input, one_maps in zip(batch, maps, strict=True):
            self.fired[layer, input_digest(one_input)] = fired_filters(one_maps)

    def dead(self, model: keras.Model, layer: str, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """dead_filters of the inputs (each a batch of one) together, running only those not
        seen yet."""
        self._for(model)
        keys = [(layer, input_digest(one[0])) for one in inputs]
        new = {key: one for key, one in zip(keys, inputs, strict=True) if key not in self.fired}
        if new:
            batch = np.concatenate(list(new.values()))
            self.note(model, layer, batch, activation_maps(model, batch, layer))
        return ~np.any([self.fired[key] for key in keys], axis=0)

    def _for(self, model: keras.Model) -> None:
        if self.model() is not model:
            self.model, self.fired = weakref.ref(model), {}


def input_digest(one_input: np.ndarray) -> bytes:
    """A short digest of one model input's shape, type and values."""
    values = np.ascontiguousarray(one_input)
    digest = hashlib.blake2b(f"{values.shape}{values.dtype}".encode(), digest_size=16)
    digest.update(values.data)
    return digest.digest()


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
