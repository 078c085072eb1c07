"""A convolution's input gradient as a forward convolution, and a 3D one on few channels
folded into 2D, against TensorFlow's own convolution and gradient of the same layer, for every
padding, kernel parity, rank and channel count it takes, and the layers it leaves to
TensorFlow."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from medvis_desktop.explain import conv_gradient
from medvis_desktop.explain.graph import plain_call
from tests.explain.conftest import backward_ops, value_and_input_gradient

CONVOLUTIONS = {2: layers.Conv2D, 3: layers.Conv3D}
SIDES = {1: 11, 2: 9, 3: 7}
KERNELS = {"odd": 3, "even": 2, "mixed": (3, 2, 1), "mixed-depth-1": (1, 3, 2)}


def built(layer: keras.layers.Layer, rank: int, channels: int) -> keras.layers.Layer:
    layer.build((None, *(SIDES[rank],) * rank, channels))
    bias = getattr(layer, "bias", None)
    if bias is not None:
        bias.assign(np.linspace(-0.5, 0.5, bias.shape[0]).astype(np.float32))
    return layer


@pytest.mark.parametrize(
    ("rank", "channels"),
    [(2, 8), (3, 8), (3, 1), (3, 2)],
    ids=["2d", "3d", "3d-folded-1-channel", "3d-folded-2-channels"],
)
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_equals_tensorflows_own_gradient(rank: int, channels: int, padding: str, kernel: str) -> None:
    """Kernels of odd, even and mixed sizes pad (before, after) differently under "same"."""
    rng = np.random.default_rng(rank)
    size = KERNELS[kernel][:rank] if isinstance(KERNELS[kernel], tuple) else KERNELS[kernel]
    layer = built(CONVOLUTIONS[rank](5, size, padding=padding, activation="relu"), rank, channels)
    assert conv_gradient.applies(layer)
    x = rng.normal(size=(2, *(SIDES[rank],) * rank, channels)).astype(np.float32)
    shape = layer.compute_output_shape(x.shape)
    weights = rng.normal(size=shape).astype(np.float32)
    want, want_gradient = value_and_input_gradient(layer, x, weights)
    got, got_gradient = value_and_input_gradient(lambda t: plain_call(layer, (t,), {}, False), x, weights)
    assert np.abs(want_gradient).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_gradient, want_gradient, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.Conv2D(4, 3, strides=2),
        lambda: layers.Conv2D(4, 3, dilation_rate=2),
        lambda: layers.Conv2D(4, 3, groups=2),
        lambda: layers.Conv1D(4, 3),
        lambda: layers.Conv2DTranspose(4, 3),
        lambda: layers.DepthwiseConv2D(3),
        lambda: layers.Dense(4),
    ],
    ids=["strided", "dilated", "grouped", "1d", "transposed", "depthwise", "dense"],
)
def test_leaves_other_layers_to_tensorflow(make) -> None:
    layer = make()
    rank = 1 if isinstance(layer, layers.Conv1D) else 2
    assert not conv_gradient.applies(built(layer, rank, 8))


@pytest.mark.parametrize("rank", [2, 3])
def test_leaves_few_input_channels_to_tensorflow(rank: int) -> None:
    """A first layer on 3-7 channels back-propagates faster with TensorFlow's own kernel; a
    Conv3D on 1 or 2 is folded into 2D."""
    def applies(channels: int) -> bool:
        return conv_gradient.applies(built(CONVOLUTIONS[rank](4, 3), rank, channels))

    folded = conv_gradient.MAX_FOLDED_CHANNELS
    assert applies(folded) == (rank == 3) and not applies(folded + 1)
    assert not applies(conv_gradient.MIN_CHANNELS - 1) and applies(conv_gradient.MIN_CHANNELS)


def test_a_folded_convolution_on_any_input_sides() -> None:
    """Traced once for unknown sides (as a replay on a model without fixed sides), then run on
    a box of unequal sides."""
    layer = built(layers.Conv3D(4, (3, 2, 3), padding="same"), 3, 1)
    replay = tf.function(lambda t: plain_call(layer, (t,), {}, False)).get_concrete_function(
        tf.TensorSpec((None, None, None, None, 1), tf.float32)
    )
    x = np.random.default_rng(0).normal(size=(2, 5, 9, 6, 1)).astype(np.float32)
    np.testing.assert_allclose(replay(tf.constant(x)), layer(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("planes", [1, 2])
def test_a_folded_convolution_on_an_input_thinner_than_its_kernel_fails_as_keras_does(planes: int) -> None:
    """Keras refuses an empty output (2 planes) and TensorFlow a negative one (1 plane)."""
    layer = built(layers.Conv3D(4, 3, padding="valid"), 3, 1)
    x = tf.zeros((1, planes, 7, 7, 1))
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        layer(x)
    with pytest.raises(tf.errors.InvalidArgumentError, match="fewer planes than the kernel's depth"):
        plain_call(layer, (x,), {}, False)


@pytest.mark.parametrize(
    ("rank", "channels", "kernels"),
    [(2, 8, {"Conv2D"}), (3, 8, {"Conv3D"}), (3, 1, {"Conv2D"})],
    ids=["2d", "3d", "3d-folded"],
)
def test_the_compiled_gradient_has_no_backprop_input_kernel(rank: int, channels: int, kernels: set) -> None:
    """The replay's gradient really is a forward convolution (a `None` batch, as compiled), and
    a folded 3D convolution runs no 3D kernel at all."""
    layer = built(CONVOLUTIONS[rank](5, 3, padding="same"), rank, channels)
    x = np.zeros((1, *(SIDES[rank],) * rank, channels), np.float32)
    own, replayed = backward_ops(layer, x), backward_ops(lambda t: plain_call(layer, (t,), {}, False), x)
    backprop = {f"Conv{rank}DBackpropInput", f"Conv{rank}DBackpropInputV2", "Conv2DBackpropInput"}
    assert own & backprop and not replayed & backprop
    assert replayed & {"Conv2D", "Conv3D"} == kernels


class Standardised(layers.Conv2D):
    """Weight standardisation, as in Keras's guide: its own convolution_op."""

    def convolution_op(self, inputs, kernel):
        mean, var = tf.nn.moments(kernel, axes=[0, 1, 2], keepdims=True)
        return super().convolution_op(inputs, (kernel - mean) / tf.sqrt(var + 1e-10))


class Reflected(layers.Conv2D):
    """Reflect padding before a valid convolution, by super().call."""

    def call(self, inputs):
        return super().call(tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT"))


@pytest.mark.parametrize("subclass", [Standardised, Reflected])
def test_leaves_subclasses_to_their_own_call(subclass) -> None:
    layer = built(subclass(4, 3), 2, 8)
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 8)).astype(np.float32)
    assert not conv_gradient.applies(layer)
    np.testing.assert_allclose(plain_call(layer, (tf.constant(x),), {}, False), layer(x), rtol=1e-6)


def test_casts_a_float16_input_as_keras_does() -> None:
    """A float32 convolution after mixed-precision layers gets float16 inputs."""
    layer = built(layers.Conv2D(4, 3, padding="same"), 2, 8)
    x = tf.constant(np.random.default_rng(0).normal(size=(1, 9, 9, 8)), tf.float16)
    got = plain_call(layer, (x,), {}, False)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got, layer(x), rtol=1e-6)
