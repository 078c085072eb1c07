"""3D max pooling's gradient by comparison, against the rule written out window by window and
against TensorFlow's own gradient of the same layer, and the layers it leaves alone."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from medvis_desktop.explain import pool_gradient
from medvis_desktop.explain.graph import plain_call
from tests.explain.conftest import backward_ops, value_and_input_gradient


def by_windows(x: np.ndarray, upstream: np.ndarray, pool: tuple[int, int, int]) -> np.ndarray:
    """Each window's upstream value at every position equal to the window's maximum."""
    gradient = np.zeros_like(x)
    for n, *window, c in itertools.product(*(range(size) for size in upstream.shape)):
        box = tuple(slice(i * size, (i + 1) * size) for i, size in zip(window, pool, strict=True))
        region = x[(n, *box, c)]
        gradient[(n, *box, c)] = np.where(region == region.max(), upstream[(n, *window, c)], 0)
    return gradient


def tied_input(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Few levels, many of them 0 (as after a ReLU): windows with exact ties, none nearly tied."""
    return np.maximum(rng.integers(-2, 3, size=shape), 0).astype(np.float32)


@pytest.mark.parametrize("pool", [(2, 2, 2), (2, 1, 3)])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_sends_the_gradient_to_every_tied_maximum(pool, padding) -> None:
    rng = np.random.default_rng(sum(pool))
    layer = layers.MaxPooling3D(pool, padding=padding)
    assert pool_gradient.applies(layer)
    x = tied_input(rng, (2, 4, 6, 6, 3))
    upstream = rng.normal(size=layer.compute_output_shape(x.shape)).astype(np.float32)
    got, got_gradient = value_and_input_gradient(lambda t: plain_call(layer, (t,), {}, False), x, upstream)
    want, want_gradient = value_and_input_gradient(layer, x, upstream)
    expected = by_windows(x, upstream, pool)
    assert (expected != 0).sum() > upstream.size  # ties do occur
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_gradient, expected)
    np.testing.assert_array_equal(want_gradient, expected)  # TensorFlow's 3D rule is the same


def test_keeps_tensorflows_gradient_where_the_windows_do_not_tile() -> None:
    """A side that is not a multiple of the pool: TensorFlow pads or crops, and keeps its kernel."""
    rng = np.random.default_rng(0)
    layer = layers.MaxPooling3D(2, padding="same")
    x = tied_input(rng, (1, 5, 4, 4, 2))
    upstream = rng.normal(size=layer.compute_output_shape(x.shape)).astype(np.float32)
    got = value_and_input_gradient(lambda t: plain_call(layer, (t,), {}, False), x, upstream)
    want = value_and_input_gradient(layer, x, upstream)
    for got_part, want_part in zip(got, want, strict=True):
        np.testing.assert_array_equal(got_part, want_part)


def test_the_compiled_gradient_has_no_max_pool_gradient_kernel() -> None:
    layer = layers.MaxPooling3D(2)
    x = np.zeros((1, 4, 6, 6, 3), np.float32)
    own, replayed = backward_ops(layer, x), backward_ops(lambda t: plain_call(layer, (t,), {}, False), x)
    assert "MaxPool3DGrad" in own and "MaxPool3DGrad" not in replayed


def test_casts_a_float16_input_as_keras_does() -> None:
    layer = layers.MaxPooling3D(2)
    x = tf.constant(tied_input(np.random.default_rng(0), (1, 4, 6, 6, 3)), tf.float16)
    got = plain_call(layer, (x,), {}, False)
    assert got.dtype == tf.float32
    np.testing.assert_array_equal(got, layer(x))


class Averaging(layers.MaxPooling3D):
    """A subclass that pools otherwise."""

    def call(self, inputs):
        return tf.nn.avg_pool3d(inputs, 2, 2, "VALID")


@pytest.mark.parametrize(
    "layer",
    [layers.MaxPooling3D(3, strides=2), layers.MaxPooling2D(2), layers.AveragePooling3D(2), Averaging(2)],
    ids=["overlapping", "2d", "average", "subclass"],
)
def test_leaves_other_poolings_to_tensorflow(layer) -> None:
    assert not pool_gradient.applies(layer)
