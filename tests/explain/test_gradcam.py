"""Grad-CAM and Seg-Grad-CAM against a direct computation of eq. (1)-(2) of Selvaraju et al.

The reference splits the model by hand into a feature extractor and a head, takes the class
logit by hand (kernel and bias of the last layer, no softmax), differentiates with a plain
GradientTape, then alpha and ReLU(sum) in numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest
import tensorflow as tf

from medvis_desktop import explain

if TYPE_CHECKING:
    from tests.explain.conftest import Models

ENDINGS = ["dense_softmax", "activation_softmax", "softmax_layer", "dense_sigmoid", "logits"]


def direct_grad_cam(
    features: np.ndarray, head: Callable[[tf.Tensor], tf.Tensor], score: Callable
) -> np.ndarray:
    """ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of d score / d A_k."""
    activations = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(activations)
        total = score(head(activations))
    grads = tape.gradient(total, activations).numpy()
    spatial = tuple(range(1, features.ndim - 1))
    alpha = grads.mean(axis=spatial, keepdims=True)
    return np.maximum((alpha * features).sum(axis=-1), 0)


def dense_logits(layer: keras.layers.Layer) -> Callable[[tf.Tensor], tf.Tensor]:
    """The layer's pre-activation, computed from its weights (a Dense or a 1x1 conv)."""
    kernel = layer.kernel.numpy()
    kernel = kernel.reshape(-1, kernel.shape[-1])
    return lambda h: tf.tensordot(h, kernel, axes=1) + layer.bias.numpy()


def class_score(targets: Sequence[int], mask: np.ndarray | None = None) -> Callable:
    """Sum over samples of logit[target] (inside the mask, for dense outputs)."""

    def score(logits: tf.Tensor) -> tf.Tensor:
        picked = tf.gather(logits, targets, axis=-1, batch_dims=0)  # (N, ..., N)
        per_sample = tf.stack([picked[n, ..., n] for n in range(len(targets))])
        if mask is not None:
            per_sample *= mask
        return tf.reduce_sum(per_sample)

    return score


def run_layers(model: keras.Model, names: Sequence[str]) -> Callable[[tf.Tensor], tf.Tensor]:
    def run(h: tf.Tensor) -> tf.Tensor:
        for name in names:
            h = model.get_layer(name)(h)
        return h

    return run


def submodel(model: keras.Model, layer: str, x: np.ndarray) -> np.ndarray:
    return np.asarray(keras.Model(model.input, model.get_layer(layer).output)(x))


HEADS = {  # classifier layers between the target layer and the final Dense
    "conv1": ["pool1", "conv2", "conv3", "gap"],
    "conv2": ["conv3", "gap"],
    "conv3": ["gap"],
}


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("layer", list(HEADS))
def test_matches_direct_computation(models: Models, rank: int, layer: str) -> None:
    model = models.classifier(rank, "logits")
    x = models.images(rank)
    head = run_layers(model, HEADS[layer])
    logits = dense_logits(model.get_layer("dense"))
    features = submodel(model, layer, x)
    cams = []
    for target in range(3):
        expected = direct_grad_cam(features, lambda a: logits(head(a)), class_score([target] * 2))
        cam = explain.grad_cam(model, x, layer, target, upsample=False)
        assert cam.shape == expected.shape == (2, *model.get_layer(layer).output.shape[1:-1])
        np.testing.assert_allclose(cam, expected, rtol=1e-4, atol=1e-6)
        cams.append(cam)
    assert np.max(cams) > 0  # not a vacuous comparison of zeros


@pytest.mark.parametrize("ending", ["dense_softmax", "activation_softmax", "softmax_layer", "dense_sigmoid"])
def test_takes_the_logit_not_the_probability(models: Models, ending: str) -> None:
    model = models.classifier(2, ending)
    x = models.images(2)
    head = run_layers(model, HEADS["conv2"])
    logits = dense_logits(model.get_layer("dense"))
    squash = tf.nn.sigmoid if ending == "dense_sigmoid" else tf.nn.softmax
    features = submodel(model, "conv2", x)
    from_logit = direct_grad_cam(features, lambda a: logits(head(a)), class_score([2, 2]))
    from_probability = direct_grad_cam(features, lambda a: squash(logits(head(a))), class_score([2, 2]))
    cam = explain.grad_cam(model, x, "conv2", 2, upsample=False)
    assert from_logit.max() > 0
    np.testing.assert_allclose(cam, from_logit, rtol=1e-4, atol=1e-6)
    assert not np.allclose(cam, from_probability, rtol=1e-2, atol=1e-6)


@pytest.mark.parametrize("rank", [2, 3])
def test_nested_target_layer(models: Models, rank: int) -> None:
    model = models.nested(rank)
    backbone = model.get_layer("backbone")
    block = backbone.get_layer("block")
    x = models.images(rank)
    stem = model.get_layer("stem")(x)
    conv2 = np.asarray(block.get_layer("conv2")(backbone.get_layer("conv1")(stem)))
    logits = dense_logits(model.get_layer("dense"))

    def head(a: tf.Tensor) -> tf.Tensor:
        h = backbone.get_layer("conv3")(backbone.get_layer("pool")(tf.nn.relu(a)))
        return logits(model.get_layer("gap")(h))

    expected = direct_grad_cam(conv2, head, class_score([0, 2]))
    cam = explain.grad_cam(model, x, "backbone/block/conv2", [0, 2], upsample=False)
    assert expected[0].max() > 0 and expected[1].max() > 0
    np.testing.assert_allclose(cam, expected, rtol=1e-4, atol=1e-6)


def test_frozen_layers_are_differentiated_too(models: Models) -> None:
    model = models.nested(2)
    x = models.images(2)
    trainable = explain.grad_cam(model, x, "backbone/conv1", [0, 1])
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.trainable = False  # the usual transfer-learning set-up, taken to the end
    frozen = explain.grad_cam(copy, x, "backbone/conv1", [0, 1])
    assert trainable.max() > 0
    np.testing.assert_allclose(frozen, trainable, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rank", [2, 3])
def test_per_sample_targets_equal_separate_runs(models: Models, rank: int) -> None:
    model = models.classifier(rank)
    x = models.images(rank, count=3)
    together = explain.grad_cam(model, x, "conv2", [0, 2, 1])
    assert together.max() > 0
    for n, target in enumerate([0, 2, 1]):
        alone = explain.grad_cam(model, x[n : n + 1], "conv2", target)
        np.testing.assert_allclose(together[n : n + 1], alone, rtol=1e-4, atol=1e-6)


def interpolate(values: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Reference: np.interp along each axis at half-pixel centres (edges clamped)."""
    for axis, new in enumerate(size, start=1):
        old = values.shape[axis]
        where = (np.arange(new) + 0.5) * old / new - 0.5
        values = np.apply_along_axis(lambda v, w=where, n=old: np.interp(w, np.arange(n), v), axis, values)
    return values


@pytest.mark.parametrize("rank", [2, 3])
def test_upsampled_map_has_the_input_grid(models: Models, rank: int) -> None:
    model = models.classifier(rank)
    x = models.images(rank)
    raw = explain.grad_cam(model, x, "conv3", 0, upsample=False)
    full = explain.grad_cam(model, x, "conv3", 0)
    assert raw.max() > 0
    assert raw.shape == (2, *(models.side(rank) // 2,) * rank)
    assert full.shape == x.shape[:-1]
    np.testing.assert_allclose(full, interpolate(raw, x.shape[1:-1]), rtol=1e-5, atol=1e-6)
    if rank == 2:
        resized = tf.image.resize(raw[..., None], x.shape[1:-1], method="bilinear")[..., 0]
        np.testing.assert_allclose(full, resized, rtol=1e-5, atol=1e-6)


def box_mask(shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[tuple(slice(1, s // 2) for s in shape)] = True
    return mask


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("masked", [False, True])
def test_seg_grad_cam_sums_the_class_logits_in_the_region(models: Models, rank: int, masked: bool) -> None:
    model = models.segmenter(rank)
    x = models.images(rank)
    mask = box_mask((models.side(rank),) * rank) if masked else None
    logits = dense_logits(model.get_layer("classes"))
    expected = direct_grad_cam(
        submodel(model, "conv2", x),
        lambda a: logits(model.get_layer("up")(a)),
        class_score([1, 1], mask),
    )
    cam = explain.grad_cam(model, x, "conv2", 1, upsample=False, mask=mask)
    assert expected.max() > 0
    np.testing.assert_allclose(cam, expected, rtol=1e-4, atol=1e-6)


def test_seg_grad_cam_takes_one_mask_per_sample(models: Models) -> None:
    model = models.segmenter(2)
    x = models.images(2)
    masks = np.stack([box_mask((16, 16)), ~box_mask((16, 16))])
    together = explain.grad_cam(model, x, "conv2", 0, mask=masks)
    assert together.max() > 0
    for n in range(2):
        alone = explain.grad_cam(model, x[n : n + 1], "conv2", 0, mask=masks[n])
        np.testing.assert_allclose(together[n : n + 1], alone, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("rank", [2, 3])
def test_chooses_the_output_of_a_multi_output_model(models: Models, rank: int) -> None:
    model = models.two_outputs(rank)
    x = models.images(rank)
    features = submodel(model, "conv2", x)
    diagnosis = dense_logits(model.get_layer("diagnosis"))
    head = run_layers(model, ["gap"])
    targets = [3, 0]
    expected = direct_grad_cam(features, lambda a: diagnosis(head(a)), class_score(targets))
    by_name = explain.grad_cam(model, x, "conv2", targets, output="diagnosis", upsample=False)
    by_index = explain.grad_cam(model, x, "conv2", targets, output=0, upsample=False)
    assert expected[0].max() > 0 or expected[1].max() > 0
    np.testing.assert_allclose(by_name, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(by_index, expected, rtol=1e-4, atol=1e-6)

    mask = box_mask((models.side(rank),) * rank)
    lesion_logits = dense_logits(model.get_layer("lesion"))
    expected = direct_grad_cam(features, lesion_logits, class_score([1, 0], mask))
    lesion = explain.grad_cam(model, x, "conv2", [1, 0], output=1, mask=mask, upsample=False)
    assert expected[0].max() > 0 or expected[1].max() > 0
    np.testing.assert_allclose(lesion, expected, rtol=1e-4, atol=1e-6)


OUTPUT_CASES = [
    *[("classifier", ending, 0, "conv2") for ending in ENDINGS],
    ("nested", None, 0, "backbone/block/conv2"),
    ("segmenter", None, 0, "conv2"),
    ("two_outputs", None, 0, "conv2"),
    ("two_outputs", None, 1, "conv2"),
]


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize(("kind", "ending", "output", "layer"), OUTPUT_CASES)
def test_outputs_from_the_same_pass_are_the_models_own(
    models: Models, rank: int, kind: str, ending: str | None, output: int, layer: str
) -> None:
    """The viewer takes its scores from Grad-CAM's pass: they must be what the model itself
    gives (softmax or sigmoid included). (grad_cam is this function's maps, so the maps are
    checked by the direct computations above.)"""
    model = models.classifier(rank, ending) if kind == "classifier" else getattr(models, kind)(rank)
    x = models.images(rank)
    own = model(x, training=False)
    own = np.asarray(own[output] if isinstance(own, (list, tuple)) else own)
    _, outputs = explain.grad_cam_with_outputs(
        model, x, layer, 1, output=output if kind == "two_outputs" else None
    )
    np.testing.assert_allclose(outputs, own, rtol=1e-5, atol=1e-6)


def softmax_over_rows(rank: int, side: int) -> keras.Model:
    """A segmentation-shaped output whose Softmax runs over axis 1, not the last axis."""
    inputs = keras.Input((side,) * rank + (1,))
    conv = keras.layers.Conv2D if rank == 2 else keras.layers.Conv3D
    h = conv(4, 3, padding="same", activation="relu", name="conv")(inputs)
    return keras.Model(inputs, keras.layers.Softmax(axis=1, name="rows")(conv(3, 1, name="logits")(h)))


def chained_outputs(rank: int, side: int) -> keras.Model:
    """Two outputs, the second computed from the first's probabilities."""
    inputs = keras.Input((side,) * rank + (1,))
    conv = keras.layers.Conv2D if rank == 2 else keras.layers.Conv3D
    pool = keras.layers.GlobalAveragePooling2D if rank == 2 else keras.layers.GlobalAveragePooling3D
    h = pool()(conv(4, 3, padding="same", activation="relu", name="conv")(inputs))
    first = keras.layers.Dense(3, activation="softmax", name="first")(h)
    second = keras.layers.Dense(2, activation="softmax", name="second")(first)
    return keras.Model(inputs, [first, second])


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize(
    ("build", "output"), [(softmax_over_rows, None), (chained_outputs, 1), (chained_outputs, 0)]
)
def test_outputs_stay_the_models_own_for_awkward_endings(models: Models, rank: int, build, output) -> None:
    keras.utils.set_random_seed(1)
    model = build(rank, models.side(rank))
    x = models.images(rank)
    own = model(x, training=False)
    own = np.asarray(own if output is None else own[output])
    _, outputs = explain.grad_cam_with_outputs(model, x, "conv", 1, output=output)
    np.testing.assert_allclose(outputs, own, rtol=1e-5, atol=1e-6)
