"""Model cards: a CT volume to model input and back, validation and the file beside the model."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from medvis_desktop.models.card import (
    CardError,
    Intensity,
    ModelCard,
    card_path,
    crop_or_pad,
    default_card,
    default_card_for,
    read_card,
    write_card,
)

BRAIN = Intensity(kind="window", center=40, width=80)


def test_2d_brain_window_is_the_written_out_formula(head_ct_block):
    card = ModelCard(input_mode="2d", input_shape=(256, 256, 1), intensity=BRAIN)
    batch = card.slice_input(head_ct_block, [3, 17])
    assert batch.shape == (2, 256, 256, 1) and batch.dtype == np.float32
    expected = np.clip((head_ct_block[[3, 17]].astype(np.float32) - 0.0) / 80.0, 0, 1)
    np.testing.assert_allclose(batch[..., 0], expected)


def test_25d_stacks_neighbours_as_channels_clamped_at_the_ends(head_ct_block):
    card = ModelCard(input_mode="2.5d", input_shape=(256, 256, 3), intensity=Intensity("scale"))
    batch = card.slice_input(head_ct_block, [0, 10, head_ct_block.shape[0] - 1])
    last = head_ct_block.shape[0] - 1
    for sample, (a, b, c) in zip(batch, [(0, 0, 1), (9, 10, 11), (last - 1, last, last)], strict=True):
        np.testing.assert_array_equal(sample, np.stack(head_ct_block[[a, b, c]], axis=-1))


def test_grey_slices_fill_the_channels_of_an_rgb_network(head_ct_block):
    card = ModelCard(input_mode="2d", input_shape=(256, 256, 3), intensity=BRAIN)
    batch = card.slice_input(head_ct_block, [5])
    np.testing.assert_array_equal(batch[..., 0], batch[..., 2])


def test_minmax_uses_the_whole_volume_so_slices_stay_comparable(head_ct_block):
    card = ModelCard(input_mode="2d", input_shape=(256, 256, 1), intensity=Intensity("minmax"))
    batch = card.slice_input(head_ct_block, [0])
    low, high = head_ct_block.min(), head_ct_block.max()
    np.testing.assert_allclose(batch[0, ..., 0], (head_ct_block[0] - low) / (high - low), rtol=1e-6)


def test_crop_or_pad_round_trip_restores_the_grid_with_nan_outside(head_ct_block):
    card = ModelCard(input_mode="2d", input_shape=(200, 300, 1), resize="crop_or_pad", intensity=BRAIN)
    batch = card.slice_input(head_ct_block, [4])
    assert batch.shape == (1, 200, 300, 1)
    # Rows cropped 28 each side, columns padded 22 each side.
    np.testing.assert_allclose(batch[0, :, 22:278, 0], np.clip(head_ct_block[4, 28:228] / 80.0, 0, 1))
    back = card.to_grid(batch[..., 0], (256, 256))
    assert back.shape == (1, 256, 256)
    assert np.isnan(back[0, :28]).all() and np.isnan(back[0, 228:]).all()
    np.testing.assert_allclose(back[0, 28:228], np.clip(head_ct_block[4, 28:228] / 80.0, 0, 1))


def test_3d_volume_is_resized_to_the_model_input(head_ct_block):
    card = ModelCard(input_mode="3d", input_shape=(20, 64, 64, 1), intensity=BRAIN)
    batch = card.volume_input(head_ct_block)
    assert batch.shape == (1, 20, 64, 64, 1)
    assert batch.min() >= 0.0 and batch.max() <= 1.0
    with pytest.raises(CardError, match="whole volumes"):
        card.slice_input(head_ct_block, [0])


def test_crop_or_pad_pads_integers_with_their_minimum():
    array = np.array([[5, 6], [7, 8]], dtype=np.int16)
    padded = crop_or_pad(array, (4,), axes=(0,))
    np.testing.assert_array_equal(padded[:, 0], [5, 5, 7, 5])


def test_problems_name_what_does_not_fit():
    card = ModelCard(input_mode="2.5d", input_shape=(64, 64, 2), class_names=["a", "b", "c"])
    issues = card.problems((None, 64, 64, 2), class_count=2)
    assert any("odd number" in issue for issue in issues)
    assert any("3 class names for 2" in issue for issue in issues)
    assert card.problems((None, 32, 32, 32, 1), class_count=None)[0].startswith("input mode '2.5d'")
    good = ModelCard(input_mode="2d", input_shape=(64, 64, 1), class_names=["no lesion", "lesion"])
    assert good.problems((None, 64, 64, 1), class_count=2) == []


def test_card_file_round_trip_beside_the_model(tmp_path):
    model = tmp_path / "ct_head.keras"
    card = ModelCard(
        input_mode="2d", input_shape=(128, 128, 1), intensity=BRAIN, class_names=["normal", "lesion"]
    )
    written = write_card(card, model)
    assert written == tmp_path / "ct_head.medvis.json" == card_path(model)
    assert read_card(model) == card
    assert read_card(tmp_path / "other.keras") is None
    written.write_text('{"input_mode": "2d", "input_shape": [1, 1], "colour": "red"}')
    with pytest.raises(CardError, match=r"ct_head\.medvis\.json: unknown entries colour"):
        read_card(model)
    written.write_text("{not json")
    with pytest.raises(CardError, match="not a valid model card"):
        read_card(model)


def test_default_card_says_what_it_assumed():
    card, assumptions = default_card((None, 96, 96, 3), (None, 2), "softmax")
    assert card.input_mode == "2d" and card.task == "classification"
    assert card.class_names == ["class 0", "class 1"]
    assert any("repeated over the model's 3 channels" in a for a in assumptions)
    seg, _ = default_card((None, 16, 32, 32, 1), (None, 16, 32, 32, 2), "softmax")
    assert seg.input_mode == "3d" and seg.task == "segmentation"
    with pytest.raises(CardError, match="free sizes"):
        default_card((None, None, None, 1), (None, 2), "softmax")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (lambda x: keras.layers.Dense(3, activation="softmax")(x), "softmax"),
        (lambda x: keras.layers.Softmax()(keras.layers.Dense(3)(x)), "softmax"),
        (lambda x: keras.layers.Dense(1, activation="sigmoid")(x), "sigmoid"),
        (lambda x: keras.layers.Dense(3)(x), "linear"),
    ],
    ids=["dense-softmax", "softmax-layer", "sigmoid", "logits"],
)
def test_default_card_for_a_keras_model_reads_its_head(head, expected):
    inputs = keras.Input((32, 32, 1))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inputs))
    card, _ = default_card_for(keras.Model(inputs, head(features)))
    assert card.output_activation == expected
    assert card.input_shape == (32, 32, 1)


# --- damaged or hostile cards: one message each, naming the entry --------------------------

GOOD = {"medvis_card": 1, "input_mode": "2d", "input_shape": [128, 128, 1]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1, 2]", "not a valid model card: a JSON object {...} was expected, not [1, 2]"),
        ("{not json", "not a valid model card: not JSON (Expecting property name"),
        ("[" * 100_000 + "]" * 100_000, "not a valid model card: not JSON"),
        ("{}", "input_mode and input_shape are missing"),
        ('{"input_mode": "2d"}', "input_shape is missing"),
        ('{"a\\nb": 1, "input_mode": "2d"}', "unknown entries a\\nb"),
    ],
    ids=["list", "not-json", "nested-too-deep", "empty", "no-shape", "newline-key"],
)
def test_card_text_that_is_not_a_card(tmp_path, text, expected):
    (tmp_path / "model.medvis.json").write_text(text)
    assert_refused(tmp_path, expected)


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ({"medvis_card": 2}, "medvis_card is 2; this medvis reads cards of version 1"),
        ({"medvis_card": True}, "medvis_card is true; this medvis reads cards of version 1"),
        ({"input_mode": "4d"}, 'input_mode is "4d"; it must be one of 2d, 2.5d, 3d'),
        ({"input_mode": ["2d"]}, 'input_mode is ["2d"]; it must be one of 2d, 2.5d, 3d'),
        ({"input_shape": "128x128"}, 'input_shape is "128x128"; it must be a list of whole numbers'),
        ({"input_shape": [128, float("nan"), 1]}, "input_shape is [128, NaN, 1]; it must be a list of whole"),
        ({"input_shape": [128.5, 128, 1]}, "input_shape is [128.5, 128, 1]; it must be a list of whole"),
        ({"input_shape": [True, 128, 1]}, "input_shape is [true, 128, 1]; it must be a list of whole"),
        ({"input_shape": [128, 128]}, "input_shape has 2 sizes; it must have 3 (height, width, channels)"),
        ({"input_shape": [128, -128, 1]}, "input_shape [128, -128, 1] has a size outside 1 to 8192"),
        ({"input_shape": [128, 0, 1]}, "input_shape [128, 0, 1] has a size outside 1 to 8192"),
        (
            {"input_shape": [10**12, 128, 1]},
            "input_shape [1000000000000, 128, 1] has a size outside 1 to 8192",
        ),
        ({"input_shape": [8192, 8192, 8]}, "input_shape [8192, 8192, 8] makes 536,870,912 values per sample"),
        ({"intensity": "window"}, 'intensity is "window"; it must be an object such as {"kind": "minmax"}'),
        ({"intensity": {"kind": "hounsfield"}}, 'intensity.kind is "hounsfield"; it must be one of window,'),
        (
            {"intensity": {"kind": "window", "width": float("nan")}},
            "intensity.width is NaN; it must be a finite",
        ),
        ({"intensity": {"center": float("inf")}}, "intensity.center is Infinity; it must be a finite number"),
        ({"intensity": {"center": "40"}}, 'intensity.center is "40"; it must be a finite number'),
        ({"intensity": {"gamma": 2.2}}, "intensity: unknown entries gamma"),
        ({"resize": "stretch"}, 'resize is "stretch"; it must be one of resize, crop_or_pad'),
        ({"task": "detection"}, 'task is "detection"; it must be one of classification, segmentation'),
        ({"output_activation": "relu"}, 'output_activation is "relu"; it must be one of softmax, sigmoid'),
        ({"class_names": "lesion"}, 'class_names is "lesion"; it must be a list of texts'),
        ({"class_names": [0, 1]}, "class_names is [0, 1]; it must be a list of texts"),
        ({"output": -1}, "output is -1; it must be a whole number, 0 or more"),
        ({"output": 1.5}, "output is 1.5; it must be a whole number, 0 or more"),
        ({"description": 5}, "description is 5; it must be a text"),
        ({"patch_mm": 51.2}, "patch_mm is 51.2; it must be 2 or 3 sizes in mm"),
        ({"patch_mm": [51.2]}, "patch_mm is [51.2]; it must be 2 or 3 sizes in mm"),
        ({"patch_mm": [51.2, "51"]}, 'patch_mm is "51"; it must be a finite number'),
        ({"patch_mm": [51.2, 0]}, "patch_mm [51.2, 0] has a size outside 0 to 1000 mm"),
        ({"patch_mm": [51.2, 1e9]}, "patch_mm [51.2, 1000000000.0] has a size outside 0 to 1000 mm"),
    ],
    ids=lambda value: json.dumps(value)[:40] if isinstance(value, dict) else None,
)
def test_card_entry_that_is_wrong(tmp_path, entries, expected):
    (tmp_path / "model.medvis.json").write_text(json.dumps(GOOD | entries))
    assert_refused(tmp_path, expected)


def test_card_file_too_large_or_not_text(tmp_path):
    path = tmp_path / "model.medvis.json"
    path.write_text(json.dumps(GOOD | {"description": "x" * 2**20}))
    assert_refused(tmp_path, "bytes, more than the 1,048,576 a model card may take")
    path.write_bytes(b'{"input_mode": "2d", "description": "\xff\xfe"}')
    assert_refused(tmp_path, "cannot be read ('utf-8' codec can't decode byte 0xff")


def test_good_card_still_reads_with_defaults(tmp_path):
    (tmp_path / "model.medvis.json").write_text(json.dumps(GOOD | {"intensity": {"kind": "zscore"}}))
    card = read_card(tmp_path / "model.keras")
    assert card == ModelCard(input_mode="2d", input_shape=(128, 128, 1), intensity=Intensity("zscore"))


def test_problems_with_a_shape_that_does_not_fit_the_mode():
    card = ModelCard(input_mode="3d", input_shape=(64, 64, 1))
    assert card.problems((None, 64, 64, 1), class_count=None) == [
        "input mode '3d' needs an input shape of 4 sizes, the card has (64, 64, 1)"
    ]


def assert_refused(folder, expected):
    with pytest.raises(CardError) as error:
        read_card(folder / "model.keras")
    message = str(error.value)
    assert "\n" not in message and message.startswith("model.medvis.json: "), message
    assert expected in message, message


@pytest.mark.parametrize("kind", ["zscore", "minmax"])
def test_a_run_takes_the_study_statistics_once_and_the_card_file_never_holds_them(kind):
    voxels = np.random.default_rng(4).normal(40.0, 25.0, (6, 20, 16)).astype(np.int16)
    card = ModelCard(input_mode="2d", input_shape=(10, 8, 1), intensity=Intensity(kind))
    study_card = card.for_study(voxels)
    values = voxels.astype(np.float64)
    if kind == "zscore":
        assert study_card.intensity.statistics == pytest.approx((values.mean(), values.std()))
        expected = (values[3] - values.mean()) / values.std()
    else:
        assert study_card.intensity.statistics == (values.min(), values.max())
        expected = (values[3] - values.min()) / (values.max() - values.min())
    # One slice alone is transformed by the whole study's statistics, not its own.
    np.testing.assert_allclose(study_card.intensity.apply(voxels[3]), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(study_card.slice_input(voxels, [2, 5]), card.slice_input(voxels, [2, 5]))
    assert study_card.to_json() == card.to_json()
    window = ModelCard(input_mode="2d", input_shape=(10, 8, 1), intensity=Intensity("window"))
    assert window.for_study(voxels) == window  # a window needs no statistics


@pytest.mark.parametrize(
    ("mode", "shape", "patch_mm", "expected"),
    [
        (
            "2.5d",
            (64, 64, 3),
            (51.2, 51.2),
            "patch_mm is for 2d and 3d models; a 2.5D model reads whole slices",
        ),
        ("2d", (64, 64, 1), (10.0, 10.0, 10.0), "patch_mm needs 2 sizes for a 2d model, not 3"),
        ("3d", (8, 64, 64, 1), (10.0, 10.0), "patch_mm needs 3 sizes for a 3d model, not 2"),
        ("2d", (64, 64, 1), (10.0, -1.0), "patch_mm needs sizes above 0 mm"),
    ],
)
def test_problems_with_a_patch_size(mode, shape, patch_mm, expected):
    card = ModelCard(input_mode=mode, input_shape=shape, patch_mm=patch_mm)
    assert card.problems((None, *shape), class_count=None) == [expected]


@pytest.mark.parametrize(
    ("card", "extent"),
    [
        (ModelCard("2d", (128, 128, 1), patch_mm=(51.2, 40.0)), (1, 256, 200)),  # 0.2 mm pixels
        (ModelCard("3d", (16, 48, 48, 1), patch_mm=(30.0, 12.0, 12.0)), (10, 60, 60)),
        (ModelCard("3d", (16, 48, 48, 1), resize="crop_or_pad"), (16, 48, 48)),  # native resolution
        (ModelCard("3d", (16, 48, 48, 1)), None),  # the whole volume, resized
        (ModelCard("2d", (128, 128, 1)), None),  # whole slices
    ],
)
def test_patch_extent_is_the_patch_size_at_the_study_spacing(card, extent):
    assert card.patch_extent((3.0, 0.2, 0.2)) == extent


def test_a_2d_patch_is_the_region_resized_with_the_whole_study_statistics():
    """Downsampling by exactly 2 (half-pixel centres) averages 2×2 blocks."""
    card = ModelCard("2d", (2, 2, 1), intensity=Intensity("zscore"), patch_mm=(2.0, 2.0))
    voxels = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6)
    patch = card.patch_input(voxels, (1, 2, 2), card.patch_extent((1.0, 0.5, 0.5)))
    block = voxels[1, 2:6, 2:6].reshape(2, 2, 2, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(patch[0, ..., 0], (block - voxels.mean()) / voxels.std(), rtol=1e-5)
