"""Guided backprop against a guided backward pass written by hand, layer by layer, and Guided
Grad-CAM against its definition."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest
import tensorflow as tf

from medvis_desktop.explain import ExplainError, conv_gradient
from medvis_desktop.explain.gradcam import grad_cam
from medvis_desktop.explain.gradient import gradient
from medvis_desktop.explain.guided_backprop import (
    GUIDED_BACKPROP,
    GUIDED_GRAD_CAM,
    METHODS,
    guided_backprop,
    guided_grad_cam,
)

if TYPE_CHECKING:
    from tests.explain.conftest import Models

RELU = "relu"  # a stage of the explicit network
Stage = Callable[[tf.Tensor], tf.Tensor] | str
TARGETS = [0, 2]


def channels_last(rank: int) -> str:
    """The data format, named: TensorFlow's eager 3D conv and pool gradients need it."""
    return "NDHWC" if rank == 5 else "NHWC"


def conv(layer: keras.layers.Layer) -> Stage:
    """The convolution alone, from the layer's weights: its activation is a stage of its own."""
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    return lambda h: tf.nn.convolution(h, kernel, padding="SAME", data_format=channels_last(h.ndim)) + bias


def dense(layer: keras.layers.Layer) -> Stage:
    """The logits: kernel and bias, no softmax."""
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    return lambda h: h @ kernel + bias


def max_pool(h: tf.Tensor) -> tf.Tensor:
    return tf.nn.max_pool(h, 2, 2, "VALID", data_format=channels_last(h.ndim))


def global_average(h: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(h, axis=list(range(1, h.shape.rank - 1)))


def explicit_guided_backprop(stages: Sequence[Stage], x: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """Forward through the stages eagerly; back down stage by stage: at a ReLU the signal is
    kept where its forward input and the signal itself are positive, through any other
    stage it goes back by that stage's own gradient (a tape on that stage alone)."""
    values = [tf.constant(x)]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(values[0])
        for stage in stages:
            values.append(tf.nn.relu(values[-1]) if stage == RELU else stage(values[-1]))
    signal = tf.one_hot(targets, values[-1].shape[-1])
    for stage, below, above in reversed(list(zip(stages, values[:-1], values[1:], strict=True))):
        if stage == RELU:
            signal *= tf.cast((below > 0) & (signal > 0), signal.dtype)
        else:
            signal = tape.gradient(above, below, output_gradients=signal)
    return signal.numpy()


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("relu", ["activation", "relu_layer", "activation_layer"])
@pytest.mark.parametrize("channels", [1, 8])
def test_equals_explicit_guided_pass(models: Models, rank: int, relu: str, channels: int) -> None:
    """conv-ReLU-maxpool x2, conv-ReLU, GAP, logits; ReLUs fused, as ReLU() or Activation layers.
    With 8 input channels conv1 back-propagates by explain/conv_gradient.py, and in 3D on 1
    channel too (folded into 2D)."""
    model, _ = models.zeiler_fergus(rank, relu, channels)
    assert conv_gradient.applies(model.get_layer("conv1")) == (channels == 8 or rank == 3)
    convs = [conv(model.get_layer(f"conv{i}")) for i in (1, 2, 3)]
    stages = [convs[0], RELU, max_pool, convs[1], RELU, max_pool, convs[2], RELU, global_average]
    x = models.images(rank, channels=channels)
    expected = explicit_guided_backprop([*stages, dense(model.get_layer("logits"))], x, TARGETS)
    result = guided_backprop(model, x, TARGETS)
    assert result.shape == x.shape and result.dtype == np.float32
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert not np.allclose(result, gradient(model, x, TARGETS), rtol=0.05)


@pytest.mark.parametrize("rank", [2, 3])
def test_nested_model_with_softmax(models: Models, rank: int) -> None:
    """stem -> backbone (conv1 fused ReLU, block (conv2, ReLU layer), pool, conv3 fused ReLU)
    -> GAP -> Dense(softmax): the softmax comes off, the nested ReLUs are guided."""
    model = models.nested(rank)
    backbone = model.get_layer("backbone")
    stages = [
        conv(model.get_layer("stem")),
        conv(backbone.get_layer("conv1")),
        RELU,
        conv(backbone.get_layer("block").get_layer("conv2")),
        RELU,
        max_pool,
        conv(backbone.get_layer("conv3")),
        RELU,
        global_average,
        dense(model.get_layer("dense")),
    ]
    x = models.images(rank)
    expected = explicit_guided_backprop(stages, x, TARGETS)
    np.testing.assert_allclose(
        guided_backprop(model, x, TARGETS), expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max()
    )


def test_softmax_taken_off(models: Models) -> None:
    model = models.classifier(2, "softmax_layer")
    logits = models.classifier(2, "logits")
    logits.set_weights(model.get_weights())
    x = models.images(2)
    np.testing.assert_allclose(
        guided_backprop(model, x, TARGETS), guided_backprop(logits, x, TARGETS), rtol=1e-6
    )


def test_segmentation_mask(models: Models) -> None:
    """conv1-ReLU-pool-conv2-ReLU-upsample-1x1 conv: the class's logits summed inside the region."""
    model = models.segmenter(2)
    x = models.images(2)
    region = np.zeros(x.shape[:-1], np.float32)
    region[0, 2:9, 3:7] = region[1, 8:, 8:] = 1
    stages = [
        conv(model.get_layer("conv1")),
        RELU,
        max_pool,
        conv(model.get_layer("conv2")),
        RELU,
        model.get_layer("up"),
        conv(model.get_layer("classes")),
        lambda logits: logits * tf.constant(region[..., None]),
        lambda logits: tf.reduce_sum(logits, axis=(1, 2)),
    ]
    expected = explicit_guided_backprop(stages, x, [1, 1])
    result = guided_backprop(model, x, 1, mask=region.astype(bool))
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("layer", ["conv2", "conv3"])
def test_guided_grad_cam_is_guided_backprop_times_upsampled_grad_cam(
    models: Models, rank: int, layer: str
) -> None:
    model = models.classifier(rank)
    x = models.images(rank)
    cam = grad_cam(model, x, layer, TARGETS, upsample=True)
    assert cam.max() > 0
    expected = guided_backprop(model, x, TARGETS) * cam[..., None]
    result = guided_grad_cam(model, x, layer, TARGETS)
    assert result.shape == x.shape and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_guided_grad_cam_with_a_mask_and_checks(models: Models) -> None:
    model = models.segmenter(2)
    x = models.images(2)
    region = np.zeros(x.shape[1:-1], bool)
    region[3:12, 5:9] = True
    cam = grad_cam(model, x, "conv2", 2, mask=region)
    expected = guided_backprop(model, x, 2, mask=region) * cam[..., None]
    np.testing.assert_allclose(guided_grad_cam(model, x, "conv2", 2, mask=region), expected, rtol=1e-6)
    with pytest.raises(ExplainError, match="cannot use layer"):
        guided_grad_cam(models.classifier(2), x, "dense", 0)


def test_gives_the_model_outputs_from_the_same_pass(models: Models) -> None:
    model = models.classifier(2)
    x = models.images(2)
    expected = model.predict(x, verbose=0)
    for method, args in ((GUIDED_BACKPROP, ()), (GUIDED_GRAD_CAM, ("conv3",))):
        maps, outputs = method.run_with_outputs(model, x, *args, 1)
        np.testing.assert_array_equal(maps, method.run(model, x, *args, 1))
        np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)


def test_methods() -> None:
    assert METHODS == (GUIDED_BACKPROP, GUIDED_GRAD_CAM)
    assert not GUIDED_BACKPROP.uses_layer and GUIDED_GRAD_CAM.uses_layer
    assert all(m.kind == "attribution" and m.uses_target for m in METHODS)
