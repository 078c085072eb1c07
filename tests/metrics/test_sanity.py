"""The randomisation cascade (Adebayo et al. 2018) and its SSIM, 2D and 3D. Its rank correlation is
faithfulness.spearman, checked against a hand ranking in test_faithfulness.py."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from medvis_desktop.metrics.base import MetricError
from medvis_desktop.metrics.sanity import Cascade, CascadeStep, randomisation_cascade, ssim

RANKS = [2, 3]


def direct_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 voxel by voxel: Gaussian weights (sigma 1.5, cut at 4 sigma = 6 voxels),
    the image mirrored at its borders (edge voxel repeated), K1 0.01, K2 0.03, range 1."""
    taps = [np.exp(-(o**2) / (2 * 1.5**2)) for o in range(-6, 7)]
    taps = [t / sum(taps) for t in taps]

    def mirrored(index: int, size: int) -> int:
        index %= 2 * size
        return index if index < size else 2 * size - 1 - index

    c1, c2, total = 0.01**2, 0.03**2, 0.0
    for voxel in itertools.product(*(range(n) for n in x.shape)):
        sums = dict.fromkeys(("x", "y", "xx", "yy", "xy"), 0.0)
        for offset in itertools.product(range(13), repeat=x.ndim):
            weight = np.prod([taps[o] for o in offset])
            at = tuple(mirrored(v + o - 6, n) for v, o, n in zip(voxel, offset, x.shape, strict=True))
            a, b = x[at], y[at]
            for key, value in (("x", a), ("y", b), ("xx", a * a), ("yy", b * b), ("xy", a * b)):
                sums[key] += weight * value
        mx, my = sums["x"], sums["y"]
        vx, vy, cxy = sums["xx"] - mx**2, sums["yy"] - my**2, sums["xy"] - mx * my
        total += ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return total / x.size


@pytest.mark.parametrize("rank", RANKS)
def test_ssim_of_identical_maps_is_one_and_of_unrelated_ones_low(rank):
    rng = np.random.default_rng(0)
    maps = rng.uniform(0, 1, (3, *(10,) * rank))
    assert ssim(maps, maps).tolist() == [1.0, 1.0, 1.0]
    assert (ssim(maps, rng.uniform(0, 1, maps.shape)) < 0.2).all()


@pytest.mark.parametrize("shape", [(7, 5), (4, 3, 5)], ids=["2d", "3d"])
def test_ssim_matches_a_direct_windowed_sum(shape):
    """Maps smaller than the window: the mirroring wraps more than once."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, shape)
    y = np.clip(x + rng.normal(0, 0.3, shape), 0, 1)
    assert ssim(x[None], y[None])[0] == pytest.approx(direct_ssim(x, y), abs=1e-6)


@pytest.mark.parametrize("rank", RANKS)
def test_grad_cam_decorrelates_as_soon_as_the_head_is_randomised(models, rank):
    cascade = randomisation_cascade(
        models.classifier(rank), models.images(rank, 4), "grad_cam", 0, layer="conv3"
    )
    assert [row.layer for row in cascade.rows] == ["dense", "conv3", "conv2", "conv1"]
    assert cascade.rows[0].spearman_mean < 0.5
    assert cascade.rows[-1].spearman_mean < 0.5
    assert not cascade.insensitive()
    assert cascade.maps.shape == (5, 4, *(models.side(rank),) * rank)
    assert not cascade.cancelled


@pytest.mark.parametrize("rank", RANKS)
def test_the_deconvnet_of_a_layer_is_blind_to_the_layers_above_it(models, rank):
    """It never passes through them (Zeiler-Fergus project down from the chosen layer): its
    maps stay exactly the same until the chosen layer itself is re-initialised."""
    cascade = randomisation_cascade(
        models.classifier(rank), models.images(rank, 3), "deconvnet", layer="conv2"
    )
    above, own = cascade.rows[:2], cascade.rows[2]
    assert [row.layer for row in above] == ["dense", "conv3"] and own.layer == "conv2"
    for step, row in enumerate(above, start=1):
        np.testing.assert_array_equal(cascade.maps[step], cascade.maps[0])
        np.testing.assert_allclose(row.spearman, 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(row.ssim, 1.0, rtol=0, atol=1e-12)
    assert (own.spearman < 0.9).all() and (own.ssim < 0.9).all()


@pytest.mark.parametrize("rank", RANKS)
def test_a_nested_model_is_walked_and_the_users_model_is_never_touched(models, rank):
    model = models.nested(rank)
    before = [w.copy() for w in model.get_weights()]
    cascade = randomisation_cascade(model, models.images(rank, 2), "grad_cam", 0, layer="backbone/conv3")
    layers = [row.layer for row in cascade.rows]
    assert layers == ["dense", "backbone/conv3", "backbone/block/conv2", "backbone/conv1", "stem"]
    assert cascade.maps.shape == (6, 2, *(models.side(rank),) * rank)
    assert not np.array_equal(cascade.maps[-1], cascade.maps[0])
    for kept, now in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(now, kept)


def test_every_weight_with_an_initializer_is_redrawn_and_adapted_statistics_are_not(models):
    """Kernels of every kind, batch norm, a dense head: each a step. A Normalization layer's
    statistics come from data, with no initializer: it is no step."""
    L = keras.layers
    normalise = L.Normalization(name="normalise")
    normalise.adapt(models.images(2, 4))
    inputs = keras.Input((16, 16, 1))
    h = L.Conv2D(3, 3, padding="same", name="conv")(normalise(inputs))
    h = L.BatchNormalization(name="norm")(h)
    h = L.DepthwiseConv2D(3, padding="same", activation="relu", name="depthwise")(h)
    h = L.SeparableConv2D(4, 3, padding="same", activation="relu", name="separable")(h)
    outputs = L.Dense(2, name="dense")(L.GlobalAveragePooling2D()(h))
    model = models.randomize(keras.Model(inputs, outputs))
    cascade = randomisation_cascade(model, models.images(2, 2), "grad_cam", 0, layer="separable")
    assert [row.layer for row in cascade.rows] == ["dense", "separable", "depthwise", "norm", "conv"]
    assert all(not np.array_equal(later, earlier) for later, earlier in itertools.pairwise(cascade.maps))


def test_each_layer_gets_its_own_initializer(models):
    """A head whose kernel initializer is zeros loses every class score's gradient, so every
    Grad-CAM map after the head step is zero (no ranking: NaN)."""
    model = models.classifier(2)
    model.get_layer("dense").kernel_initializer = keras.initializers.Zeros()
    cascade = randomisation_cascade(model, models.images(2, 2), "grad_cam", 0, layer="conv3")
    assert (cascade.maps[0] > 0).any() and (cascade.maps[1:] == 0).all()
    assert np.isnan(cascade.rows[0].spearman).all() and np.isnan(cascade.rows[0].spearman_mean)


def test_the_seed_fixes_the_draws(models):
    model, inputs = models.classifier(2), models.images(2, 2)
    first, again, other = (
        randomisation_cascade(model, inputs, "grad_cam", 0, layer="conv3", seed=seed) for seed in (3, 3, 4)
    )
    np.testing.assert_array_equal(again.maps, first.maps)
    assert all(not np.array_equal(a, b) for a, b in zip(other.maps[1:], first.maps[1:], strict=True))


def test_a_cascade_after_a_cancelled_one_starts_again_from_the_trained_weights(models):
    """The working clone is kept per model (its compiled functions trace once): a cascade left
    half-way must not leak its random layers into the next one."""
    model, inputs = models.classifier(2), models.images(2, 2)
    asked = iter([False, False, True])
    randomisation_cascade(model, inputs, "grad_cam", 0, layer="conv3", cancel=lambda: next(asked))
    after = randomisation_cascade(model, inputs, "grad_cam", 0, layer="conv3")
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    fresh = randomisation_cascade(twin, inputs, "grad_cam", 0, layer="conv3")
    np.testing.assert_allclose(after.maps, fresh.maps, rtol=1e-6, atol=1e-7)


def test_cancel_stops_with_the_rows_done_and_progress_counts_every_map(models):
    progress, asked = [], []

    def cancel() -> bool:
        asked.append(True)
        return len(asked) > 2

    cascade = randomisation_cascade(
        models.classifier(2),
        models.images(2, 2),
        "grad_cam",
        0,
        layer="conv3",
        progress=lambda done, total: progress.append((done, total)),
        cancel=cancel,
    )
    assert cascade.cancelled
    assert [row.layer for row in cascade.rows] == ["dense", "conv3"]
    assert cascade.maps.shape[0] == 3
    assert progress == [(1, 5), (2, 5), (3, 5)]


def step(*rho: float) -> CascadeStep:
    return CascadeStep("layer", np.array(rho), np.ones(len(rho)))


def test_insensitive_means_the_rank_correlation_never_fell_below_the_threshold():
    maps = np.zeros((3, 2, 4, 4))
    flat = Cascade((step(0.9, 0.7), step(0.6, np.nan)), maps)  # means 0.8, 0.6 (NaN skipped)
    assert flat.insensitive() and flat.insensitive(0.6) and not flat.insensitive(0.65)
    assert not Cascade((step(0.9, 0.9), step(np.nan, np.nan)), maps).insensitive()
    assert not Cascade((), maps[:1], cancelled=True).insensitive()


@pytest.mark.parametrize(
    ("method", "target", "arguments", "message"),
    [
        ("no_such_method", 0, {"layer": "conv3"}, "Unknown method"),
        ("activation_maps", None, {"layer": "conv3"}, "not evidence"),
        ("grad_cam", None, {"layer": "conv3"}, "target"),
        ("grad_cam", 0, {}, "layer="),
        ("grad_cam", 0, {"layer": "conv3", "params": {"steps": 3}}, "parameters"),
        ("grad_cam", 0, {"layer": "no_such_layer"}, "No layer"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(models, method, target, arguments, message):
    with pytest.raises(MetricError, match=message):
        randomisation_cascade(models.classifier(2), models.images(2, 1), method, target, **arguments)
