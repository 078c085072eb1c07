"""Occlusion against a closed form: on a linear model (1x1 conv with chosen weights, global
average pooling, Dense with softmax) the logit drop when a box B is set to the baseline b is
w / V * sum over B of sum_i k_i (x_i - b_i). Window positions are written out by hand."""

from __future__ import annotations

import importlib
import itertools
from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest
from keras import layers

from medvis_desktop.explain.base import ExplainError
from medvis_desktop.explain.occlusion import METHOD, occlusion
from tests.explain.conftest import count_scoring_passes

# The module, not the function of the same name that medvis_desktop.explain exports.
module = importlib.import_module("medvis_desktop.explain.occlusion")

if TYPE_CHECKING:
    from tests.explain.conftest import Models

KERNEL = np.array([0.7, -1.2], np.float32)  # per input channel
HEAD = np.array([[1.5, -0.8, 0.3]], np.float32)  # (1 filter, 3 classes)


def linear_model(models: Models, rank: int) -> keras.Model:
    inputs = keras.Input((models.side(rank),) * rank + (2,))
    h = models.nd("Conv", rank)(1, 1, name="mix")(inputs)
    h = models.nd("GlobalAveragePooling", rank)(name="gap")(h)
    outputs = layers.Dense(3, activation="softmax", name="dense")(h)
    model = keras.Model(inputs, outputs)
    model.get_layer("mix").set_weights([KERNEL.reshape((1,) * rank + (2, 1)), np.array([0.3], np.float32)])
    model.get_layer("dense").set_weights([HEAD, np.array([0.1, 0.2, -0.3], np.float32)])
    return model


def by_hand(image: np.ndarray, target: int, starts: list[list[int]], window: tuple, baseline) -> np.ndarray:
    """Mean closed-form drop over the boxes covering each voxel, (*spatial)."""
    spatial = image.shape[:-1]
    change = ((image - baseline) * KERNEL).sum(axis=-1) * HEAD[0, target] / np.prod(spatial)
    total, count = np.zeros(spatial), np.zeros(spatial)
    for corner in itertools.product(*starts):
        box = tuple(slice(c, c + w) for c, w in zip(corner, window, strict=True))
        total[box] += change[box].sum()
        count[box] += 1
    assert count.min() >= 1
    return total / count


CASES = [  # rank, window, stride, the window starts along each axis
    (2, 5, 4, [[0, 4, 8, 11]] * 2),  # 4 does not divide 16 - 5: a last window flush at 11
    (2, 4, 4, [[0, 4, 8, 12]] * 2),  # divides: no extra window
    (2, (16, 3), (1, 3), [[0], [0, 3, 6, 9, 12, 13]]),
    (3, 3, 2, [[0, 2, 4, 5]] * 3),
    (3, (2, 3, 8), (2, 2, 8), [[0, 2, 4, 6], [0, 2, 4, 5], [0]]),
]


@pytest.mark.parametrize(("rank", "window", "stride", "starts"), CASES)
@pytest.mark.parametrize("baseline", [0.0, 0.5, "per_channel"])
def test_mean_drop_matches_closed_form(models: Models, rank, window, stride, starts, baseline) -> None:
    model = linear_model(models, rank)
    images = models.images(rank, count=2, channels=2)
    fill = np.array([0.5, -1.0], np.float32) if baseline == "per_channel" else baseline
    sizes = window if isinstance(window, tuple) else (window,) * rank
    got = occlusion(model, images, [0, 2], window=window, stride=stride, baseline=fill, batch_size=7)
    assert got.dtype == np.float32 and got.shape == images.shape
    for image, target, result in zip(images, [0, 2], got, strict=True):
        want = by_hand(image, target, starts, sizes, fill)
        np.testing.assert_allclose(result[..., 0], want, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(result[..., 0], result[..., 1])  # same for every channel


@pytest.mark.parametrize("rank", [2, 3])
def test_windows_already_at_the_baseline_cost_no_pass(
    models: Models, rank: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As air around a body with an air baseline: half of each image is the baseline."""
    model = linear_model(models, rank)
    images = models.images(rank, count=2, channels=2)
    side = models.side(rank)
    images[:, : side // 2] = 0.5
    window = side // 4  # 4 windows per axis, half of them in the baseline half
    passes = count_scoring_passes(monkeypatch, module)
    got = occlusion(model, images, [0, 2], window=window, stride=window, baseline=0.5, batch_size=1000)
    starts = [list(range(0, side, window))] * rank
    for image, target, result in zip(images, [0, 2], got, strict=True):
        want = by_hand(image, target, starts, (window,) * rank, 0.5)
        np.testing.assert_allclose(result[..., 0], want, rtol=1e-4, atol=1e-6)
        assert np.all(result[: side // 2] == 0)  # exactly: no pass, no rounding
    assert passes == [2, 2 * 4**rank // 2]  # the clean images, then the windows that hide something


@pytest.mark.parametrize("rank", [2, 3])
def test_batch_size_changes_nothing(models: Models, rank: int) -> None:
    model = models.classifier(rank)
    images = models.images(rank, count=2)
    one = occlusion(model, images, 1, window=4, stride=3, batch_size=1)
    many = occlusion(model, images, 1, window=4, stride=3, batch_size=1000)
    np.testing.assert_allclose(one, many, rtol=1e-4, atol=1e-5)
    assert np.any(one > 0) and np.any(one < 0)  # signed


@pytest.mark.parametrize("rank", [2, 3])
def test_segmentation_region_decides_what_matters(models: Models, rank: int) -> None:
    """The segmenter's outputs at the corner voxel see inputs up to index 4 (3x3 conv, pool 2,
    3x3 conv, upsample), so hiding the far corner cannot change the corner's score, while it
    does change the score of the whole image."""
    model = models.segmenter(rank)
    edge = models.side(rank)
    images = models.images(rank, count=1)
    corner = np.zeros((edge,) * rank, bool)
    corner[(slice(0, 1),) * rank] = True
    window = edge // 4
    far = (0, *(slice(edge - window, edge),) * rank)
    near = occlusion(model, images, 2, window=window, stride=window, mask=corner)
    whole = occlusion(model, images, 2, window=window, stride=window)
    np.testing.assert_allclose(near[far], 0, atol=1e-5)
    assert np.abs(whole[far]).max() > 1e-4
    assert np.abs(near[(0, *(slice(0, window),) * rank)]).max() > 1e-4


def test_errors_say_what_to_change(models: Models) -> None:
    model = linear_model(models, 3)
    images = models.images(3, count=1, channels=2)
    with pytest.raises(ExplainError, match=r"larger than the input along axis 0.*at most 8 voxels"):
        occlusion(model, images, 0, window=9)
    with pytest.raises(ExplainError, match="larger than the input along axis 2"):
        occlusion(model, images, 0, window=(2, 2, 9), stride=1)
    with pytest.raises(ExplainError, match="stride"):
        occlusion(model, images, 0, window=2, stride=0)
    with pytest.raises(ExplainError, match=r"stride .* larger than the window"):
        occlusion(model, images, 0, window=2, stride=3)
    with pytest.raises(ExplainError, match="one per spatial axis"):
        occlusion(model, images, 0, window=(2, 2), stride=2)
    with pytest.raises(ExplainError, match="batch_size"):
        occlusion(model, images, 0, window=4, stride=4, batch_size=0)
    for wrong in (np.zeros(3), np.zeros((8, 8, 8)), np.zeros((1, 8, 8, 8, 2))):
        with pytest.raises(ExplainError, match=r"baseline has shape .*\(8, 8, 8, 2\)"):
            occlusion(model, images, 0, window=4, stride=4, baseline=wrong)
    whole = occlusion(model, images, 0, window=4, stride=4, baseline=np.zeros((8, 8, 8, 1)))
    assert whole.shape == images.shape


def test_declares_cost_and_parameters() -> None:
    assert METHOD.kind == "attribution" and not METHOD.uses_layer and METHOD.signed
    assert METHOD.cost is not None
    assert METHOD.cost({"window": 5, "stride": 4, "baseline": 0.0, "batch_size": 32}, (16, 16), 1) == 17
    assert METHOD.cost(METHOD.parameters(), (64, 64, 64), 1) == 7**3 + 1
    assert {p.name: p.unit for p in METHOD.params} == {
        "window": "voxels",
        "stride": "voxels",
        "baseline": "",
        "batch_size": "",
    }
