"""Deletion, insertion and MuFidelity against hand computations on linear models, and the
properties the papers state, in 2D and 3D."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from medvis_desktop.explain.scores import score_for, target_scores
from medvis_desktop.metrics import MetricError, deletion, gaussian_blur, insertion, mu_fidelity
from medvis_desktop.metrics import base as metrics_base
from medvis_desktop.metrics.faithfulness import average_ranks, spearman
from tests.metrics.conftest import linear_model

RANKS = pytest.mark.parametrize("rank", [2, 3])
CURVES = pytest.mark.parametrize("metric", [deletion, insertion])


def hand_curve(model, x, maps, targets, steps, baseline, delete):
    """The curve of a linear model (GAP + Dense), voxel by voxel in Python: a stable sort of
    the voxels by decreasing map, then mean(image)·W[:, t] + b_t after each step."""
    w, b = model.get_layer("dense").get_weights()
    count, n = len(x), math.prod(x.shape[1:-1])
    curves = np.empty((count, steps + 1))
    for i, t in enumerate(targets):
        voxels, values = x[i].reshape(n, -1), maps[i].ravel()
        order = sorted(range(n), key=lambda v: -values[v])  # Python's sort is stable
        for k in range(steps + 1):
            first = order[: math.floor(k * n / steps)]
            image = voxels.copy() if delete else np.full_like(voxels, baseline)
            image[first] = baseline if delete else voxels[first]
            curves[i, k] = image.astype(np.float64).mean(axis=0) @ w[:, t] + b[t]
    return curves


def recording(monkeypatch) -> list[np.ndarray]:
    """Every batch the metrics score, through a wrapper of the real scoring function."""
    batches: list[np.ndarray] = []
    real = metrics_base.score_batch

    def score_batch(model, images, score, kind):
        batches.append(images.copy())
        return real(model, images, score, kind)

    monkeypatch.setattr(metrics_base, "score_batch", score_batch)
    return batches


@RANKS
@CURVES
def test_curve_of_a_linear_model_matches_the_hand_computation(rank, metric, rng):
    model = linear_model(rank, rng)
    x = rng.normal(size=(2, *model.inputs[0].shape[1:])).astype(np.float32)
    maps = rng.integers(0, 4, size=x.shape[:-1]).astype(np.float64)  # many ties
    steps, baseline = 7, 0.5  # n = 256 or 512 voxels: 7 divides neither
    result = metric(model, x, maps, [0, 1], steps=steps, baseline=baseline, score="logit")
    expected = hand_curve(model, x, maps, [0, 1], steps, baseline, metric is deletion)
    np.testing.assert_allclose(result.curve, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.auc, np.trapezoid(expected, dx=1 / steps, axis=1), rtol=1e-5, atol=1e-5)


@RANKS
@pytest.mark.parametrize(
    ("activation", "score"), [(None, "logit"), ("sigmoid", "output"), ("softmax", "output")]
)
def test_the_true_relevance_beats_a_random_map(rank, activation, score, rng):
    model = linear_model(rank, rng, channels=2, activation=activation)
    w = model.get_layer("dense").get_weights()[0]
    x = rng.normal(size=(2, *model.inputs[0].shape[1:])).astype(np.float32)
    targets = np.array([0, 1])
    # the softmax of two classes is the sigmoid of the difference of their logits
    weights = w[:, targets] - (w[:, 1 - targets] if activation == "softmax" else 0)  # (C, N)
    truth = x * weights.T.reshape(2, *[1] * rank, 2)  # w·x per voxel and channel
    noise = rng.normal(size=x.shape[:-1])
    for metric, better in ((deletion, np.less), (insertion, np.greater)):
        good = metric(model, x, truth, targets, score=score)
        bad = metric(model, x, noise, targets, score=score)
        assert better(good.auc, bad.auc).all(), metric.__name__


@RANKS
def test_channels_are_averaged_and_move_together(rank, rng, monkeypatch):
    model = linear_model(rank, rng, channels=3)
    x = rng.normal(size=(2, *model.inputs[0].shape[1:])).astype(np.float32)
    maps = rng.normal(size=x.shape)
    averaged = deletion(model, x, maps.mean(axis=-1), 0, steps=4, baseline=100.0, batch_size=3)
    batches = recording(monkeypatch)
    per_channel = deletion(model, x, maps, 0, steps=4, baseline=100.0, batch_size=3)
    np.testing.assert_array_equal(per_channel.curve, averaged.curve)
    images = np.concatenate(batches).reshape(2, 5, *x.shape[1:])  # sample-major
    gone = (images == 100.0).all(axis=-1)
    assert (gone | (images == x[:, None]).all(axis=-1)).all()  # never one channel without the others
    n = math.prod(x.shape[1:-1])
    counts = gone.reshape(2, 5, n).sum(axis=-1)
    np.testing.assert_array_equal(counts, [[k * n // 4 for k in range(5)]] * 2)


@RANKS
def test_the_blur_baseline_ends_deletion_and_starts_insertion(rank, models):
    model = models.classifier(rank, "dense_softmax")
    x = models.images(rank, count=2)
    maps = models.rng.normal(size=x.shape[:-1])
    blurred = np.asarray(model(gaussian_blur(x, 1.5), training=False))[[0, 1], [2, 1]]
    clean = np.asarray(model(x, training=False))[[0, 1], [2, 1]]
    gone = deletion(model, x, maps, [2, 1], baseline="blur", sigma=1.5, steps=3)
    back = insertion(model, x, maps, [2, 1], baseline="blur", sigma=1.5, steps=3)
    np.testing.assert_allclose(gone.curve[:, [0, -1]], np.stack([clean, blurred], 1), rtol=1e-5)
    np.testing.assert_allclose(back.curve[:, [0, -1]], np.stack([blurred, clean], 1), rtol=1e-5)
    assert not np.allclose(blurred, clean)


@RANKS
def test_gaussian_blur_of_an_impulse_is_the_normalised_kernel(rank):
    size, sigma = (16, 8)[rank - 2], 0.8  # radius round(3.2) = 3 stays inside
    image = np.zeros((1, *(size,) * rank, 2), np.float32)
    centre = (size // 2,) * rank
    image[(0, *centre, 0)] = 1
    g = np.exp(-0.5 * (np.arange(-3, 4) / sigma) ** 2)
    g /= g.sum()
    expected = np.zeros((size,) * rank)
    expected[tuple(slice(c - 3, c + 4) for c in centre)] = functools.reduce(np.multiply.outer, [g] * rank)
    blurred = gaussian_blur(image, sigma)
    np.testing.assert_allclose(blurred[0, ..., 0], expected, atol=1e-7)
    assert not blurred[..., 1].any()  # channels stay apart
    flat = np.full((1, *(size,) * rank, 1), 3.0, np.float32)
    np.testing.assert_allclose(gaussian_blur(flat, 5.0), flat, rtol=1e-6)  # kernel wider than the image


def relevance(model, x, baseline, targets) -> np.ndarray:
    """Each voxel's share of the drop of the target's logit when it is set to the baseline."""
    w = model.get_layer("dense").get_weights()[0]
    n = math.prod(x.shape[1:-1])
    return np.stack([(x[i] - baseline) @ w[:, t] / n for i, t in enumerate(targets)])


@RANKS
def test_mu_fidelity_of_the_true_relevance_is_one_and_minus_one(rank, rng):
    model = linear_model(rank, rng, channels=2)
    x = rng.normal(size=(2, *model.inputs[0].shape[1:])).astype(np.float32)
    baseline = np.array([0.3, -0.2], np.float32)  # one value per channel
    truth = relevance(model, x, baseline, [0, 1])
    kwargs = dict(grid=3, samples=48, baseline=baseline, score="logit")
    np.testing.assert_allclose(mu_fidelity(model, x, truth, [0, 1], **kwargs), 1, atol=1e-6)
    np.testing.assert_allclose(mu_fidelity(model, x, -truth, [0, 1], **kwargs), -1, atol=1e-6)
    # spread evenly within each cell (voxel i in cell floor((i + 0.5)·grid / L)), it still predicts
    # every drop; spread over cells cut as floor(i·grid / L) instead, it does not
    for cut, exact in ((lambda i, size: (i + 0.5) * 3 / size, True), (lambda i, size: i * 3 / size, False)):
        axes = [cut(np.arange(size), size).astype(int) for size in x.shape[1:-1]]
        cells = np.ravel_multi_index(np.meshgrid(*axes, indexing="ij"), (3,) * rank)
        spread = np.stack(
            [(np.bincount(cells.ravel(), m.ravel()) / np.bincount(cells.ravel()))[cells] for m in truth]
        )
        value = mu_fidelity(model, x, spread, [0, 1], **kwargs)
        assert np.allclose(value, 1, atol=1e-6) == exact


@RANKS
def test_mu_fidelity_is_seeded_and_independent_of_the_batch(rank, rng):
    model = linear_model(rank, rng)
    x = rng.normal(size=(3, *model.inputs[0].shape[1:])).astype(np.float32)
    maps = rng.normal(size=x.shape[:-1])
    first = mu_fidelity(model, x, maps, 0, grid=4, samples=40, seed=3)
    np.testing.assert_array_equal(first, mu_fidelity(model, x, maps, 0, grid=4, samples=40, seed=3))
    assert not np.allclose(first, mu_fidelity(model, x, maps, 0, grid=4, samples=40, seed=4))
    alone = mu_fidelity(model, x[1:2], maps[1:2], 0, grid=4, samples=40, seed=3, batch_size=7)
    np.testing.assert_allclose(alone, first[1:2], atol=1e-6)


def test_spearman_averages_ties_and_is_nan_without_spread():
    np.testing.assert_array_equal(average_ranks(np.array([[3.0, 1, 3, 2]])), [[2.5, 0, 2.5, 1]])
    a, b = np.array([[1.0, 2, 2, 3]]), np.array([[1.0, 3, 2, 4]])
    ra, rb = np.array([0, 1.5, 1.5, 3]) - 1.5, np.array([0, 2, 1, 3]) - 1.5
    np.testing.assert_allclose(spearman(a, b), [ra @ rb / np.sqrt((ra @ ra) * (rb @ rb))])
    assert np.isnan(spearman(a, np.zeros((1, 4)))).all()


@RANKS
def test_forward_passes_are_batched_and_counted(rank, rng, monkeypatch):
    model = linear_model(rank, rng)
    x = rng.normal(size=(3, *model.inputs[0].shape[1:])).astype(np.float32)
    maps = rng.normal(size=x.shape[:-1])
    batches = recording(monkeypatch)
    for run, images, batch_size in (
        (lambda: deletion(model, x, maps, 0, batch_size=4), 3 * 11, 4),
        (lambda: insertion(model, x, maps, 0, steps=5, batch_size=5), 3 * 6, 5),
        (lambda: mu_fidelity(model, x, maps, 0, grid=2, samples=6, batch_size=4), 3 * 7, 4),
    ):
        batches.clear()
        run()
        assert sum(map(len, batches)) == images  # steps + 1 (samples + 1) per image, no more
        assert max(map(len, batches)) == batch_size


@RANKS
@pytest.mark.parametrize("score", ["output", "logit"])
def test_a_segmentation_output_scores_the_region(rank, score, models):
    model = models.segmenter(rank)
    x = models.images(rank, count=2)
    region = models.rng.random(x.shape[1:-1]) < 0.3
    result = deletion(model, x, models.rng.normal(size=x.shape[:-1]), 2, steps=2, score=score, mask=region)
    scored = score_for(model, 2, 2, None, region)
    images = (x, np.zeros_like(x))
    if score == "logit":
        expected = [target_scores(model, image, scored) for image in images]
    else:
        expected = [
            (np.asarray(model(image, training=False))[..., 2] * region).sum(axis=tuple(range(1, rank + 1)))
            for image in images
        ]
    np.testing.assert_allclose(result.curve[:, [0, -1]], np.stack(expected, 1), rtol=1e-5, atol=1e-5)


BAD = [
    (deletion, {"steps": 0}, "steps must be a whole number of at least 1"),
    (insertion, {"batch_size": 0}, "batch_size must be a whole number"),
    (mu_fidelity, {"samples": 0}, "samples must be a whole number of at least 1"),
    (mu_fidelity, {"grid": 0}, "grid must be a whole number of at least 1"),
    (mu_fidelity, {"grid": 17}, r"grid \(17\) is larger than the input \(16 × 16\)"),
    (mu_fidelity, {"subset": 0.0}, "subset must lie strictly between 0 and 1"),
    (mu_fidelity, {"subset": 1.5}, "subset must lie strictly between 0 and 1"),
    (deletion, {"maps": np.zeros((2, 8, 8))}, r"maps have shape \(2, 8, 8\); .* \(2, 16, 16\)"),
    (deletion, {"maps": np.full((2, 16, 16), np.nan)}, "maps contain NaN"),
    (insertion, {"baseline": np.zeros(3)}, r"baseline has shape \(3,\)"),
    (mu_fidelity, {"baseline": "noise"}, "baseline must be a number, an array or 'blur'"),
    (deletion, {"baseline": "blur", "sigma": 0}, "sigma must be a positive number"),
    (deletion, {"score": "probability"}, "score must be one of output, logit"),
    (insertion, {"target": 5}, "target class 5 is out of range"),
]


@pytest.mark.parametrize(("metric", "change", "message"), BAD)
def test_bad_arguments_say_what_is_wrong(metric, change, message, rng):
    model = linear_model(2, rng)
    args = {"maps": np.ones((2, 16, 16)), "target": 0, **change}
    x = np.zeros((2, 16, 16, 1), np.float32)
    with pytest.raises(MetricError, match=message):
        metric(model, x, args.pop("maps"), args.pop("target"), **args)
