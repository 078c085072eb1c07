"""The metrics of a 3D model's maps: each slice is measured on the model input behind its score
(the highest-scoring patch covering it, or the whole resized volume), checked against the
metrics called directly on that input, with a tiny real 3D classifier on real head CT."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from medvis_desktop.evaluate import SliceRun, evaluate, measure_slice
from medvis_desktop.explain import grad_cam
from medvis_desktop.explain.runner import explain_volume
from medvis_desktop.imaging.volume import Volume
from medvis_desktop.metrics import deletion, insertion, mu_fidelity
from medvis_desktop.models.card import Intensity, ModelCard

PATCH = (8, 32, 32)
STEPS, SAMPLES = 4, 8


def patch_card(resize: str = "crop_or_pad") -> ModelCard:
    return ModelCard(
        input_mode="3d", input_shape=(*PATCH, 1), resize=resize, intensity=Intensity("window", 40, 80),
        class_names=["normal", "lesion"],
    )  # fmt: skip


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((*PATCH, 1))
    x = keras.layers.Conv3D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling3D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="dense")(x))


@pytest.fixture(scope="module")
def study(head_ct_block) -> Volume:
    """16 slices of 48 × 48 head CT: patches start at z 0, 4, 8 and y, x 0, 16."""
    return Volume(head_ct_block[:16, 100:148, 100:148].copy(), spacing=(1.5, 0.957, 0.957), modality="CT")


def test_a_slice_is_measured_on_the_highest_scoring_patch_covering_it():
    patches = [((0, 0, 0), 0.2), ((4, 16, 0), 0.9), ((8, 0, 16), 0.95), ((4, 0, 0), float("nan"))]
    run = SliceRun.make(patch_card(), "grad_cam", layer="conv", target=1, patches=patches)
    shape = (16, 48, 48)
    assert run.input_key(2, shape) == (0, 0, 0)  # the only patch over slices 0–3
    assert run.input_key(6, shape) == (4, 16, 0)  # 0.9 beats 0.2 and NaN; (8, 0, 16) starts at 8
    assert run.input_key(9, shape) == (8, 0, 16)
    assert run.describe_input((4, 16, 0)) == "patch at 4 16 0"
    unscored = SliceRun.make(patch_card(), "grad_cam", layer="conv", target=1)
    assert unscored.input_key(6, shape)[0] == 4  # slice 6 is nearer the middle of 4–11 than of 0–7
    assert unscored.input_key(1, shape)[0] == 0


def test_a_resized_volume_is_one_input_and_a_slice_cuts_it_where_it_lands():
    run = SliceRun.make(patch_card("resize"), "grad_cam", layer="conv", target=1)
    assert run.input_key(5, (16, 48, 48)) == () and run.describe_input(()) == "whole volume"
    maps = np.arange(8, dtype=np.float32)[None, :, None, None] * np.ones((1, 8, 32, 32), np.float32)
    # Slice 5 of 16, its centre at 5.5 / 16 of the depth, lies at 2.75 of 8 model slices: slice 2.
    assert np.all(run.plane(maps, 5, (16, 48, 48)) == 2)


def test_a_patch_s_plane_lands_on_its_place_in_the_study_slice():
    run = SliceRun.make(patch_card(), "grad_cam", layer="conv", target=1, patches=[((4, 16, 8), 1.0)])
    maps = np.random.default_rng(0).random((1, *PATCH)).astype(np.float32)
    shape = (16, 40, 40)
    study = run.on_study_slice(maps, 6, shape)
    assert study.shape == shape[1:]
    np.testing.assert_array_equal(study[16:40, 8:40], maps[0, 2, :24, :32])  # slice 6 is the patch's 3rd
    outside = np.ones(shape[1:], dtype=bool)
    outside[16:40, 8:40] = False
    assert np.isnan(study[outside]).all()


def test_measure_slice_is_the_metrics_on_the_patch(study, model):
    explanation = explain_volume(study, model, "grad_cam", card=patch_card(), layer="conv", target=1)
    run = SliceRun.of(explanation)
    z = 6
    covering = [
        (score, corner)
        for corner, score in zip(explanation.patches, explanation.scores[:, 1], strict=True)
        if corner[0] <= z < corner[0] + PATCH[0]
    ]
    best = max(covering)[1]
    assert explanation.slice_scores()[z] == pytest.approx(max(covering)[0])  # the track's value

    measured = measure_slice(study, model, run, z, steps=STEPS, samples=SAMPLES)
    batch = patch_card().patch_input(study.voxels, best)
    maps = grad_cam(model, batch, "conv", 1)
    np.testing.assert_allclose(measured.maps, maps, rtol=1e-5, atol=1e-6)
    assert measured.deletion_auc == pytest.approx(deletion(model, batch, maps, 1, steps=STEPS).auc[0])
    assert measured.insertion_auc == pytest.approx(insertion(model, batch, maps, 1, steps=STEPS).auc[0])
    assert measured.mu_fidelity == pytest.approx(mu_fidelity(model, batch, maps, 1, samples=SAMPLES)[0])
    assert measured.model_input == f"patch at {' '.join(map(str, best))}"


def test_evaluate_a_3d_model_shares_a_patch_s_measures_between_its_slices(study, model):
    evaluation = evaluate(
        study, model, ["grad_cam", "gradient"], card=patch_card(), layer="conv", target=1,
        slices=[5, 6, 7], steps=STEPS, samples=SAMPLES,
    )  # fmt: skip
    rows = {(row.slice, row.method): row for row in evaluation.rows}
    assert sorted(rows) == [(z, m) for z in (5, 6, 7) for m in ("grad_cam", "gradient")]
    for row in evaluation.rows:
        assert row.model_input.startswith("patch at ")
        assert np.isfinite([row.score, row.deletion_auc, row.insertion_auc, row.mu_fidelity]).all()
    for method in ("grad_cam", "gradient"):
        by_input: dict[str, set] = {}
        for z in (5, 6, 7):
            row = rows[z, method]
            by_input.setdefault(row.model_input, set()).add((row.deletion_auc, row.mu_fidelity, row.seconds))
        assert all(len(values) == 1 for values in by_input.values())  # measured once per patch
    cascade = evaluation.methods[0].cascade
    key = evaluation.key_slice
    run = SliceRun.of(explain_volume(study, model, "grad_cam", card=patch_card(), layer="conv", target=1))
    corner = run.input_key(key, study.shape)
    original = grad_cam(model, patch_card().patch_input(study.voxels, corner), "conv", 1)
    assert cascade.maps.shape == (len(cascade.rows) + 1, 1, *PATCH[1:])  # the key slice's plane
    np.testing.assert_allclose(cascade.maps[0, 0], original[0, key - corner[0]], rtol=1e-4, atol=1e-6)
