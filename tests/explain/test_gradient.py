"""Gradient and input × gradient against an eager GradientTape on an explicit logits model and
against central finite differences; the helpers here serve the other attribution tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from medvis_desktop.explain import ExplainError, Method, conv_gradient
from medvis_desktop.explain.gradient import GRADIENT, INPUT_X_GRADIENT, METHODS, gradient, input_x_gradient

if TYPE_CHECKING:
    from tests.explain.conftest import Models


def logits_twin(model: keras.Model) -> keras.Model:
    """A copy of `model`, same weights, whose last layer has no softmax/sigmoid."""
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    twin.layers[-1].activation = keras.activations.linear
    return twin


def picked(logits: tf.Tensor, targets: Sequence[int], region: np.ndarray | None = None) -> tf.Tensor:
    """(N,): logit[target] of each sample, summed over `region` for a segmentation output."""
    classes = np.eye(logits.shape[-1], dtype=np.float32)[list(targets)]
    classes = classes.reshape(len(targets), *[1] * (logits.shape.rank - 2), -1)
    scores = tf.reduce_sum(logits * classes, axis=-1)
    if region is not None:
        scores *= region
    return tf.reduce_sum(tf.reshape(scores, [len(targets), -1]), axis=1)


def tape_gradient(
    logits_model: keras.Model, x: np.ndarray, targets: Sequence[int], region: np.ndarray | None = None
) -> np.ndarray:
    """d logit[target] / d x of each sample, by an eager tape on a model without softmax."""
    tx = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tx)
        total = tf.reduce_sum(picked(logits_model(tx), targets, region))
    return tape.gradient(total, tx).numpy()


def scores_of(logits_model: keras.Model, x: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    return picked(logits_model(tf.constant(x, tf.float32)), targets).numpy()


def linear_model(models: Models, rank: int, channels: int = 1) -> keras.Model:
    """Flatten -> Dense(3, softmax): every logit is x · w + b, w a column of the kernel."""
    inputs = keras.Input((models.side(rank),) * rank + (channels,))
    outputs = layers.Dense(3, activation="softmax", name="dense")(layers.Flatten()(inputs))
    return models.randomize(keras.Model(inputs, outputs, name="linear"))


def smooth_model(models: Models, rank: int, size: int) -> keras.Model:
    """conv(tanh)-conv(tanh)-Flatten-Dense(softmax): a score with curvature and no kinks."""
    conv = models.nd("Conv", rank)
    inputs = keras.Input((size,) * rank + (1,))
    h = conv(3, 3, padding="same", activation="tanh")(inputs)
    h = conv(3, 3, padding="same", activation="tanh")(h)
    outputs = layers.Dense(3, activation="softmax")(layers.Flatten()(h))
    return models.randomize(keras.Model(inputs, outputs, name="smooth"))


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("ending", ["dense_softmax", "softmax_layer", "logits"])
@pytest.mark.parametrize("channels", [1, 8])
def test_equals_tape_on_the_logits_model(models: Models, rank: int, ending: str, channels: int) -> None:
    """The softmax is taken off: the same as the classifier built without one. With 8 input
    channels (and in 3D on 1, folded into 2D) conv1 back-propagates by explain/conv_gradient.py,
    the tape by TensorFlow's own."""
    model = models.classifier(rank, ending, channels)
    assert conv_gradient.applies(model.get_layer("conv1")) == (channels == 8 or rank == 3)
    logits = models.classifier(rank, "logits", channels)
    logits.set_weights(model.get_weights())
    x = models.images(rank, channels=channels)
    expected = tape_gradient(logits, x, [0, 2])
    assert np.abs(expected).max() > 0
    result = gradient(model, x, [0, 2])
    assert result.shape == x.shape and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(input_x_gradient(model, x, [0, 2]), x * expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("rank", [2, 3])
def test_equals_central_finite_differences(models: Models, rank: int) -> None:
    size = 4 if rank == 2 else 3
    model = smooth_model(models, rank, size)
    x = models.images(rank, size=size)
    targets = [1, 2]
    logits, eps = logits_twin(model), 1e-2
    steps = np.eye(x[0].size, dtype=np.float32).reshape(-1, *x.shape[1:]) * eps
    expected = np.stack(
        [
            (
                scores_of(logits, image + steps, [t] * len(steps))
                - scores_of(logits, image - steps, [t] * len(steps))
            )
            / (2 * eps)
            for image, t in zip(x, targets, strict=True)
        ]
    ).reshape(x.shape)
    result = gradient(model, x, targets)
    assert np.abs(expected).max() > 1e-2
    np.testing.assert_allclose(result, expected, rtol=1e-2, atol=1e-3 * np.abs(expected).max())


@pytest.mark.parametrize("rank", [2, 3])
def test_segmentation_mask(models: Models, rank: int) -> None:
    """The score is the class's logits summed inside the region, one region per sample."""
    model = models.segmenter(rank)
    x = models.images(rank)
    region = models.rng.random(x.shape[:-1]) < 0.3
    expected = tape_gradient(logits_twin(model), x, [1, 1], region.astype(np.float32))
    result = gradient(model, x, 1, mask=region)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(input_x_gradient(model, x, 1, mask=region), x * expected, rtol=1e-4, atol=1e-7)
    whole = gradient(model, x, 1)
    assert not np.allclose(whole, result)


def test_checks_inputs_and_targets(models: Models) -> None:
    model = models.classifier(2)
    with pytest.raises(ExplainError, match="expects"):
        gradient(model, models.images(3), 0)
    with pytest.raises(ExplainError, match="out of range"):
        input_x_gradient(model, models.images(2), 3)


@pytest.mark.parametrize("method", METHODS, ids=lambda method: method.name)
def test_gives_the_model_outputs_from_the_same_pass(models: Models, method: Method) -> None:
    model = models.classifier(2)
    x = models.images(2)
    maps, outputs = method.run_with_outputs(model, x, 1)
    np.testing.assert_array_equal(maps, method.run(model, x, 1))
    np.testing.assert_allclose(outputs, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_methods_are_pixel_attributions() -> None:
    assert METHODS == (GRADIENT, INPUT_X_GRADIENT)
    assert [m.run for m in METHODS] == [gradient, input_x_gradient]
    assert all(m.kind == "attribution" and m.signed and not m.uses_layer and m.uses_target for m in METHODS)
