"""A segmentation model's maps are scored on the region they explain: with region "predicted"
(Seg-Grad-CAM) the method and every metric follow the target's score summed where the model
predicts the target, a mask the test computes from the model's own outputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from medvis_desktop.evaluate import EvaluateError, SliceRun, evaluate
from medvis_desktop.explain import deconvnet, grad_cam
from medvis_desktop.explain.runner import REGIONS
from medvis_desktop.imaging.volume import Volume
from medvis_desktop.metrics import deletion, insertion, mu_fidelity
from medvis_desktop.models.card import Intensity, ModelCard

SIDE, STEPS, SAMPLES, SLICES = 32, 4, 8, [2, 3]
CARD = ModelCard(
    input_mode="2d", input_shape=(SIDE, SIDE, 1), intensity=Intensity("window", 40, 80),
    class_names=["background", "lesion"],
)  # fmt: skip


@pytest.fixture(scope="module")
def segmenter() -> keras.Model:
    keras.utils.set_random_seed(11)
    inputs = keras.Input((SIDE, SIDE, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="softmax", name="seg")(x))


@pytest.fixture(scope="module")
def study(head_ct_block) -> Volume:
    return Volume(head_ct_block[:6, 100 : 100 + SIDE, 100 : 100 + SIDE].copy(), spacing=(1.5, 0.957, 0.957))


def run(segmenter, study, region: str):
    return evaluate(
        study, segmenter, ["grad_cam"], card=CARD, slices=SLICES, layer="conv", target=1,
        steps=STEPS, samples=SAMPLES, region=region,
    )  # fmt: skip


def test_the_predicted_region_is_what_the_method_explains_and_the_metrics_score(segmenter, study):
    evaluation = run(segmenter, study, "predicted")
    assert evaluation.methods[0].parameters["region"] == "predicted"
    for row in evaluation.rows:
        batch = CARD.slice_input(study.voxels, [row.slice])
        predicted = np.asarray(segmenter(batch, training=False))[..., 1] > 0.5
        assert 0 < predicted.mean() < 1  # a region, not the whole output: the two scores differ
        maps = grad_cam(segmenter, batch, "conv", 1, mask=predicted)
        expected = (
            deletion(segmenter, batch, maps, 1, steps=STEPS, mask=predicted).auc[0],
            insertion(segmenter, batch, maps, 1, steps=STEPS, mask=predicted).auc[0],
            mu_fidelity(segmenter, batch, maps, 1, samples=SAMPLES, mask=predicted)[0],
        )
        measured = (row.deletion_auc, row.insertion_auc, row.mu_fidelity)
        np.testing.assert_allclose(measured, expected, rtol=1e-5)
    whole = run(segmenter, study, "all")
    assert not np.allclose([r.deletion_auc for r in whole.rows], [r.deletion_auc for r in evaluation.rows])


def test_a_method_that_explains_no_class_is_still_scored_on_the_region(segmenter, study):
    """The deconvnet explains the layer's filters, not a class: it takes no region, its map does
    get the region's score."""
    (row, *_) = evaluate(
        study, segmenter, ["deconvnet"], card=CARD, slices=SLICES[:1], layer="conv", target=1,
        steps=STEPS, samples=SAMPLES, region="predicted",
    ).rows  # fmt: skip
    batch = CARD.slice_input(study.voxels, SLICES[:1])
    predicted = np.asarray(segmenter(batch, training=False))[..., 1] > 0.5
    maps = deconvnet(segmenter, batch, "conv")
    expected = deletion(segmenter, batch, maps, 1, steps=STEPS, mask=predicted).auc[0]
    assert row.deletion_auc == pytest.approx(expected, rel=1e-5)


def test_an_unknown_region_is_refused():
    assert REGIONS == ("all", "predicted")  # the CLI's --region choices, written out there
    with pytest.raises(EvaluateError, match="Unknown region 'lesion'; use one of all, predicted"):
        SliceRun.make(CARD, "grad_cam", layer="conv", target=1, region="lesion")
