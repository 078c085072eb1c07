"""The layer tree and the default Grad-CAM layer, on small real Keras models."""

from __future__ import annotations

import keras
import pytest

from medvis_desktop.models.layers import (
    default_gradcam_layer,
    has_spatial_output,
    iter_layers,
    layer_tree,
)

L = keras.layers


def classifier(spatial=(32, 32)) -> keras.Model:
    conv, pool = (L.Conv2D, L.MaxPooling2D) if len(spatial) == 2 else (L.Conv3D, L.MaxPooling3D)
    gap = L.GlobalAveragePooling2D if len(spatial) == 2 else L.GlobalAveragePooling3D
    inputs = keras.Input((*spatial, 1))
    x = conv(4, 3, padding="same", name="conv1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="relu1")(x)
    x = pool(name="pool1")(x)
    x = conv(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = gap(name="gap")(x)
    outputs = L.Dense(2, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="classifier")


def all_conv_classifier() -> keras.Model:
    inputs = keras.Input((16, 16, 1))
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="features")(inputs)
    x = L.Conv2D(3, 1, name="logits")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Softmax(name="probs")(x))


def segmenter() -> keras.Model:
    inputs = keras.Input((16, 16, 1))
    down = L.Conv2D(4, 3, padding="same", activation="relu", name="enc")(inputs)
    x = L.MaxPooling2D(name="pool")(down)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="bottom")(x)
    x = L.UpSampling2D(name="up")(x)
    x = L.Concatenate(name="skip")([x, down])
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="dec")(x)
    return keras.Model(inputs, L.Conv2D(2, 1, activation="softmax", name="seg_logits")(x))


def nested() -> keras.Model:
    backbone = keras.Sequential(
        [keras.Input((16, 16, 1)), L.Conv2D(4, 3, activation="relu", name="c1"), L.Conv2D(4, 3, name="c2")],
        name="backbone",
    )
    inputs = keras.Input((16, 16, 1))
    x = L.GlobalMaxPooling2D(name="gmp")(backbone(inputs))
    return keras.Model(inputs, L.Dense(3, name="head")(x), name="outer")


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (classifier, "conv2"),
        (lambda: classifier((8, 16, 16)), "conv2"),
        (all_conv_classifier, "features"),
        (segmenter, "dec"),
        (nested, "backbone/c2"),
    ],
    ids=["classifier-2d", "classifier-3d", "skips-1x1-logits", "segmentation", "nested"],
)
def test_default_gradcam_layer(build, expected):
    assert default_gradcam_layer(build()) == expected


def test_layers_shrunk_to_one_voxel_are_not_the_default():
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(4, 3, padding="same", name="wide")(inputs)
    x = L.Conv2D(4, 8, name="collapsed")(x)  # 1×1 spatial output
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(x)))
    assert default_gradcam_layer(model) == "wide"


def test_tree_nests_counts_parameters_and_says_why_not():
    model = nested()
    methods = {"grad_cam": has_spatial_output}
    tree = layer_tree(model, methods)
    assert [node.kind for node in tree] == ["InputLayer", "Sequential", "GlobalMaxPooling2D", "Dense"]
    assert [node.path for node in tree][1:] == ["backbone", "gmp", "head"]
    assert tree[0].blocked["grad_cam"] == "the input itself has nothing to explain"
    backbone = next(node for node in tree if node.name == "backbone")
    assert [child.path for child in backbone.children] == ["backbone/c1", "backbone/c2"]
    assert backbone.children[0].output_shape == (None, 14, 14, 4)
    assert backbone.children[0].activation == "relu"
    assert backbone.children[0].blocked == {"grad_cam": None}
    head = next(node for node in tree if node.name == "head")
    assert "is not a stack of 2D feature maps" in head.blocked["grad_cam"]
    assert sum(node.parameters for node in tree) == model.count_params()
    assert [path for path, _ in iter_layers(model)][-3:] == ["backbone/c2", "gmp", "head"]
