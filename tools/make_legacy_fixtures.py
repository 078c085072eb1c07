"""Make the Keras 2 era .h5 fixtures in tests/models/fixtures with real Keras 2 (tf_keras).

Medical groups have models on disk saved by Keras 2; Keras 3 reads some of them and not
others. The tests need such files plus an independent reference: each model is saved with a
fixed input batch and the predictions Keras 2 itself computed (`<name>.npz`), so the loader
is checked against Keras 2, never against itself.

Run once, by hand, with tf_keras installed (the package and the tests never import it):

    pip install 'tf-keras==2.21.*'
    TF_ENABLE_ONEDNN_OPTS=0 python tools/make_legacy_fixtures.py
    pip uninstall -y tf-keras

Deterministic: fixed seeds, and every weight (batch-norm statistics too) is set from a
seeded generator so that a weight loaded into the wrong slot changes the predictions.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tf_keras as k2
from tf_keras import layers

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "models" / "fixtures"
BATCH = 3
# The Lambda fixture's function creates this file (path from the environment, else the default)
# whenever it runs: the tests assert that a refused load never ran it.
LAMBDA_MARKER_ENV = "MEDVIS_LAMBDA_MARKER"


def conv_bn_relu(x, filters: int, name: str, conv=layers.Conv2D):
    x = conv(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def flat_functional_2d() -> k2.Model:
    """(a) The classic classifier: conv/bn/relu/maxpool twice, global pooling, softmax."""
    inputs = layers.Input((32, 32, 1), name="image")
    x = conv_bn_relu(inputs, 8, "block1")
    x = layers.MaxPooling2D(name="block1_pool")(x)
    x = conv_bn_relu(x, 16, "block2")
    x = layers.MaxPooling2D(name="block2_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(3, activation="softmax", name="predictions")(x)
    return k2.Model(inputs, outputs, name="flat_functional_2d")


def sequential_2d() -> k2.Model:
    """(b) A Sequential radiograph classifier with dropout and a dense head."""
    return k2.Sequential(
        [
            layers.Conv2D(8, 3, activation="relu", input_shape=(32, 32, 1), name="conv1"),
            layers.MaxPooling2D(name="pool1"),
            layers.Conv2D(8, 3, activation="relu", name="conv2"),
            layers.AveragePooling2D(name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dropout(0.5, name="dropout"),
            layers.Dense(16, activation="relu", name="fc"),
            layers.Dense(2, activation="softmax", name="predictions"),
        ],
        name="sequential_2d",
    )


def residual_block(shape: tuple[int, ...], filters: int, name: str, conv=layers.Conv2D) -> k2.Model:
    """A functional sub-model: two conv/bn, a skip connection (Add), relu."""
    inputs = layers.Input(shape, name=f"{name}_in")
    x = conv_bn_relu(inputs, filters, f"{name}_a", conv)
    x = conv(filters, 3, padding="same", name=f"{name}_b_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_b_bn")(x)
    x = layers.Add(name=f"{name}_add")([inputs, x])
    outputs = layers.Activation("relu", name=f"{name}_out")(x)
    return k2.Model(inputs, outputs, name=name)


def nested_2d() -> k2.Model:
    """(c) A nested Sequential feature extractor, then a nested functional residual block."""
    features = k2.Sequential(
        [
            layers.Conv2D(8, 3, padding="same", input_shape=(32, 32, 1), name="feat_conv"),
            layers.BatchNormalization(name="feat_bn"),
            layers.ReLU(name="feat_relu"),
            layers.MaxPooling2D(name="feat_pool"),
        ],
        name="features",
    )
    block = residual_block((16, 16, 8), 8, "res_block")
    inputs = layers.Input((32, 32, 1), name="image")
    x = block(features(inputs))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(3, activation="softmax", name="predictions")(x)
    return k2.Model(inputs, outputs, name="nested_2d")


def bilateral_shared() -> k2.Model:
    """(c') Two mammographic views through one shared Sequential encoder (called twice).

    A shared functional head scores each breast against the other; both outputs come straight
    from its two calls (Keras 2 node indices 1 and 2).
    """
    encoder = k2.Sequential(
        [
            layers.Conv2D(4, 3, activation="relu", input_shape=(24, 24, 1), name="enc_conv"),
            layers.MaxPooling2D(name="enc_pool"),
            layers.GlobalMaxPooling2D(name="enc_gmp"),
        ],
        name="encoder",
    )
    head_in = layers.Input((8,), name="head_in")
    head = k2.Model(head_in, layers.Dense(1, activation="sigmoid", name="malignant")(head_in), name="head")
    left = layers.Input((24, 24, 1), name="left_cc")
    right = layers.Input((24, 24, 1), name="right_cc")
    left_features, right_features = encoder(left), encoder(right)
    left_first = layers.Concatenate(name="left_first")([left_features, right_features])
    right_first = layers.Concatenate(name="right_first")([right_features, left_features])
    return k2.Model([left, right], [head(left_first), head(right_first)], name="bilateral_shared")


def nested_3d() -> k2.Model:
    """(d) A 3D CT classifier: Sequential stem, residual block nesting a Sequential, Sequential head."""
    stem = k2.Sequential(
        [
            layers.Conv3D(4, 3, padding="same", input_shape=(12, 12, 12, 1), name="stem_conv"),
            layers.BatchNormalization(name="stem_bn"),
            layers.Activation("relu", name="stem_relu"),
            layers.MaxPooling3D(name="stem_pool"),
        ],
        name="stem",
    )
    inner = k2.Sequential(
        [
            layers.Conv3D(4, 3, padding="same", input_shape=(6, 6, 6, 4), name="inner_conv"),
            layers.BatchNormalization(name="inner_bn"),
        ],
        name="inner",
    )
    block_in = layers.Input((6, 6, 6, 4), name="block_in")
    added = layers.Add(name="block_add")([block_in, inner(block_in)])
    block = k2.Model(block_in, layers.ReLU(name="block_relu")(added), name="block3d")
    head = k2.Sequential(
        [
            layers.GlobalAveragePooling3D(input_shape=(6, 6, 6, 4), name="gap"),
            layers.Dense(2, activation="softmax", name="predictions"),
        ],
        name="head",
    )
    inputs = layers.Input((12, 12, 12, 1), name="volume")
    return k2.Model(inputs, head(block(stem(inputs))), name="nested_3d")


def with_lambda() -> k2.Model:
    """(e) A Lambda layer whose function leaves a marker file, named by MEDVIS_LAMBDA_MARKER,
    each time it runs (without that variable it fails, which shows just as well that it ran)."""
    inputs = layers.Input((16, 16, 1), name="image")
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = layers.Lambda(
        lambda t: (
            open(__import__("os").environ["MEDVIS_LAMBDA_MARKER"], "a").close(),
            t,
        )[1],
        name="marker_lambda",
    )(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(2, activation="softmax", name="predictions")(x)
    return k2.Model(inputs, outputs, name="with_lambda")


def randomise_weights(model: k2.Model, rng: np.random.Generator) -> None:
    """Distinct, moderate values in every weight; variances stay positive."""
    for weight in model.weights:
        shape = tuple(weight.shape)
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        values = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        if "moving_variance" in weight.name:
            values = rng.uniform(0.5, 2.0, shape)
        elif "gamma" in weight.name:
            values = rng.uniform(0.5, 1.5, shape)
        weight.assign(values.astype(np.float32))


def save_fixture(name: str, build: Callable[[], k2.Model], seed: int) -> None:
    k2.utils.set_random_seed(seed)
    model = build()
    rng = np.random.default_rng(seed)
    randomise_weights(model, rng)
    inputs = [rng.normal(0.0, 1.0, (BATCH, *tensor.shape[1:])).astype(np.float32) for tensor in model.inputs]
    predicted = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    outputs = predicted if isinstance(predicted, list) else [predicted]
    model.save(FIXTURES / f"{name}.h5", save_format="h5", include_optimizer=False)
    arrays = {f"input_{i}": x for i, x in enumerate(inputs)} | {
        f"output_{i}": y for i, y in enumerate(outputs)
    }
    np.savez_compressed(FIXTURES / f"{name}.npz", **arrays)
    size = (FIXTURES / f"{name}.h5").stat().st_size
    print(f"{name}: {size} bytes, outputs {[np.round(y, 3).tolist() for y in outputs]}")


FIXTURE_BUILDERS: dict[str, Callable[[], k2.Model]] = {
    "flat_functional_2d": flat_functional_2d,
    "sequential_2d": sequential_2d,
    "nested_2d": nested_2d,
    "bilateral_shared": bilateral_shared,
    "nested_3d": nested_3d,
    "with_lambda": with_lambda,
}


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        # Building the Lambda model runs its function: keep its marker out of the way.
        os.environ[LAMBDA_MARKER_ENV] = str(Path(scratch) / "marker")
        for seed, (name, build) in enumerate(FIXTURE_BUILDERS.items(), start=1):
            save_fixture(name, build, seed)


if __name__ == "__main__":
    main()
