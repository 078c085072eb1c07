"""explain_volume on the real head CT: batching, order, cancel, grids, 3D patches."""

from __future__ import annotations

import csv
import functools

import keras
import numpy as np
import pytest

from medvis_desktop import explain, imaging
from medvis_desktop.arrays import next_flagged
from medvis_desktop.explain.base import ExplainError
from medvis_desktop.explain.runner import explain_volume, patch_corners
from medvis_desktop.export.writer import write_exports
from medvis_desktop.models.card import Intensity, ModelCard, write_card
from tests.conftest import tiny_classifier

L = keras.layers
BRAIN = Intensity(kind="window", center=40, width=80)


@pytest.fixture(scope="module")
def ct_volume(head_ct_hu) -> imaging.Volume:
    """12 slices of the real CT, cropped to 64×64 around the brain."""
    return imaging.Volume(
        head_ct_hu[50:62, 96:160, 96:160].copy(), spacing=(1.5, 0.957, 0.957), modality="CT"
    )


@pytest.fixture(scope="module")
def classifier() -> keras.Model:
    return tiny_classifier(64)


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return ModelCard(
        input_mode="2d", input_shape=(64, 64, 1), intensity=BRAIN, class_names=["normal", "lesion"]
    )


def test_each_slice_equals_the_method_on_that_slice_alone(ct_volume, classifier, card):
    result = explain_volume(
        ct_volume, classifier, "grad_cam", card=card, layer="conv2", target=1, batch_size=5
    )
    assert result.maps.shape == ct_volume.shape and result.computed.all()
    for z in (0, 6, 11):
        alone = explain.grad_cam(classifier, card.slice_input(ct_volume.voxels, [z]), "conv2", 1)
        np.testing.assert_allclose(result.maps[z], alone[0], rtol=1e-4, atol=1e-6)
    expected_scores = classifier.predict(card.slice_input(ct_volume.voxels, range(12)), verbose=0)
    np.testing.assert_allclose(result.scores, expected_scores, rtol=1e-4, atol=1e-6)
    assert result.class_name == "lesion"


def test_slices_run_in_the_order_asked_and_cancel_keeps_what_is_done(ct_volume, classifier, card):
    seen = []
    result = explain_volume(
        ct_volume,
        classifier,
        "activation_maps",
        card=card,
        layer="conv1",
        slices=[7, 0, 1, 2, 3, 4, 5],
        batch_size=1,
        progress=lambda done, total: seen.append((done, total)),
        cancel=lambda: len(seen) >= 2,
    )
    assert result.cancelled
    assert seen == [(1, 7), (2, 7)]
    assert np.nonzero(result.computed)[0].tolist() == [0, 7]
    assert np.isnan(result.maps[1:7]).all() and np.isnan(result.scores[1:7]).all()
    assert np.isfinite(result.maps[[0, 7]]).all()


def test_maps_come_back_on_the_volume_grid_when_the_model_is_smaller(head_ct_hu, classifier, card):
    volume = imaging.Volume(head_ct_hu[55:57], spacing=(1.5, 0.957, 0.957), modality="CT")
    result = explain_volume(volume, classifier, "grad_cam", card=card, layer="conv2", target=1)
    assert result.maps.shape == (2, 256, 256)
    assert np.isfinite(result.maps).all()


def test_a_card_that_does_not_fit_is_refused(ct_volume, classifier):
    wrong = ModelCard(input_mode="3d", input_shape=(8, 64, 64, 1))
    with pytest.raises(ExplainError, match="model card does not fit"):
        explain_volume(ct_volume, classifier, "grad_cam", card=wrong)
    with pytest.raises(ExplainError, match="Unknown method"):
        explain_volume(ct_volume, classifier, "saliency")


def test_without_a_card_the_assumptions_are_reported(ct_volume, classifier):
    result = explain_volume(ct_volume, classifier, "grad_cam", slices=[3])
    assert result.layer == "conv2" and result.target == 1
    assert any("minimum and maximum" in a for a in result.assumptions)


def test_maps_are_written_into_an_array_given_and_only_at_the_slices_computed(ct_volume, classifier, card):
    given = np.full(ct_volume.shape, 7.0, dtype=np.float32)
    result = explain_volume(ct_volume, classifier, "grad_cam", card=card, slices=[2, 5], maps=given)
    alone = explain_volume(ct_volume, classifier, "grad_cam", card=card, slices=[2, 5])
    assert result.maps is given
    np.testing.assert_array_equal(given[[2, 5]], alone.maps[[2, 5]])
    assert (np.delete(given, [2, 5], axis=0) == 7.0).all()
    with pytest.raises(ExplainError, match="maps must be float32 of the volume's shape"):
        explain_volume(ct_volume, classifier, "grad_cam", card=card, slices=[2], maps=given[:3])


def identity_3d(patch: tuple[int, int, int]) -> keras.Model:
    """A 1×1×1 convolution with weight 1: its activation map is the model input itself."""
    inputs = keras.Input((*patch, 1))
    conv = L.Conv3D(1, 1, activation="relu", name="copy")
    x = conv(inputs)
    conv.set_weights([np.ones((1, 1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    x = L.GlobalAveragePooling3D()(x)
    return keras.Model(inputs, L.Dense(1, name="score")(x))


def test_3d_patches_tile_the_volume_back_exactly(ct_volume):
    card = ModelCard(input_mode="3d", input_shape=(8, 32, 32, 1), intensity=BRAIN, resize="crop_or_pad")
    result = explain_volume(ct_volume, identity_3d((8, 32, 32)), "activation_maps", card=card, layer="copy")
    np.testing.assert_allclose(result.maps, BRAIN.apply(ct_volume.voxels), atol=1e-6)
    assert result.scores.shape == (len(patch_corners(ct_volume.shape, (8, 32, 32))), 1)


@pytest.mark.parametrize(("asked", "depth_corners"), [([1], [0]), ([5, 6], [0, 4]), ([11], [4])])
def test_3d_patches_asked_for_slices_are_those_that_cover_them(ct_volume, asked, depth_corners):
    card = ModelCard(input_mode="3d", input_shape=(8, 32, 32, 1), intensity=BRAIN, resize="crop_or_pad")
    result = explain_volume(
        ct_volume, identity_3d((8, 32, 32)), "activation_maps", card=card, layer="copy", slices=asked
    )
    in_plane = len(patch_corners(ct_volume.shape[1:], (32, 32)))  # corners z = 0 and 4 cover 0–7, 4–11
    assert result.scores.shape == (len(depth_corners) * in_plane, 1)
    assert np.flatnonzero(result.computed).tolist() == asked
    np.testing.assert_allclose(result.maps[asked], BRAIN.apply(ct_volume.voxels[asked]), atol=1e-6)
    assert np.isnan(np.delete(result.maps, asked, axis=0)).all()


def test_3d_progress_counts_patches_and_cancel_keeps_only_whole_slices(ct_volume):
    """Patches of 8 slices start at z = 0 and 4, nine of each, done z-major three at a time:
    slices 0–3 are whole once the ninth patch is in, all twelve after the last."""
    card = ModelCard(input_mode="3d", input_shape=(8, 32, 32, 1), intensity=BRAIN, resize="crop_or_pad")
    model = identity_3d((8, 32, 32))
    seen = []
    run = functools.partial(explain_volume, ct_volume, model, "activation_maps", card=card, layer="copy")
    full = run(batch_size=3, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(done, 18) for done in range(3, 19, 3)] and full.computed.all()
    seen.clear()
    cancelled = run(
        batch_size=3, progress=lambda done, total: seen.append((done, total)), cancel=lambda: len(seen) >= 4
    )
    assert cancelled.cancelled and np.flatnonzero(cancelled.computed).tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(cancelled.maps[:4], BRAIN.apply(ct_volume.voxels[:4]), atol=1e-6)
    assert np.isnan(cancelled.maps[4:]).all()


def test_3d_scores_are_written_with_the_corner_of_their_patch(tmp_path, ct_volume):
    card = ModelCard(input_mode="3d", input_shape=(8, 32, 32, 1), intensity=BRAIN, resize="crop_or_pad")
    model = identity_3d((8, 32, 32))
    result = explain_volume(ct_volume, model, "activation_maps", card=card, layer="copy", slices=[10])
    write_exports(ct_volume, result, tmp_path, model_path=None, input_path=None)
    with (tmp_path / "activation_maps_copy_scores.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["patch z", "patch y", "patch x"]
    corners = [tuple(int(v) for v in row[:3]) for row in rows[1:]]
    assert corners == [c for c in patch_corners(ct_volume.shape, (8, 32, 32)) if c[0] == 4]  # covers 10
    for corner, row in zip(corners, rows[1:], strict=True):  # each row is that patch's own score
        patch = card.patch_input(ct_volume.voxels, corner)
        assert float(row[3]) == pytest.approx(float(model.predict(patch, verbose=0)[0, 0]), rel=1e-5)


def test_3d_slices_out_of_range_are_refused(ct_volume):
    card = ModelCard(input_mode="3d", input_shape=(8, 32, 32, 1), intensity=BRAIN, resize="crop_or_pad")
    with pytest.raises(ExplainError, match="Slices must lie in 0…11"):
        explain_volume(
            ct_volume, identity_3d((8, 32, 32)), "activation_maps", card=card, layer="copy", slices=[12]
        )


def test_3d_whole_volume_resized_to_the_model(ct_volume):
    card = ModelCard(input_mode="3d", input_shape=(12, 64, 64, 1), intensity=BRAIN)
    result = explain_volume(ct_volume, identity_3d((12, 64, 64)), "activation_maps", card=card, layer="copy")
    np.testing.assert_allclose(result.maps, BRAIN.apply(ct_volume.voxels), atol=1e-6)


def identity_2d(side: int) -> keras.Model:
    """A 1×1 convolution with weight 1 and a mean: its map is its input, its score the input's mean."""
    inputs = keras.Input((side, side, 1))
    conv = L.Conv2D(1, 1, activation="relu", name="copy")
    x = conv(inputs)
    conv.set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    dense = L.Dense(1, name="score")
    outputs = dense(L.GlobalAveragePooling2D()(x))
    dense.set_weights([np.ones((1, 1), np.float32), np.zeros(1, np.float32)])
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def ramps() -> imaging.Volume:
    """Three planar images of 96 × 80 pixels at 0.5 mm, rising along x at a rate of their own."""
    x = np.arange(80, dtype=np.float32)
    voxels = np.stack([np.broadcast_to(rate * x, (96, 80)) for rate in (1.0, 2.0, 0.5)])
    return imaging.Volume(voxels, spacing=(3.0, 0.5, 0.5), modality="MG")


# 32 mm patches at 0.5 mm: 64 pixels, halved to the model's 32.
PATCH_CARD = ModelCard(
    input_mode="2d", input_shape=(32, 32, 1), intensity=Intensity("scale", scale=0.01), patch_mm=(32.0, 32.0)
)


def test_2d_patches_score_their_region_and_tile_the_image_back(ramps):
    model = identity_2d(32)
    result = explain_volume(ramps, model, "activation_maps", card=PATCH_CARD, layer="copy")
    starts = [(z, y, x) for z in range(3) for y in (0, 32) for x in (0, 16)]  # half overlap, ends flush
    assert sorted(result.patches) == starts and result.patch_extent == (1, 64, 64)
    study = PATCH_CARD.intensity.apply(ramps.voxels)
    for (z, y, x), score in zip(result.patches, result.scores[:, 0], strict=True):
        # halving averages 2×2 blocks, so the input's mean is the region's
        assert score == pytest.approx(study[z, y : y + 64, x : x + 64].mean(), rel=1e-5)
    regions = {z: [study[z, y : y + 64, x : x + 64].mean() for _, y, x in starts[:4]] for z in range(3)}
    np.testing.assert_allclose(result.slice_scores(0), [max(regions[z]) for z in range(3)], rtol=1e-5)
    # halved and doubled again, a ramp comes back exactly but for the clamped half pixel at
    # each patch border: an error of half a step at most
    assert result.computed.all()
    error = np.abs(result.maps - study)
    steps = np.array([0.01, 0.02, 0.005])[:, None, None]
    assert (error <= steps / 2 + 1e-6).all() and np.median(error) < 1e-6


def test_2d_patches_come_for_the_slices_asked_in_their_order_with_progress_per_patch(ramps):
    seen = []
    result = explain_volume(
        ramps, identity_2d(32), "activation_maps", card=PATCH_CARD, layer="copy", slices=[2, 0],
        batch_size=3, progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert [corner[0] for corner in result.patches] == [2] * 4 + [0] * 4
    assert seen == [(3, 8), (6, 8), (8, 8)]
    assert np.flatnonzero(result.computed).tolist() == [0, 2] and np.isnan(result.maps[1]).all()


def test_a_planar_image_cancelled_between_patches_keeps_nothing_half_made(ramps):
    planar = imaging.Volume(ramps.voxels[:1], spacing=ramps.spacing, modality="MG")
    seen = []
    result = explain_volume(
        planar, identity_2d(32), "activation_maps", card=PATCH_CARD, layer="copy", batch_size=1,
        progress=lambda done, total: seen.append((done, total)), cancel=lambda: len(seen) >= 2,
    )  # fmt: skip
    assert seen == [(1, 4), (2, 4)] and result.cancelled
    assert not result.computed.any() and np.isnan(result.maps).all()
    assert np.isnan(result.slice_scores(0)).all()


def test_patch_corners_cover_with_half_overlap():
    corners = patch_corners((12, 64, 64), (8, 32, 32))
    assert sorted({c[0] for c in corners}) == [0, 4]
    assert sorted({c[1] for c in corners}) == [0, 16, 32]
    assert patch_corners((4, 8, 8), (8, 32, 32)) == [(0, 0, 0)]


def test_a_model_path_brings_its_card_from_beside_it(tmp_path, ct_volume, classifier, card):
    path = tmp_path / "classifier.keras"
    classifier.save(path)
    write_card(card, path)
    result = explain_volume(ct_volume, path, "grad_cam", layer="conv2", slices=[2])
    assert result.card == card and result.assumptions == []
    direct = explain_volume(ct_volume, classifier, "grad_cam", card=card, layer="conv2", slices=[2])
    np.testing.assert_allclose(result.maps[2], direct.maps[2], rtol=1e-5)


def test_segmentation_explains_the_predicted_region(ct_volume):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((64, 64, 1))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="enc")(inputs)
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="dec")(x)
    model = keras.Model(inputs, L.Conv2D(2, 1, activation="softmax", name="seg")(x))
    card = ModelCard(input_mode="2d", input_shape=(64, 64, 1), intensity=BRAIN, task="segmentation")
    result = explain_volume(
        ct_volume, model, "grad_cam", card=card, layer="enc", target=1, region="predicted", slices=[4, 9]
    )
    batch = card.slice_input(ct_volume.voxels, [4, 9])
    predicted = model.predict(batch, verbose=0)[..., 1] > 0.5
    assert 0 < predicted.mean() < 1, "the check needs a partial prediction"
    expected = explain.grad_cam(model, batch, "enc", 1, mask=predicted)
    np.testing.assert_allclose(result.maps[[4, 9]], expected, rtol=1e-4, atol=1e-7)
    whole = explain_volume(ct_volume, model, "grad_cam", card=card, layer="enc", target=1, slices=[4])
    assert not np.allclose(whole.maps[4], result.maps[4])
    with pytest.raises(ExplainError, match="Unknown region"):
        explain_volume(ct_volume, model, "grad_cam", card=card, region="lesion")


def test_the_score_track_is_each_slice_s_score_or_the_best_patch_covering_it(ct_volume, classifier, card):
    flat = explain_volume(
        ct_volume, classifier, "grad_cam", card=card, layer="conv2", target=1, slices=[2, 5]
    )
    track = flat.slice_scores()
    np.testing.assert_array_equal(track[[2, 5]], flat.scores[[2, 5], 1])
    assert np.isnan(np.delete(track, [2, 5])).all()
    patches = ModelCard(input_mode="3d", input_shape=(8, 32, 32, 1), intensity=BRAIN, resize="crop_or_pad")
    result = explain_volume(
        ct_volume, identity_3d((8, 32, 32)), "activation_maps", card=patches, layer="copy"
    )
    expected = np.full(ct_volume.shape[0], -np.inf)
    for corner, score in zip(result.patches, result.scores[:, 0], strict=True):  # written out per slice
        for z in range(corner[0], min(corner[0] + 8, ct_volume.shape[0])):
            expected[z] = max(expected[z], score)
    np.testing.assert_array_equal(result.slice_scores(0), expected.astype(np.float32))


def test_next_flagged_steps_through_the_slices_above_the_threshold():
    track = np.array([0.1, 0.9, np.nan, 0.2, 0.7, 0.95, 0.3], dtype=np.float32)
    assert next_flagged(track, 0.5, 0, +1) == 1
    assert next_flagged(track, 0.5, 1, +1) == 4
    assert next_flagged(track, 0.5, 5, +1) is None
    assert next_flagged(track, 0.5, 5, -1) == 4
    assert next_flagged(track, 0.5, 1, -1) is None
