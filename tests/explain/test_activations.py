"""Activation maps and dead filters, against Keras' own forward pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest
from keras import layers

from medvis_desktop import explain
from medvis_desktop.explain import activations

if TYPE_CHECKING:
    from tests.explain.conftest import Models


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("layer", ["conv1", "pool1", "conv3"])
def test_flat_model_matches_keras_submodel(models: Models, rank: int, layer: str) -> None:
    model = models.classifier(rank)
    x = models.images(rank)
    expected = keras.Model(model.input, model.get_layer(layer).output)(x)
    maps = explain.activation_maps(model, x, layer)
    assert maps.dtype == np.float32
    np.testing.assert_allclose(maps, np.asarray(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rank", [2, 3])
def test_nested_layers_match_a_two_stage_forward_pass(models: Models, rank: int) -> None:
    model = models.nested(rank)
    backbone = model.get_layer("backbone")
    block = backbone.get_layer("block")
    x = models.images(rank)
    stem = np.asarray(model.get_layer("stem")(x))  # stage 1: the outer layers before
    conv1 = np.asarray(backbone.get_layer("conv1")(stem))  # stage 2: inside the backbone

    np.testing.assert_allclose(
        explain.activation_maps(model, x, "backbone/conv1"), conv1, rtol=1e-5, atol=1e-6
    )
    conv2 = np.asarray(block.get_layer("conv2")(conv1))  # two levels down
    np.testing.assert_allclose(
        explain.activation_maps(model, x, "backbone/block/conv2"), conv2, rtol=1e-5, atol=1e-6
    )
    relu2 = np.maximum(conv2, 0)
    np.testing.assert_allclose(
        explain.activation_maps(model, x, "backbone/block"), relu2, rtol=1e-5, atol=1e-6
    )
    pooled = np.asarray(backbone.get_layer("pool")(relu2))
    conv3 = np.asarray(backbone.get_layer("conv3")(pooled))
    np.testing.assert_allclose(
        explain.activation_maps(model, x, "backbone/conv3"), conv3, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(explain.activation_maps(model, x, "backbone"), conv3, rtol=1e-5, atol=1e-6)


def test_sequential_model_and_nested_sequential(models: Models) -> None:
    inner = keras.Sequential(
        [layers.Conv2D(3, 3, padding="same", name="c"), layers.ReLU(name="r")], name="inner"
    )
    model = keras.Sequential([keras.Input((16, 16, 1)), inner, layers.MaxPooling2D(name="pool")], name="seq")
    x = models.images(2)
    expected = np.maximum(np.asarray(inner.get_layer("c")(x)), 0)
    np.testing.assert_allclose(explain.activation_maps(model, x, "inner/r"), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        explain.activation_maps(model, x, "pool"),
        np.asarray(model.get_layer("pool")(expected)),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("rank", [2, 3])
def test_sequential_models_explain_like_their_functional_twin(models: Models, rank: int) -> None:
    """The same layer objects as a Sequential (with a nested Sequential) and as a functional
    model: the layer-by-layer walk must give what the functional replay gives."""
    inner = keras.Sequential(
        [
            models.nd("Conv", rank)(3, 3, padding="same", activation="relu", name="c"),
            models.nd("MaxPooling", rank)(name="p"),
        ],
        name="inner",
    )
    head = [
        models.nd("Conv", rank)(4, 3, padding="same", activation="relu", name="c2"),
        models.nd("GlobalAveragePooling", rank)(name="gap"),
        layers.Dense(3, activation="softmax", name="dense"),
    ]
    shape = (models.side(rank),) * rank + (1,)
    sequential = models.randomize(keras.Sequential([keras.Input(shape), inner, *head]))
    inputs = keras.Input(shape)
    h = inner(inputs)
    for layer in head:
        h = layer(h)
    functional = keras.Model(inputs, h)
    x = models.images(rank)
    for layer in ("inner/c", "c2"):
        for twin_a, twin_b in [
            (explain.grad_cam(sequential, x, layer, [0, 2]), explain.grad_cam(functional, x, layer, [0, 2])),
            (explain.deconvnet(sequential, x, layer, 1), explain.deconvnet(functional, x, layer, 1)),
        ]:
            assert np.abs(twin_a).max() > 0
            np.testing.assert_allclose(twin_a, twin_b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rank", [2, 3])
def test_dead_filters_flags_a_filter_that_never_fires(models: Models, rank: int) -> None:
    inputs = keras.Input((models.side(rank),) * rank + (1,))
    conv = models.nd("Conv", rank)(3, 3, padding="same", activation="relu", name="conv")
    model = keras.Model(inputs, conv(inputs))
    kernel = np.abs(models.rng.normal(size=tuple(conv.kernel.shape))).astype(np.float32)
    kernel[..., 1] *= -1  # filter 1: all weights negative...
    conv.kernel.assign(kernel)
    conv.bias.assign(np.array([0.1, -5.0, 0.0], np.float32))  # ...and a very negative bias
    x = np.abs(models.images(rank))  # positive inputs: filter 1 can never fire
    np.testing.assert_array_equal(explain.dead_filters(model, x, "conv"), [False, True, False])


def test_target_layers_lists_spatial_layers_with_nested_paths(models: Models) -> None:
    model = models.nested(2)
    expected = [
        "stem",
        "backbone",
        "backbone/conv1",
        "backbone/block",
        "backbone/block/conv2",
        "backbone/block/relu2",
        "backbone/pool",
        "backbone/conv3",
    ]
    for method in explain.METHODS:
        assert explain.target_layers(model, method) == expected


def test_a_firing_record_finds_dead_filters_running_each_input_once(monkeypatch) -> None:
    """Filter 0 fires on positive pixels, filter 1 on negative ones: which inputs were seen
    decides what is dead, and only inputs not seen yet (by their values) go through the model."""
    inputs = keras.Input((6, 6, 1))
    conv = layers.Conv2D(2, 1, activation="relu", name="conv")
    model = keras.Model(inputs, conv(inputs))
    conv.kernel.assign(np.array([1.0, -1.0], np.float32).reshape(1, 1, 1, 2))
    conv.bias.assign(np.zeros(2, np.float32))
    positive, zero, negative = (np.full((1, 6, 6, 1), v, np.float32) for v in (1.0, 0.0, -1.0))
    run: list[int] = []
    real = activations.activation_maps

    def counted(model, batch, layer):
        run.append(len(batch))
        return real(model, batch, layer)

    monkeypatch.setattr(activations, "activation_maps", counted)
    record = activations.FiringRecord()
    dead = record.dead(model, "conv", [positive, zero])
    np.testing.assert_array_equal(dead, explain.dead_filters(model, np.concatenate([positive, zero]), "conv"))
    np.testing.assert_array_equal(dead, [False, True])
    assert run == [2, 2]  # the record runs both inputs at once; so does dead_filters
    run.clear()
    np.testing.assert_array_equal(record.dead(model, "conv", [zero, positive]), [False, True])
    np.testing.assert_array_equal(record.dead(model, "conv", [positive, negative]), [False, False])
    assert run == [1]  # only the negative input was new
    zero[:, :3] = -1.0  # a slice decoded since: its input's values changed
    np.testing.assert_array_equal(record.dead(model, "conv", [zero]), [True, False])
    assert run == [1, 1]
    other = keras.models.clone_model(model)
    other.set_weights([-w for w in model.get_weights()])  # filter 1 on positive pixels now
    np.testing.assert_array_equal(record.dead(other, "conv", [positive]), [True, False])
    assert len(record.fired) == 1  # another model: what the first one fired on is gone
