"""Score-CAM against a computation by hand of Wang et al.'s definition on a toy model whose
activations and logits are closed forms in numpy: average pooling, a 1x1 conv with chosen
kernel and bias (the layer), global average pooling, a Dense with chosen weights and softmax.
Masks are resized with tf.image.resize (bilinear), not with the code's resize."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from medvis_desktop.explain.base import ExplainError
from medvis_desktop.explain.score_cam import METHOD, score_cam
from tests.explain.conftest import count_scoring_passes

# The module, not the function of the same name that medvis_desktop.explain exports.
module = importlib.import_module("medvis_desktop.explain.score_cam")

if TYPE_CHECKING:
    from tests.explain.conftest import Models

KERNEL = np.array([[1.0, -0.5], [0.3, 0.8]], np.float32)  # (input channels, filters)
BIAS = np.array([0.1, -0.2], np.float32)
HEAD = np.array([[1.5, -1.0], [-0.7, 0.4]], np.float32)  # (filters, classes)
HEAD_BIAS = np.array([0.2, -0.1], np.float32)


class Toy:
    """pool -> 1x1 conv "maps" -> GAP -> Dense(softmax), as a Keras model and in numpy."""

    def __init__(self, models: Models, rank: int, pool: int, kernel: np.ndarray, bias: np.ndarray) -> None:
        self.pool, self.kernel, self.bias = pool, kernel, bias
        inputs = keras.Input((models.side(rank),) * rank + (2,))
        h = models.nd("AveragePooling", rank)(pool, name="pool")(inputs)
        h = models.nd("Conv", rank)(2, 1, name="maps")(h)
        h = models.nd("GlobalAveragePooling", rank)(name="gap")(h)
        outputs = layers.Dense(2, activation="softmax", name="dense")(h)
        self.model = keras.Model(inputs, outputs)
        self.model.get_layer("maps").set_weights([kernel.reshape((1,) * rank + kernel.shape), bias])
        self.model.get_layer("dense").set_weights([HEAD, HEAD_BIAS])

    def activations(self, image: np.ndarray) -> np.ndarray:
        """(*spatial, C) -> the layer's (*spatial / pool, filters)."""
        p = self.pool
        blocks = [d for n in image.shape[:-1] for d in (n // p, p)]
        pooled = image.reshape(*blocks, image.shape[-1]).mean(axis=tuple(range(1, len(blocks), 2)))
        return pooled @ self.kernel + self.bias

    def logits(self, image: np.ndarray) -> np.ndarray:
        features = self.activations(image)
        return features.mean(axis=tuple(range(features.ndim - 1))) @ HEAD + HEAD_BIAS


def bilinear(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """One map resized as tf.image.resize(bilinear) does, separably in 3D."""
    if array.shape == shape:
        return array
    if array.ndim == 2:
        return tf.image.resize(array[None, ..., None], shape, "bilinear").numpy()[0, ..., 0]
    first = tf.image.resize(array[None], shape[:2], "bilinear").numpy()[0]  # (D, H, w)
    rows = first.reshape(-1, 1, array.shape[2], 1)
    return tf.image.resize(rows, (1, shape[2]), "bilinear").numpy().reshape(shape)


def unit_range(mask: np.ndarray) -> np.ndarray:
    span = mask.max() - mask.min()
    return (mask - mask.min()) / span if span > 0 else np.zeros_like(mask)


def by_hand(toy: Toy, image: np.ndarray, target: int, upsample: bool = True) -> np.ndarray:
    features = toy.activations(image)
    spatial = image.shape[:-1]
    scores = []
    for c in range(features.shape[-1]):
        mask = unit_range(bilinear(features[..., c], spatial))
        scores.append(toy.logits(image * mask[..., None])[target])
    weights = np.exp(scores) / np.exp(scores).sum()
    cam = np.maximum((features * weights).sum(axis=-1), 0)
    return bilinear(cam, spatial) if upsample else cam


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("pool", [1, 2])
@pytest.mark.parametrize("constant", [False, True], ids=["varying", "constant_channel"])
def test_matches_hand_computation(
    models: Models, rank: int, pool: int, constant: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel, bias = KERNEL.copy(), BIAS.copy()
    if constant:  # filter 1 is 0.5 everywhere: its mask is all zeros, its input all zeros
        kernel[:, 1], bias[1] = 0, 0.5
    toy = Toy(models, rank, pool, kernel, bias)
    images = models.images(rank, count=2, channels=2)
    passes = count_scoring_passes(monkeypatch, module)
    got = score_cam(toy.model, images, "maps", [0, 1])
    want = np.stack([by_hand(toy, image, target) for image, target in zip(images, [0, 1], strict=True)])
    assert got.dtype == np.float32 and got.shape == images.shape[:-1]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # 2 images x 2 filters; with a constant filter, each image scores one masked input and one zero input
    assert passes == ([2, 2] if constant else [4])


@pytest.mark.parametrize("rank", [2, 3])
def test_layer_resolution_without_upsample(models: Models, rank: int) -> None:
    toy = Toy(models, rank, 2, KERNEL, BIAS)
    images = models.images(rank, count=1, channels=2)
    got = score_cam(toy.model, images, "maps", 1, upsample=False)
    np.testing.assert_allclose(got[0], by_hand(toy, images[0], 1, upsample=False), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("rank", [2, 3])
def test_batching_changes_nothing_and_bounds_each_pass(
    models: Models, rank: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = models.classifier(rank)
    images = models.images(rank, count=2)
    passes = count_scoring_passes(monkeypatch, module)
    one = score_cam(model, images, "conv2", [2, 0], batch_size=1)
    assert passes == [1] * 8  # 2 images x 4 filters, one masked input at a time
    passes.clear()
    three = score_cam(model, images, "conv2", [2, 0], batch_size=3)
    assert passes == [3, 3, 2]
    whole = score_cam(model, images, "conv2", [2, 0], batch_size=1000)
    np.testing.assert_allclose(one, three, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(one, whole, rtol=1e-4, atol=1e-6)
    assert one.shape == images.shape[:-1] and np.all(one >= 0) and np.any(one > 0)


def test_segmentation_region(models: Models) -> None:
    model = models.segmenter(2)
    images = models.images(2, count=1)
    corner = np.zeros((16, 16), bool)
    corner[:4, :4] = True
    inside = score_cam(model, images, "conv2", 1, mask=corner)
    assert inside.shape == (1, 16, 16) and np.isfinite(inside).all()
    assert not np.allclose(inside, score_cam(model, images, "conv2", 1, mask=~corner))


def test_errors_say_what_to_change(models: Models) -> None:
    model = models.classifier(2)
    images = models.images(2, count=1)
    with pytest.raises(ExplainError, match="batch_size"):
        score_cam(model, images, "conv2", 0, batch_size=0)
    with pytest.raises(ExplainError, match="Score-CAM cannot use layer 'gap'"):
        score_cam(model, images, "gap", 0)


def test_declares_cost_and_parameters() -> None:
    assert METHOD.cost is not None and METHOD.cost({"batch_size": 32}, (64, 64, 64), 256) == 257
    assert METHOD.parameters() == {"batch_size": 32}
