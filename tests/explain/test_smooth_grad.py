"""SmoothGrad against a numpy reconstruction of its noise and an eager tape, and its limits:
no noise is the base method, a constant gradient is not changed by noise."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import pytest

from medvis_desktop.explain import ExplainError
from medvis_desktop.explain.gradient import gradient
from medvis_desktop.explain.integrated_gradients import integrated_gradients
from medvis_desktop.explain.smooth_grad import METHOD, noise_sigma, smooth_grad
from tests.explain.test_gradient import linear_model, logits_twin, tape_gradient

if TYPE_CHECKING:
    from tests.explain.conftest import Models

TARGETS = [0, 2]


def uneven_images(models: Models, rank: int) -> np.ndarray:
    """Two images whose value ranges differ tenfold: the noise must follow each one's range."""
    x = models.images(rank)
    x[1] *= 10
    return x


@pytest.mark.parametrize("rank", [2, 3])
def test_equals_reconstruction_with_the_same_draws(models: Models, rank: int) -> None:
    """sigma = noise × (max − min) of each image, float32 draws all at once here (SmoothGrad
    draws them copy by copy) from default_rng([seed, the BLAKE2b-128 digest of the image's
    bytes as four little-endian 32-bit words]), then the mean of an eager tape's gradients of
    the logits."""
    model = models.classifier(rank)
    x = uneven_images(models, rank)
    samples, noise, seed = 5, 0.2, 3
    draws = np.concatenate([
        np.random.default_rng(
            [seed, *np.frombuffer(hashlib.blake2b(image.tobytes(), digest_size=16).digest(), "<u4").tolist()]
        ).standard_normal((samples, *x.shape[1:]), dtype=np.float32)
        for image in x
    ])  # fmt: skip
    ranges = np.array([image.max() - image.min() for image in x], np.float32)
    sigma = np.repeat(noise * ranges, samples).reshape(-1, *[1] * (x.ndim - 1))
    noisy = np.repeat(x, samples, axis=0) + sigma * draws
    grads = tape_gradient(logits_twin(model), noisy, np.repeat(TARGETS, samples))
    expected = grads.reshape(len(x), samples, *x.shape[1:]).mean(axis=1)
    result = smooth_grad(model, x, TARGETS, samples=samples, noise=noise, seed=seed, batch_size=4)
    assert result.shape == x.shape and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert not np.allclose(result, gradient(model, x, TARGETS), rtol=0.05)


def test_noise_sigma_is_per_image() -> None:
    x = np.zeros((2, 3, 3, 2), np.float32)
    x[0, 0, 0, 0], x[0, 1, 1, 1] = -1, 3
    x[1, 2, 2, 0] = 0.5
    np.testing.assert_allclose(noise_sigma(x, 0.1), [0.4, 0.05])


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("base", ["gradient", "integrated_gradients"])
def test_without_noise_it_is_the_base_method(models: Models, rank: int, base: str) -> None:
    model = models.classifier(rank)
    x = models.images(rank)
    result = smooth_grad(model, x, TARGETS, samples=3, noise=0.0, base=base)
    # the base with its defaults (integrated gradients: baseline 0, 50 Gauss–Legendre steps)
    expected = (gradient if base == "gradient" else integrated_gradients)(model, x, TARGETS)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("rank", [2, 3])
def test_constant_gradient_is_unchanged_by_noise(models: Models, rank: int) -> None:
    model = linear_model(models, rank)
    x = models.images(rank)
    result = smooth_grad(model, x, TARGETS, samples=4, noise=0.5)
    np.testing.assert_allclose(result, gradient(model, x, TARGETS), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rank", [2, 3])
def test_an_image_s_map_does_not_depend_on_its_batch(models: Models, rank: int) -> None:
    """Alone, second, or in batches of another size: the same map (a study's slices are
    batched as the viewer asks for them, the slice on screen first)."""
    model = models.classifier(rank)
    x = uneven_images(models, rank)
    together = smooth_grad(model, x, TARGETS, samples=3, seed=5, batch_size=4)
    reversed_order = smooth_grad(model, x[::-1], TARGETS[::-1], samples=3, seed=5, batch_size=2)
    alone = smooth_grad(model, x[1:], TARGETS[1:], samples=3, seed=5, batch_size=3)
    np.testing.assert_allclose(reversed_order[::-1], together, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(alone[0], together[1], rtol=1e-5, atol=1e-7)


def test_seed_reproduces_the_maps(models: Models) -> None:
    model = models.classifier(2)
    x = models.images(2)
    first = smooth_grad(model, x, 1, samples=4, seed=7)
    np.testing.assert_array_equal(smooth_grad(model, x, 1, samples=4, seed=7), first)
    assert not np.allclose(smooth_grad(model, x, 1, samples=4, seed=8), first)


def test_segmentation_mask(models: Models) -> None:
    model = models.segmenter(2)
    x = models.images(2)
    region = np.zeros(x.shape[1:-1], bool)
    region[4:10, 2:12] = True
    masked = smooth_grad(model, x, 2, mask=region, samples=3, noise=0.0)
    np.testing.assert_allclose(masked, gradient(model, x, 2, mask=region), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"samples": 0}, "samples"),
        ({"noise": -0.1}, "noise"),
        ({"base": "deconvnet"}, "base"),
        ({"seed": 1.5}, "seed"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments(models: Models, arguments: dict, message: str) -> None:
    with pytest.raises(ExplainError, match=message):
        smooth_grad(models.classifier(2), models.images(2), 0, **arguments)


def test_method_declares_parameters_and_cost() -> None:
    assert METHOD.run is smooth_grad and METHOD.kind == "attribution" and not METHOD.uses_layer
    assert METHOD.parameters() == {
        "samples": 25,
        "noise": 0.15,
        "seed": 0,
        "base": "gradient",
        "batch_size": 32,
    }
    assert METHOD.cost is not None
    assert METHOD.cost(METHOD.parameters({"samples": 10}), (16, 16), 1) == 10
    assert METHOD.cost(METHOD.parameters({"samples": 10, "base": "integrated_gradients"}), (8,) * 3, 1) == 500
