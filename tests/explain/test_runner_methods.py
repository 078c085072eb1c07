"""Every registered method through explain_volume, 2D slice by slice and 3D in patches: the
runner passes what each method declares it takes, and puts each map on the study's grid."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from medvis_desktop import explain, imaging
from medvis_desktop.explain.base import ExplainError
from medvis_desktop.explain.runner import explain_volume, per_voxel
from medvis_desktop.models.card import Intensity, ModelCard

L = keras.layers
WINDOW = Intensity(kind="window", center=40, width=80)
# Small settings for the costly methods: the point here is the plumbing, not the numbers.
CHEAP = {
    "integrated_gradients": {"steps": 4},
    "smooth_grad": {"samples": 2},
    "occlusion": {"window": 8, "stride": 8},
}


def classifier(shape: tuple[int, ...], channels: int) -> keras.Model:
    """conv-relu-pool-conv-gap-dense(softmax) on `shape`, 2 classes."""
    rank = len(shape)
    conv, pool, gap = (
        getattr(L, f"{name}{rank}D") for name in ("Conv", "MaxPooling", "GlobalAveragePooling")
    )
    inputs = keras.Input((*shape, channels))
    h = conv(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = pool(2, name="pool1")(h)
    h = conv(4, 3, padding="same", activation="relu", name="conv2")(h)
    outputs = L.Dense(2, activation="softmax", name="dense")(gap(name="gap")(h))
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def study(head_ct_hu) -> imaging.Volume:
    return imaging.Volume(
        head_ct_hu[50:58, 96:128, 96:128].copy(), spacing=(1.5, 0.957, 0.957), modality="CT"
    )


@pytest.mark.parametrize("name", list(explain.METHODS))
@pytest.mark.parametrize("mode", ["2.5d", "3d"])
def test_every_method_runs_over_a_study(study: imaging.Volume, name: str, mode: str) -> None:
    keras.utils.set_random_seed(0)
    method = explain.METHODS[name]
    if mode == "2.5d":  # three neighbouring slices as channels: an attribution keeps the middle one
        model = classifier((32, 32), 3)
        card = ModelCard(input_mode="2.5d", input_shape=(32, 32, 3), intensity=WINDOW, class_names=["a", "b"])
    else:
        model = classifier((8, 16, 16), 1)
        card = ModelCard(
            input_mode="3d",
            input_shape=(8, 16, 16, 1),
            intensity=WINDOW,
            resize="crop_or_pad",
            class_names=["a", "b"],
        )
    result = explain_volume(study, model, name, card=card, layer="conv2", target=1, params=CHEAP.get(name))
    assert result.maps.shape == study.shape and result.computed.all()
    assert np.isfinite(result.maps).all() and np.abs(result.maps).max() > 0
    assert result.layer == ("conv2" if method.uses_layer else "")
    assert result.parameters.items() >= method.parameters(CHEAP.get(name)).items()
    # Slice 3 alone, as the method gives it (SmoothGrad too: its noise follows the image, not
    # the batch the runner put it in).
    if mode == "2.5d" and method.uses_target:
        batch = card.slice_input(study.voxels, [3])
        args = (model, batch, "conv2", 1) if method.uses_layer else (model, batch, 1)
        alone = method.run(*args, **CHEAP.get(name, {}))
        if method.kind == "attribution":
            alone = per_voxel(alone, card)
        np.testing.assert_allclose(
            result.maps[3], card.to_grid(alone, study.shape[1:])[0], rtol=1e-4, atol=1e-6
        )


def test_a_2_5d_attribution_is_its_own_slice_and_others_sum_their_channels() -> None:
    attribution = np.arange(2 * 3 * 4 * 3, dtype=np.float32).reshape(2, 3, 4, 3)
    stacked = ModelCard(input_mode="2.5d", input_shape=(3, 4, 3))
    colour = ModelCard(input_mode="2d", input_shape=(3, 4, 3))
    np.testing.assert_array_equal(per_voxel(attribution, stacked), attribution[..., 1])
    np.testing.assert_array_equal(per_voxel(attribution, colour), attribution.sum(axis=-1))


def test_a_parameter_the_method_does_not_have_is_refused(study: imaging.Volume) -> None:
    card = ModelCard(input_mode="2.5d", input_shape=(32, 32, 3), intensity=WINDOW)
    model = classifier((32, 32), 3)
    with pytest.raises(ExplainError, match="Grad-CAM has no parameter steps"):
        explain_volume(study, model, "grad_cam", card=card, params={"steps": 3})
    with pytest.raises(ExplainError, match="'steps' must be at least 1"):
        explain_volume(study, model, "integrated_gradients", card=card, params={"steps": 0})


def test_a_costly_method_reports_progress_after_every_image(study: imaging.Volume) -> None:
    card = ModelCard(input_mode="2.5d", input_shape=(32, 32, 3), intensity=WINDOW)
    seen: list[tuple[int, int]] = []
    result = explain_volume(
        study,
        classifier((32, 32), 3),
        "occlusion",
        card=card,
        target=1,
        params={"window": 16, "stride": 16},
        batch_size=8,
        progress=lambda done, total: seen.append((done, total)),
        cancel=lambda: len(seen) >= 3,
    )
    assert seen == [(1, 8), (2, 8), (3, 8)] and result.cancelled
    assert result.computed.sum() == 3 and result.parameters["images_per_batch"] == 1
