"""The metrics of a 2D model that reads a planar image in patches (a card with patch_mm): each
image is measured on the patch behind its score, checked against the metrics called directly on
that patch, with a model whose score is written out (the mean of its input)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from medvis_desktop.evaluate import EvaluateError, SliceRun, evaluate
from medvis_desktop.explain import grad_cam
from medvis_desktop.imaging.volume import Volume
from medvis_desktop.metrics import deletion
from medvis_desktop.models.card import Intensity, ModelCard

STEPS, SAMPLES = 4, 8
# 32 mm at 0.5 mm: patches of 64 pixels, halved to the model's 32.
CARD = ModelCard("2d", (32, 32, 1), intensity=Intensity("scale", scale=0.01), patch_mm=(32.0, 32.0))


@pytest.fixture(scope="module")
def model() -> keras.Model:
    """Input → 1×1 convolution (weight 1, ReLU) → mean: the score is the input's mean."""
    inputs = keras.Input((32, 32, 1))
    conv = keras.layers.Conv2D(1, 1, activation="relu", name="conv")
    dense = keras.layers.Dense(1, name="score")
    outputs = dense(keras.layers.GlobalAveragePooling2D()(conv(inputs)))
    conv.set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    dense.set_weights([np.ones((1, 1), np.float32), np.zeros(1, np.float32)])
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def image() -> Volume:
    """One planar image of 96 × 80 pixels at 0.5 mm, brightest in its lower right."""
    y, x = np.mgrid[0:96, 0:80].astype(np.float32)
    return Volume((x + y)[None], spacing=(1.0, 0.5, 0.5), modality="MG")


def test_an_image_is_measured_on_its_highest_scoring_patch(model, image):
    evaluation = evaluate(
        image, model, ["grad_cam"], card=CARD, layer="conv", target=0, steps=STEPS, samples=SAMPLES
    )
    (row,) = evaluation.rows
    # patches start at y 0, 32 and x 0, 16: the one at (32, 16) holds the brightest pixels
    assert row.model_input == "patch at 0 32 16"
    assert row.score == pytest.approx(0.01 * (image.voxels[0, 32:96, 16:80]).mean(), rel=1e-5)
    batch = CARD.patch_input(image.voxels, (0, 32, 16), (1, 64, 64))
    maps = grad_cam(model, batch, "conv", 0)
    expected = deletion(model, batch, maps, 0, steps=STEPS).curve[0]
    np.testing.assert_allclose(evaluation.methods[0].deletion[0], expected, rtol=1e-5, atol=1e-6)


def test_a_patch_map_goes_back_onto_its_region_of_the_image(image):
    run = SliceRun.make(
        CARD, "grad_cam", layer="conv", target=0, patches=[((0, 32, 16), 1.0)], extent=(1, 64, 64)
    )
    study = run.on_study_slice(np.full((1, 32, 32), 2.0, np.float32), 0, image.shape)
    assert (study[32:, 16:] == 2.0).all() and np.isnan(study[:32]).all() and np.isnan(study[:, :16]).all()


def test_a_card_with_patch_mm_needs_the_extent_at_the_study_spacing():
    with pytest.raises(EvaluateError, match="patch extent at the study's spacing"):
        SliceRun.make(CARD, "grad_cam", layer="conv", target=0)
