"""Tiny seeded Keras models, 2D and 3D, built by code for the explanation tests."""

from __future__ import annotations

from types import ModuleType

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from medvis_desktop.explain import conv_gradient, pool_gradient
from medvis_desktop.models.runtime import Device


@pytest.fixture(autouse=True)
def fast_gradients_on_any_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """conv_gradient and pool_gradient choose their paths on the CPU only; their maths is
    checked on whatever device runs the tests."""
    cpu = Device("CPU", "the tests")
    for module in (conv_gradient, pool_gradient):
        monkeypatch.setattr(module, "device", lambda: cpu)


def side(rank: int) -> int:
    """Edge of the test images: 16x16 in 2D, 8x8x8 in 3D."""
    return 16 if rank == 2 else 8


def nd(name: str, rank: int) -> type[layers.Layer]:
    """The 2D or 3D version of a layer: nd("Conv", 3) is Conv3D."""
    return getattr(layers, f"{name}{rank}D")


def count_scoring_passes(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> list[int]:
    """The batch size of every `target_scores` pass that `module` (a method) makes from now on."""
    passes: list[int] = []
    scores = module.target_scores

    def counted(model: keras.Model, batch: np.ndarray, score: object) -> np.ndarray:
        passes.append(len(batch))
        return scores(model, batch, score)

    monkeypatch.setattr(module, "target_scores", counted)
    return passes


def backward_ops(run, x: np.ndarray) -> set[str]:
    """The op types of the compiled input gradient of sum(run(x))."""

    @tf.function
    def input_gradient(t: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(t)
            total = tf.reduce_sum(run(t))
        return tape.gradient(total, t)

    graph = input_gradient.get_concrete_function(tf.TensorSpec((None, *x.shape[1:]), tf.float32)).graph
    return {op.type for op in graph.get_operations()}


def value_and_input_gradient(run, x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """run(x) and the gradient of sum(run(x) * weights) with respect to x, by an eager tape."""
    tx = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tx)
        y = run(tx)
        total = tf.reduce_sum(y * weights)
    return y.numpy(), tape.gradient(total, tx).numpy()


def randomize(model: keras.Model, rng: np.random.Generator) -> keras.Model:
    """Non-trivial biases and batch-norm statistics (Keras starts them at 0 and 1)."""
    for weight in model.weights:
        name = weight.path.split("/")[-1]
        shape = tuple(weight.shape)
        if name in ("bias", "beta", "moving_mean"):
            weight.assign(rng.normal(0, 0.1, shape))
        elif name in ("gamma", "moving_variance"):
            weight.assign(rng.uniform(0.5, 1.5, shape))
    return model


class Models:
    """Builders of the test networks; every one seeded, a few filters, named layers."""

    side = staticmethod(side)
    nd = staticmethod(nd)

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def randomize(self, model: keras.Model) -> keras.Model:
        return randomize(model, self.rng)

    def images(self, rank: int, count: int = 2, channels: int = 1, size: int | None = None) -> np.ndarray:
        """A batch of Gaussian noise images, side(rank) wide unless `size` is given."""
        shape = (count, *(size or side(rank),) * rank, channels)
        return self.rng.normal(size=shape).astype(np.float32)

    def zeiler_fergus(
        self, rank: int, relu: str = "activation", channels: int = 1
    ) -> tuple[keras.Model, str]:
        """conv-ReLU-maxpool x2, conv-ReLU, classifier head: (model, name of the last ReLU).

        Layers conv1..conv3 (3x3, same), pool1, pool2 (2, stride 2); `relu` says how the
        ReLUs are written: activation="relu", ReLU layers or Activation("relu") layers.
        `channels` of input: from 8, conv1 back-propagates by explain/conv_gradient.py.
        """
        inputs = keras.Input((side(rank),) * rank + (channels,))
        h = inputs
        for i, filters in enumerate((3, 4, 3), start=1):
            built_in = "relu" if relu == "activation" else None
            h = nd("Conv", rank)(filters, 3, padding="same", activation=built_in, name=f"conv{i}")(h)
            if relu == "relu_layer":
                h = layers.ReLU(name=f"relu{i}")(h)
            elif relu == "activation_layer":
                h = layers.Activation("relu", name=f"relu{i}")(h)
            if i < 3:
                h = nd("MaxPooling", rank)(2, name=f"pool{i}")(h)
        top = "conv3" if relu == "activation" else "relu3"
        h = nd("GlobalAveragePooling", rank)(name="gap")(h)
        outputs = layers.Dense(3, name="logits")(h)
        return randomize(keras.Model(inputs, outputs, name="zf"), self.rng), top

    def classifier(self, rank: int, ending: str = "dense_softmax", channels: int = 1) -> keras.Model:
        """conv1-pool1-conv2-conv3-gap-dense with 3 classes; `ending` says how it ends:
        "dense_softmax" (Dense(softmax)), "activation_softmax" (Dense + Activation),
        "softmax_layer" (Dense + Softmax()), "dense_sigmoid", "logits" (no activation).
        `channels` of input: from 8, conv1 back-propagates by explain/conv_gradient.py."""
        inputs = keras.Input((side(rank),) * rank + (channels,))
        h = nd("Conv", rank)(4, 3, padding="same", activation="relu", name="conv1")(inputs)
        h = nd("MaxPooling", rank)(2, name="pool1")(h)
        h = nd("Conv", rank)(4, 3, padding="same", activation="relu", name="conv2")(h)
        h = nd("Conv", rank)(5, 3, padding="same", activation="relu", name="conv3")(h)
        h = nd("GlobalAveragePooling", rank)(name="gap")(h)
        activation = {"dense_softmax": "softmax", "dense_sigmoid": "sigmoid"}.get(ending)
        h = layers.Dense(3, activation=activation, name="dense")(h)
        if ending == "activation_softmax":
            h = layers.Activation("softmax", name="probabilities")(h)
        elif ending == "softmax_layer":
            h = layers.Softmax(name="probabilities")(h)
        return randomize(keras.Model(inputs, h, name=f"classifier_{ending}"), self.rng)

    def nested(self, rank: int) -> keras.Model:
        """outer = stem conv -> backbone -> gap -> dense(softmax); backbone (functional) =
        conv1 -> block (Sequential: conv2, ReLU) -> pool -> conv3. Paths like
        "backbone/block/conv2" reach two levels down."""
        shape = (side(rank),) * rank
        block = keras.Sequential(
            [
                keras.Input((*shape, 4)),
                nd("Conv", rank)(4, 3, padding="same", name="conv2"),
                layers.ReLU(name="relu2"),
            ],
            name="block",
        )
        backbone_in = keras.Input((*shape, 3))
        h = nd("Conv", rank)(4, 3, padding="same", activation="relu", name="conv1")(backbone_in)
        h = block(h)
        h = nd("MaxPooling", rank)(2, name="pool")(h)
        h = nd("Conv", rank)(5, 3, padding="same", activation="relu", name="conv3")(h)
        backbone = keras.Model(backbone_in, h, name="backbone")
        inputs = keras.Input((*shape, 1))
        h = nd("Conv", rank)(3, 1, name="stem")(inputs)
        h = backbone(h, training=False)
        h = nd("GlobalAveragePooling", rank)(name="gap")(h)
        outputs = layers.Dense(3, activation="softmax", name="dense")(h)
        return randomize(keras.Model(inputs, outputs, name="outer"), self.rng)

    def segmenter(self, rank: int) -> keras.Model:
        """conv1-pool-conv2-upsample-conv3(1x1, 3 classes, softmax): output (N, *spatial, 3)."""
        inputs = keras.Input((side(rank),) * rank + (1,))
        h = nd("Conv", rank)(4, 3, padding="same", activation="relu", name="conv1")(inputs)
        h = nd("MaxPooling", rank)(2, name="pool")(h)
        h = nd("Conv", rank)(4, 3, padding="same", activation="relu", name="conv2")(h)
        h = nd("UpSampling", rank)(2, name="up")(h)
        outputs = nd("Conv", rank)(3, 1, activation="softmax", name="classes")(h)
        return randomize(keras.Model(inputs, outputs, name="segmenter"), self.rng)

    def two_outputs(self, rank: int) -> keras.Model:
        """Shared conv trunk, a classification head "diagnosis" (4 classes, softmax) and a
        segmentation head "lesion" (2 classes, 1x1 conv, softmax)."""
        inputs = keras.Input((side(rank),) * rank + (1,))
        h = nd("Conv", rank)(4, 3, padding="same", activation="relu", name="conv1")(inputs)
        h = nd("Conv", rank)(4, 3, padding="same", activation="relu", name="conv2")(h)
        pooled = nd("GlobalAveragePooling", rank)(name="gap")(h)
        diagnosis = layers.Dense(4, activation="softmax", name="diagnosis")(pooled)
        lesion = nd("Conv", rank)(2, 1, activation="softmax", name="lesion")(h)
        model = keras.Model(inputs, [diagnosis, lesion], name="two_outputs")
        return randomize(model, self.rng)


@pytest.fixture(autouse=True)
def _seed() -> None:
    keras.utils.set_random_seed(0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def models(rng: np.random.Generator) -> Models:
    return Models(rng)
