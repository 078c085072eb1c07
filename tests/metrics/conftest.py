"""Fixtures of the metric tests: the explanation tests' seeded models, and a linear model
whose score every test can compute by hand."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from tests.explain.conftest import _seed, models, nd, rng, side  # noqa: F401  (fixtures, shared)


def linear_model(
    rank: int, random: np.random.Generator, channels: int = 1, classes: int = 2, activation: str | None = None
) -> keras.Model:
    """GAP + Dense: the logit of class t is b_t + mean over voxels of x·W[:, t], so each voxel's
    share of it is x_v·W[:, t] / n. Weights and biases are seeded normal draws."""
    inputs = keras.Input((side(rank),) * rank + (channels,))
    pooled = nd("GlobalAveragePooling", rank)(name="gap")(inputs)
    outputs = layers.Dense(classes, activation=activation, name="dense")(pooled)
    model = keras.Model(inputs, outputs, name=f"linear_{activation or 'logits'}")
    model.get_layer("dense").set_weights(
        [random.normal(size=(channels, classes)), random.normal(size=classes)]
    )
    return model
