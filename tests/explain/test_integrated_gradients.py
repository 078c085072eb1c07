"""Integrated gradients against its axioms: completeness on a curved score, exactness on a
linear one, convergence of both quadrature rules to one integral, and its checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from medvis_desktop.explain import ExplainError
from medvis_desktop.explain.integrated_gradients import METHOD, integrated_gradients
from tests.explain.test_gradient import linear_model, logits_twin, scores_of, smooth_model

if TYPE_CHECKING:
    from tests.explain.conftest import Models

TARGETS = [0, 2]


def smooth_case(models: Models, rank: int):
    size = 8 if rank == 2 else 5
    model = smooth_model(models, rank, size)
    return model, 2 * models.images(rank, size=size)


def summed(attributions: np.ndarray) -> np.ndarray:
    return attributions.reshape(len(attributions), -1).sum(axis=1)


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("baseline", ["zero", "array"])
def test_completeness(models: Models, rank: int, baseline: str) -> None:
    """Σ attributions = score(x) − score(baseline), the scores before the softmax."""
    model, x = smooth_case(models, rank)
    reference = 0.0 if baseline == "zero" else models.rng.normal(size=x.shape[1:]).astype(np.float32)
    logits = logits_twin(model)
    gap = scores_of(logits, x, TARGETS) - scores_of(logits, np.broadcast_to(reference, x.shape), TARGETS)
    assert np.all(np.abs(gap) > 0.05)
    result = integrated_gradients(model, x, TARGETS, baseline=reference, steps=64)
    assert result.shape == x.shape and result.dtype == np.float32
    np.testing.assert_allclose(summed(result), gap, rtol=0.01)
    assert not np.allclose(summed(integrated_gradients(model, x, TARGETS, steps=1)), gap, rtol=0.01)


@pytest.mark.parametrize("rank", [2, 3])
def test_both_rules_converge_to_one_integral(models: Models, rank: int) -> None:
    model, x = smooth_case(models, rank)
    gauss = integrated_gradients(model, x, TARGETS, steps=64)
    trapezoid = integrated_gradients(model, x, TARGETS, steps=513, rule="riemann_trapezoid", batch_size=256)
    scale = np.abs(gauss).max()
    np.testing.assert_allclose(trapezoid, gauss, atol=1e-4 * scale)
    coarse = integrated_gradients(model, x, TARGETS, steps=3, rule="riemann_trapezoid")
    assert np.abs(coarse - gauss).max() > 1e-2 * scale


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize(
    ("rule", "steps"), [("gauss_legendre", 1), ("gauss_legendre", 5), ("riemann_trapezoid", 2)]
)
@pytest.mark.parametrize("baseline", ["number", "image", "channels"])
def test_linear_model_gives_difference_times_weights(
    models: Models, rank: int, rule: str, steps: int, baseline: str
) -> None:
    """score = x · w + b, so the attributions are (x − baseline) · w, whatever the steps."""
    model = linear_model(models, rank, channels=2)
    x = models.images(rank, channels=2)
    reference = {
        "number": 0.5,
        "image": models.rng.normal(size=x.shape[1:]),
        "channels": np.array([-1.0, 2.0]),  # one value per channel, broadcast over space
    }[baseline]
    kernel = model.get_layer("dense").kernel.numpy()
    weights = kernel[:, TARGETS].T.reshape(x.shape)
    result = integrated_gradients(model, x, TARGETS, baseline=reference, steps=steps, rule=rule, batch_size=3)
    np.testing.assert_allclose(result, (x - reference) * weights, rtol=1e-4, atol=1e-6)


def test_batch_size_does_not_change_the_result(models: Models) -> None:
    model, x = smooth_case(models, 2)
    whole = integrated_gradients(model, x, TARGETS, steps=6, batch_size=12)
    for batch_size in (1, 5, 7, 100):
        np.testing.assert_allclose(
            integrated_gradients(model, x, TARGETS, steps=6, batch_size=batch_size),
            whole,
            rtol=1e-5,
            atol=1e-7,
        )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"baseline": np.zeros((5, 1))}, "broadcast"),
        ({"baseline": np.zeros((2, 16, 16, 1))}, "broadcast"),  # one per sample: not one image
        ({"baseline": np.zeros(3)}, "broadcast"),
        ({"baseline": np.nan}, "not finite"),
        ({"baseline": "air"}, "numeric"),
        ({"steps": 0}, "steps"),
        ({"steps": 1, "rule": "riemann_trapezoid"}, "at least 2"),
        ({"rule": "simpson"}, "rule"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments(models: Models, arguments: dict, message: str) -> None:
    with pytest.raises(ExplainError, match=message):
        integrated_gradients(models.classifier(2), models.images(2), 0, **arguments)


def test_method_declares_parameters_and_cost() -> None:
    assert METHOD.run is integrated_gradients and METHOD.kind == "attribution" and not METHOD.uses_layer
    params = METHOD.parameters()
    assert params == {"baseline": 0.0, "steps": 50, "rule": "gauss_legendre", "batch_size": 32}
    assert METHOD.cost is not None
    assert METHOD.cost(METHOD.parameters({"steps": 7}), (16, 16), 1) == 7
