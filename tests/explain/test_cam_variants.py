"""Grad-CAM++, HiResCAM, LayerCAM, XGrad-CAM and Eigen-CAM against the papers' formulas written
out in numpy, on activations and gradients taken eagerly with a plain GradientTape (not the
compiled replay the methods use), and against cases whose answer is known in closed form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest
import tensorflow as tf

from medvis_desktop.explain.base import ExplainError, Method
from medvis_desktop.explain.eigen_cam import METHOD as EIGEN_CAM
from medvis_desktop.explain.gradcam import grad_cam
from medvis_desktop.explain.gradcam_plus_plus import METHOD as GRAD_CAM_PLUS_PLUS
from medvis_desktop.explain.hires_cam import METHOD as HIRES_CAM
from medvis_desktop.explain.layer_cam import METHOD as LAYER_CAM
from medvis_desktop.explain.xgrad_cam import METHOD as XGRAD_CAM

if TYPE_CHECKING:
    from tests.explain.conftest import Models

METHODS: dict[str, Method] = {
    method.name: method for method in (GRAD_CAM_PLUS_PLUS, HIRES_CAM, LAYER_CAM, XGRAD_CAM, EIGEN_CAM)
}


def relu(values: np.ndarray) -> np.ndarray:
    return np.maximum(values, 0)


def spatial(features: np.ndarray) -> tuple[int, ...]:
    return tuple(range(1, features.ndim - 1))


def plus_plus(features: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Chattopadhay et al.'s closed-form alpha for an exponential score (0 where its
    denominator is 0), weights Σ_space alpha·ReLU(g)."""
    total = features.sum(axis=spatial(features), keepdims=True)
    denominator = 2 * grads**2 + total * grads**3
    alpha = np.divide(grads**2, denominator, out=np.zeros_like(grads), where=denominator != 0)
    weights = (alpha * relu(grads)).sum(axis=spatial(features), keepdims=True)
    return (weights * features).sum(axis=-1)


def xgrad(features: np.ndarray, grads: np.ndarray) -> np.ndarray:
    axes = spatial(features)
    weights = (grads * features).sum(axis=axes, keepdims=True) / (
        features.sum(axis=axes, keepdims=True) + 1e-7
    )
    return (weights * features).sum(axis=-1)


# The map before the ReLU, from the layer's activations and the gradients of the score.
REFERENCES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "grad_cam_plus_plus": plus_plus,
    "hires_cam": lambda features, grads: (grads * features).sum(axis=-1),
    "layer_cam": lambda features, grads: (relu(grads) * features).sum(axis=-1),
    "xgrad_cam": xgrad,
}


def run(name: str, model: keras.Model, x: np.ndarray, layer: str, target: object = 0, **kwargs) -> np.ndarray:
    method = METHODS[name]
    if method.uses_target:
        return method.run(model, x, layer, target, **kwargs)
    return method.run(model, x, layer, **kwargs)


def features_and_gradients(
    model: keras.Model, layer: str, x: np.ndarray, targets: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """A at `layer` and d(Σ_n logit[n, target_n]) / dA; the model must end in logits."""
    split = keras.Model(model.input, [model.get_layer(layer).output, model.output])
    with tf.GradientTape() as tape:
        features, logits = split(tf.constant(x))
        score = tf.reduce_sum(tf.gather(logits, targets, batch_dims=1))
    return features.numpy(), tape.gradient(score, features).numpy()


def tape_gradients(features: np.ndarray, score: Callable[[tf.Tensor], tf.Tensor]) -> np.ndarray:
    activations = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(activations)
        total = score(activations)
    return tape.gradient(total, activations).numpy()


def pointwise(layer: keras.layers.Layer) -> Callable[[tf.Tensor], tf.Tensor]:
    """The pre-activation of a Dense or 1x1 conv, from its weights."""
    kernel = layer.kernel.numpy()
    kernel = kernel.reshape(-1, kernel.shape[-1])
    return lambda h: tf.tensordot(h, kernel, axes=1) + layer.bias.numpy()


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("layer", ["conv1", "conv3"])
@pytest.mark.parametrize("name", list(REFERENCES))
def test_matches_the_papers_formula(models: Models, rank: int, layer: str, name: str) -> None:
    model = models.classifier(rank, "logits")
    x = models.images(rank)
    features, grads = features_and_gradients(model, layer, x, [0, 2])
    expected = relu(REFERENCES[name](features, grads))
    cam = run(name, model, x, layer, [0, 2], upsample=False)
    assert expected.max() > 0
    np.testing.assert_allclose(cam, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("rank", [2, 3])
def test_grad_cam_plus_plus_after_global_pooling_and_zero_gradient(models: Models, rank: int) -> None:
    """After GAP + Dense, g_c = W[c, t] / P at all P positions, so w_c = P·ReLU(g_c) / (2 + S_c·g_c)
    (S_c = Σ_space A_c). A zero row of W gives a channel with g = 0: alpha is 0/0 there, and
    must count as 0."""
    model = models.classifier(rank, "logits")
    dense = model.get_layer("dense")
    kernel = dense.kernel.numpy()
    kernel[1] = 0
    dense.kernel.assign(kernel)
    x = models.images(rank)
    features = np.asarray(keras.Model(model.input, model.get_layer("conv3").output)(x))
    positions = np.prod(features.shape[1:-1])
    grads = kernel[:, 2] / positions
    totals = features.sum(axis=spatial(features))  # (N, C)
    weights = np.where(grads != 0, positions * relu(grads) / (2 + totals * grads), 0)
    expected = relu(np.einsum("n...c,nc->n...", features, weights))
    cam = GRAD_CAM_PLUS_PLUS.run(model, x, "conv3", 2, upsample=False)
    assert features[..., 1].max() > 0 and expected.max() > 0
    assert np.isfinite(cam).all()
    np.testing.assert_allclose(cam, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("rank", [2, 3])
def test_hires_cam_equals_grad_cam_after_global_pooling(models: Models, rank: int) -> None:
    """With GAP + Dense after the layer, g_c is constant over space and equals its mean, so
    Σ_c g_c A_c is Grad-CAM's Σ_c mean(g_c) A_c; one conv earlier the two differ."""
    model = models.classifier(rank)
    x = models.images(rank)
    hires = HIRES_CAM.run(model, x, "conv3", [1, 2])
    expected = grad_cam(model, x, "conv3", [1, 2])
    assert expected.max() > 0
    np.testing.assert_allclose(hires, expected, rtol=1e-5, atol=1e-7)
    earlier = HIRES_CAM.run(model, x, "conv2", [1, 2], upsample=False)
    assert not np.allclose(earlier, grad_cam(model, x, "conv2", [1, 2], upsample=False), rtol=1e-2)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_explains_the_logit_not_the_probability(models: Models, name: str) -> None:
    model = models.classifier(2, "dense_softmax")
    logits = models.classifier(2, "logits")
    logits.set_weights(model.get_weights())
    x = models.images(2)
    cam = run(name, model, x, "conv2", [0, 1], upsample=False)
    assert cam.max() > 0
    np.testing.assert_allclose(
        cam, run(name, logits, x, "conv2", [0, 1], upsample=False), rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize("rank", [2, 3])
def test_layer_cam_in_a_nested_model(models: Models, rank: int) -> None:
    model = models.nested(rank)
    x = models.images(rank)
    features = np.asarray(model.get_layer("backbone")(model.get_layer("stem")(x)))  # backbone/conv3
    dense = pointwise(model.get_layer("dense"))
    logits = lambda a: dense(tf.reduce_mean(a, axis=spatial(features)))  # noqa: E731
    grads = tape_gradients(features, lambda a: tf.reduce_sum(tf.gather(logits(a), [0, 2], batch_dims=1)))
    expected = relu(REFERENCES["layer_cam"](features, grads))
    cam = LAYER_CAM.run(model, x, "backbone/conv3", [0, 2], upsample=False)
    assert expected.max() > 0
    np.testing.assert_allclose(cam, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("rank", [2, 3])
def test_xgrad_cam_on_a_segmentation_region(models: Models, rank: int) -> None:
    """The score is the sum of class 1's logits inside the mask (Seg-Grad-CAM)."""
    model = models.segmenter(rank)
    x = models.images(rank)
    mask = np.zeros((models.side(rank),) * rank, bool)
    mask[tuple(slice(1, models.side(rank) // 2) for _ in range(rank))] = True
    features = np.asarray(keras.Model(model.input, model.get_layer("conv2").output)(x))
    classes = pointwise(model.get_layer("classes"))
    grads = tape_gradients(
        features, lambda a: tf.reduce_sum(classes(model.get_layer("up")(a))[..., 1] * mask.astype(np.float32))
    )
    expected = relu(REFERENCES["xgrad_cam"](features, grads))
    cam = XGRAD_CAM.run(model, x, "conv2", 1, upsample=False, mask=mask)
    assert expected.max() > 0
    np.testing.assert_allclose(cam, expected, rtol=1e-4, atol=1e-6)


def mixer(rank: int, side: int, kernel: np.ndarray) -> keras.Model:
    """A 1x1 conv "mix" from one channel to len(kernel), then a head Eigen-CAM does not use."""
    inputs = keras.Input((side,) * rank + (1,))
    mix = getattr(keras.layers, f"Conv{rank}D")(len(kernel), 1, name="mix")
    pool = getattr(keras.layers, f"GlobalAveragePooling{rank}D")()
    model = keras.Model(inputs, keras.layers.Dense(2)(pool(mix(inputs))))
    mix.set_weights([kernel.reshape((1,) * rank + (1, -1)), np.array([0.5, -1.0, 2.0], np.float32)])
    return model


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_eigen_cam_of_rank_one_activations(models: Models, rank: int, sign: float) -> None:
    """A = x·k + b: centred, (x - mean x)·kᵀ is rank one, its first principal direction ±k/|k|,
    the projection ±|k|·(x - mean x). The channel-mean map x·mean(k) + const correlates with
    +(x - mean x) when mean(k) > 0, so the oriented projection is sign(mean k)·|k|·(x - mean x)."""
    kernel = sign * np.array([1.0, -2.0, 4.0], np.float32)  # mean(k) has the sign of `sign`
    model = mixer(rank, models.side(rank), kernel)
    x = models.images(rank)[..., 0]
    centred = x - x.mean(axis=tuple(range(1, x.ndim)), keepdims=True)
    expected = relu(sign * np.linalg.norm(kernel) * centred)
    cam = EIGEN_CAM.run(model, x[..., None], "mix")  # no target
    assert not EIGEN_CAM.uses_target
    np.testing.assert_allclose(cam, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rank", [2, 3])
def test_eigen_cam_is_the_top_eigenvector_of_the_covariance(models: Models, rank: int) -> None:
    """Reference from the eigendecomposition of the centred Gram matrix (not an SVD)."""
    model = models.classifier(rank)
    x = models.images(rank)
    features = np.asarray(keras.Model(model.input, model.get_layer("conv2").output)(x), np.float64)
    expected = []
    for sample in features:
        matrix = sample.reshape(-1, sample.shape[-1])
        centred = matrix - matrix.mean(axis=0)
        _, vectors = np.linalg.eigh(centred.T @ centred)
        projection = centred @ vectors[:, -1]
        projection *= np.sign(np.corrcoef(projection, matrix.mean(axis=1))[0, 1])
        expected.append(relu(projection).reshape(sample.shape[:-1]))
    cam = EIGEN_CAM.run(model, x, "conv2", upsample=False)
    assert np.max(expected) > 0
    np.testing.assert_allclose(cam, np.array(expected), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("name", list(METHODS))
def test_map_shapes(models: Models, rank: int, name: str) -> None:
    model = models.classifier(rank)
    x = models.images(rank)
    assert run(name, model, x, "conv3").shape == x.shape[:-1]
    layer_grid = (models.side(rank) // 2,) * rank
    assert run(name, model, x, "conv3", upsample=False).shape == (2, *layer_grid)


@pytest.mark.parametrize("name", list(METHODS))
def test_a_dense_layer_is_refused(models: Models, name: str) -> None:
    model = models.classifier(2)
    with pytest.raises(ExplainError, match="cannot use layer 'dense'"):
        run(name, model, models.images(2), "dense")


@pytest.mark.parametrize("name", list(REFERENCES))
def test_outputs_from_the_same_pass_are_the_models_own(models: Models, name: str) -> None:
    model = models.classifier(3)
    x = models.images(3)
    maps, outputs = METHODS[name].run_with_outputs(model, x, "conv2", [2, 0])
    np.testing.assert_allclose(maps, METHODS[name].run(model, x, "conv2", [2, 0]), rtol=1e-6)
    np.testing.assert_allclose(outputs, np.asarray(model(x, training=False)), rtol=1e-5, atol=1e-6)
