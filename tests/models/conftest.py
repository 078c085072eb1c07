"""Keras 2 era fixtures (made by tools/make_legacy_fixtures.py with real Keras 2) and helpers."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The Lambda fixture's function creates the file named by this variable whenever it runs.
LAMBDA_MARKER_ENV = "MEDVIS_LAMBDA_MARKER"


@dataclass(frozen=True)
class Reference:
    """A fixed input batch and what Keras 2 itself predicted for it."""

    inputs: list[np.ndarray]
    outputs: list[np.ndarray]


def fixture_path(name: str) -> Path:
    path = FIXTURES / f"{name}.h5"
    assert path.exists(), f"{path} is missing: run tools/make_legacy_fixtures.py (see its docstring)"
    return path


def reference(name: str) -> Reference:
    with np.load(FIXTURES / f"{name}.npz") as arrays:
        return Reference(_numbered(arrays, "input"), _numbered(arrays, "output"))


def _numbered(arrays: np.lib.npyio.NpzFile, prefix: str) -> list[np.ndarray]:
    return [arrays[f"{prefix}_{i}"] for i in range(sum(key.startswith(prefix) for key in arrays))]


def h5_config(path: Path) -> dict:
    with h5py.File(path, "r") as h5:
        return json.loads(h5.attrs["model_config"])


def rewrite_config(source: Path, target: Path, config: dict) -> Path:
    """A copy of the .h5 model `source` with another model config."""
    shutil.copy(source, target)
    with h5py.File(target, "r+") as h5:
        h5.attrs["model_config"] = json.dumps(config)
    return target


def predict(model: keras.Model, inputs: list[np.ndarray]) -> list[np.ndarray]:
    outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    return [np.asarray(output) for output in (outputs if isinstance(outputs, list | tuple) else [outputs])]


def assert_close(actual: list[np.ndarray], expected: list[np.ndarray], atol: float) -> None:
    assert len(actual) == len(expected), f"{len(actual)} outputs, expected {len(expected)}"
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=atol)


def small_keras3_model() -> keras.Model:
    """A Sequential ("stem") and a functional sub-model ("block") inside a functional model."""
    keras.utils.set_random_seed(7)
    inner_in = keras.Input((8, 8, 4))
    block = keras.Model(
        inner_in, keras.layers.Conv2D(4, 3, padding="same", name="block_conv")(inner_in), name="block"
    )
    stem = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            keras.layers.Conv2D(4, 3, padding="same", name="stem_conv"),
            keras.layers.MaxPooling2D(),
        ],
        name="stem",
    )
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.BatchNormalization()(block(stem(inputs)))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


@pytest.fixture
def lambda_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a Lambda layer's code leaves its trace if it ever runs."""
    marker = tmp_path / "lambda_ran"
    monkeypatch.setenv(LAMBDA_MARKER_ENV, str(marker))
    return marker
