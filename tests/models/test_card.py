"""Model cards: a CT volume to model input and back, validation and the file beside the model."""

from __future__ import annotations

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
