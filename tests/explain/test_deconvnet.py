"""Deconvnet against an explicit Zeiler-Fergus deconvnet, and on layers the paper had not."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from medvis_desktop import explain
from medvis_desktop.explain import conv_gradient
from medvis_desktop.explain.deconvnet import max_pool_with_switches

if TYPE_CHECKING:
    from tests.explain.conftest import Models

RELU_STYLES = ("activation", "relu_layer", "activation_layer")


def pool_with_switches(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2(x2) max pooling, stride 2, and its switches: the first maximum of each window."""
    n, *spatial, c = h.shape
    rank = len(spatial)
    blocks = h.reshape(n, *[s for d in spatial for s in (d // 2, 2)], c)
    order = [0, *range(1, 2 * rank, 2), 2 * rank + 1, *range(2, 2 * rank + 1, 2)]
    windows = blocks.transpose(order).reshape(n, *[d // 2 for d in spatial], c, 2**rank)
    switches = windows.argmax(axis=-1)
    return np.take_along_axis(windows, switches[..., None], axis=-1)[..., 0], switches


def unpool(signal: np.ndarray, switches: np.ndarray) -> np.ndarray:
    """Each pooled value goes back to its window's switch; the rest of the window is 0."""
    n, *pooled, c = signal.shape
    rank = len(pooled)
    windows = np.zeros((*signal.shape, 2**rank), signal.dtype)
    np.put_along_axis(windows, switches[..., None], signal[..., None], axis=-1)
    windows = windows.reshape(n, *pooled, c, *(2,) * rank)
    order = [0, *[a for k in range(rank) for a in (1 + k, rank + 2 + k)], rank + 1]
    return windows.transpose(order).reshape(n, *[2 * p for p in pooled], c)


def explicit_deconvnet(
    model: keras.Model, x: np.ndarray, filter: int | None, strongest: bool
) -> tuple[np.ndarray, int]:
    """The paper's deconvnet on the conftest's conv1-pool1-conv2-pool2-conv3 network.

    Forward with numpy ReLUs and recorded switches; down again: ReLU on the signal, the
    conv transposed with the layer's own filters, unpooling through the switches.
    Also returns how many pooling windows were all zero (ties: the switches matter there).
    """
    kernels = [model.get_layer(f"conv{i}").kernel.numpy() for i in (1, 2, 3)]
    biases = [model.get_layer(f"conv{i}").bias.numpy() for i in (1, 2, 3)]
    h, below, switches, zero_windows = x, [], [], 0
    for i in range(3):
        below.append(h.shape)
        h = np.maximum(tf.nn.convolution(h, kernels[i], padding="SAME").numpy() + biases[i], 0)
        if i < 2:
            h, switch = pool_with_switches(h)
            zero_windows += int(np.sum(h == 0))
            switches.append(switch)
    signal = h if filter is None else h * np.eye(h.shape[-1])[filter]
    if strongest:
        flat = signal.reshape(len(x), -1)
        keep = np.zeros_like(flat)
        keep[np.arange(len(x)), flat.argmax(axis=1)] = 1
        signal = signal * keep.reshape(signal.shape)
    for i in (2, 1, 0):
        signal = np.maximum(signal, 0)
        signal = tf.nn.conv_transpose(signal, kernels[i], below[i], strides=1, padding="SAME")
        signal = signal.numpy()
        if i > 0:
            signal = unpool(signal, switches[i - 1])
    return signal, zero_windows


CASES = [(None, False), (1, False), (2, True)]  # (filter, mode="max")


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("relu", RELU_STYLES)
@pytest.mark.parametrize(("filter", "strongest"), CASES)
@pytest.mark.parametrize("channels", [1, 8])
def test_equals_explicit_zeiler_fergus_deconvnet(
    models: Models, rank: int, relu: str, filter: int | None, strongest: bool, channels: int
) -> None:
    """With 8 input channels (and in 3D on 1, folded into 2D) conv1 projects down by
    explain/conv_gradient.py."""
    model, top = models.zeiler_fergus(rank, relu, channels)
    assert conv_gradient.applies(model.get_layer("conv1")) == (channels == 8 or rank == 3)
    x = models.images(rank, channels=channels)
    expected, zero_windows = explicit_deconvnet(model, x, filter, strongest)
    assert zero_windows > 0  # all-zero windows after a ReLU: the switches must be right
    mode = "max" if strongest else "feature_map"
    projection = explain.deconvnet(model, x, top, filter, mode=mode)
    assert projection.shape == x.shape
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(projection, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rank", [2, 3])
def test_nested_model_equals_explicit_deconvnet(models: Models, rank: int) -> None:
    inner, top = models.zeiler_fergus(rank)
    inputs = keras.Input(inner.input.shape[1:])
    model = keras.Model(inputs, layers.Dense(2)(inner(inputs)), name="outer")
    x = models.images(rank)
    expected, _ = explicit_deconvnet(inner, x, 0, False)
    projection = explain.deconvnet(model, x, f"zf/{top}", 0)
    np.testing.assert_allclose(projection, expected, rtol=1e-4, atol=1e-5)


def blocks(models: Models, rank: int, kind: str) -> tuple[keras.Model, keras.Model]:
    """(pre, post): two linear functional blocks on 8-wide images; `kind` names pre's layers."""
    shape = (8,) * rank

    def nd(name: str) -> type[layers.Layer]:
        return models.nd(name, rank)

    conv = nd("Conv")
    x = keras.Input((*shape, 2))
    if kind == "batch_norm":
        h = layers.BatchNormalization()(conv(3, 3, padding="same")(x))
    elif kind == "average_pooling":
        h = nd("UpSampling")(2)(nd("AveragePooling")(2)(conv(3, 3, padding="same")(x)))
    elif kind == "global_average_pooling":  # squeeze-and-excitation
        a = conv(3, 3, padding="same")(x)
        squeeze = nd("GlobalAveragePooling")(keepdims=True)(a)
        h = layers.Multiply()([a, layers.Dense(3)(squeeze)])
    elif kind == "global_max_pooling":
        a = conv(3, 3, padding="same")(x)
        h = layers.Add()([a, layers.Dense(3)(nd("GlobalMaxPooling")(keepdims=True)(a))])
    elif kind == "add":  # residual
        h = layers.Add()([x, conv(2, 3, padding="same")(conv(2, 3, padding="same")(x))])
    elif kind == "concatenate":
        h = layers.Concatenate()([conv(2, 1)(x), conv(2, 3, padding="same")(x)])
    elif kind == "dense":
        h = layers.Reshape((*shape, 2))(layers.Dense(8**rank * 2)(layers.Flatten()(x)))
    elif kind == "upsampling_strided":
        h = conv(3, 3, padding="same")(nd("UpSampling")(2)(conv(3, 3, strides=2)(x)))
    elif kind == "even_kernel_strided":
        h = conv(3, 2, padding="same")(conv(3, 4, strides=2, padding="same")(x))
    elif kind == "dropout":
        h = layers.Dropout(0.5)(conv(3, 3, padding="same")(x))
    elif kind == "transposed_conv":
        transposed = getattr(layers, f"Conv{rank}DTranspose")  # no nd(): the name is not ...ND
        h = transposed(3, 3, strides=2, padding="same")(conv(3, 2, strides=2)(x))
    else:
        raise AssertionError(kind)
    pre = keras.Model(x, h, name="pre")
    y = keras.Input(tuple(h.shape[1:]))
    post = keras.Model(y, conv(3, 3, padding="same", name="top")(y), name="post")
    return pre, post


KINDS = [
    "batch_norm",
    "average_pooling",
    "global_average_pooling",
    "global_max_pooling",
    "add",
    "concatenate",
    "dense",
    "upsampling_strided",
    "even_kernel_strided",
    "dropout",
    "transposed_conv",
]


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_other_layers_pass_the_exact_derivative(models: Models, rank: int, kind: str) -> None:
    """pre -> ReLU -> post, against the deconvnet computed in two stages with plain tapes:
    exact derivative through post, ReLU on the signal, exact derivative through pre."""
    pre, post = blocks(models, rank, kind)
    inputs = keras.Input(pre.input.shape[1:])
    model = keras.Model(inputs, post(layers.ReLU(name="relu")(pre(inputs))), name="model")
    models.randomize(model)
    x = models.images(rank, channels=2, size=8)
    tx = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(tx)
        z = pre(tx)
        r = tf.nn.relu(z)
        a = post(r)
    seed = a * np.eye(3, dtype=np.float32)[1]
    down = tf.nn.relu(tape.gradient(a, r, output_gradients=seed))
    expected = tape.gradient(z, tx, output_gradients=down).numpy()
    assert not np.allclose(expected, tape.gradient(a, tx, output_gradients=seed))
    projection = explain.deconvnet(model, x, "post/top", 1)
    assert projection.shape == x.shape
    assert np.all(np.isfinite(projection)) and np.abs(projection).max() > 0
    np.testing.assert_allclose(projection, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("kind", ["batch_norm", "add", "dense", "transposed_conv"])
def test_without_relus_it_is_the_plain_gradient(models: Models, rank: int, kind: str) -> None:
    pre, post = blocks(models, rank, kind)
    inputs = keras.Input(pre.input.shape[1:])
    model = models.randomize(keras.Model(inputs, post(pre(inputs))))
    x = tf.constant(models.images(rank, channels=2, size=8))
    with tf.GradientTape() as tape:
        tape.watch(x)
        a = post(pre(x))
    expected = tape.gradient(a, x, output_gradients=a).numpy()
    projection = explain.deconvnet(model, x.numpy(), "post/top")
    np.testing.assert_allclose(projection, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("rank", "pool", "strides", "padding"),
    [(1, 3, 2, "same"), (2, 2, 2, "valid"), (2, 3, 2, "same"), (3, 2, 2, "valid"), (3, 3, 1, "same")],
)
def test_max_pool_with_switches(rank: int, pool: int, strides: int, padding: str) -> None:
    """Same output as the layer; the gradient goes to one switch per window, ties or not."""
    layer = getattr(layers, f"MaxPooling{rank}D")(pool, strides=strides, padding=padding)
    rng = np.random.default_rng(2)
    for x in (rng.normal(size=(2, *(7,) * rank, 3)), np.zeros((2, *(7,) * rank, 3))):
        x = tf.constant(x, tf.float32)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            pooled = layer(x)
            switched = max_pool_with_switches(layer, x)
        np.testing.assert_array_equal(switched, pooled)
        ones = tf.ones_like(pooled)
        routed = tape.gradient(switched, x, output_gradients=ones).numpy()
        assert routed.sum() == np.prod(pooled.shape)  # one switch per window
        if x.numpy().any():  # no ties: TensorFlow's own gradient is the unpooling
            np.testing.assert_array_equal(routed, tape.gradient(pooled, x, output_gradients=ones))


def test_leaves_the_model_alone_and_runs_in_a_worker_thread(models: Models) -> None:
    model, top = models.zeiler_fergus(2)
    x = models.images(2)
    before = model.predict(x, verbose=0)
    results: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: results.append(explain.deconvnet(model, x, top)))
    worker.start()
    during = model.predict(x, verbose=0)
    worker.join()
    assert len(results) == 1 and np.abs(results[0]).max() > 0
    assert model.get_layer("conv3").activation is keras.activations.relu
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)
    np.testing.assert_array_equal(during, before)
