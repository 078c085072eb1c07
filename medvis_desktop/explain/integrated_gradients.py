"""Integrated gradients (Sundararajan et al. 2017): the gradient averaged along the straight
path from a baseline image to the input, times (input − baseline).

Unlike the gradient alone, the attributions add up to score(input) − score(baseline)
(completeness), up to the error of the quadrature along the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np

from medvis_desktop.explain.base import BATCH_PARAM, ExplainError, Method, Param, ParamValue, check_inputs
from medvis_desktop.explain.gradient import plain_gradient, weighted_sum
from medvis_desktop.explain.scores import Score, score_for
from medvis_desktop.models.layers import has_spatial_output

RULES = ("gauss_legendre", "riemann_trapezoid")
STEPS = 50
BATCH_SIZE = BATCH_PARAM.default


def integrated_gradients(
    model: keras.Model,
    inputs: object,
    target: int | Sequence[int],
    *,
    output: int | str | None = None,
    mask: object = None,
    baseline: float | np.ndarray = 0.0,
    steps: int = STEPS,
    rule: str = "gauss_legendre",
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """(x − baseline) × Σ_i w_i ∇score(baseline + α_i (x − baseline)), shaped like `inputs`.

    The score is the target's logit before the output softmax/sigmoid (summed inside `mask`
    for a segmentation output); target, output and mask as in `gradient`.

    baseline: a number or an array broadcastable to one image (*spatial, C), in model-input
    units, i.e. after the model card's intensity transform: it should be an image that
    carries no evidence. For CT, air: −1000 HU becomes 0 with a window card whose lower
    bound is above −1000 HU (values below the window are clipped to 0), about 0 with a
    minmax card (air is near the volume's minimum), −1000 × scale + offset with a scale
    card. After z-scoring (usual for MRI) 0 is the scan's mean intensity, not the absence
    of signal: the background is about −mean/std there.
    steps: points on the path. rule: "gauss_legendre" (default) takes the Gauss–Legendre
    nodes and weights for `steps` points mapped to [0, 1], exact for polynomials of degree
    2·steps − 1 along the path; "riemann_trapezoid" takes α_i = i/(steps − 1) with weights
    1/(steps − 1), halved at both ends (steps ≥ 2).
    batch_size: interpolated images per forward and backward pass; it bounds memory and
    does not change the result. The cost is `steps` gradient passes per image.
    """
    METHOD.parameters({"steps": steps, "rule": rule, "batch_size": batch_size})
    batch = check_inputs(model, inputs)
    score = score_for(model, len(batch), target, output, mask)
    return integrate(model, batch, score, baseline=baseline, steps=steps, rule=rule, batch_size=batch_size)


def integrate(
    model: keras.Model,
    batch: np.ndarray,
    score: Score,
    *,
    baseline: float | np.ndarray = 0.0,
    steps: int = STEPS,
    rule: str = "gauss_legendre",
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """Integrated gradients of a checked batch and score (SmoothGrad calls it on noisy copies)."""
    reference = baseline_image(baseline, batch.shape[1:])
    alphas, weights = path_rule(steps, rule)
    difference = batch - reference
    along = (-1, *[1] * (batch.ndim - 1))

    def derive(rows: np.ndarray, ks: np.ndarray) -> np.ndarray:
        return (reference + alphas[ks].reshape(along) * difference[rows]).astype(np.float32)

    summed = weighted_sum(
        model, batch, score, attribute=plain_gradient, derive=derive, weights=weights, batch_size=batch_size
    )
    return difference * summed


def baseline_image(baseline: float | np.ndarray, image: tuple[int, ...]) -> np.ndarray:
    """The baseline as float32, checked to broadcast to one image of shape `image`."""
    try:
        values = np.asarray(baseline, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ExplainError(f"baseline must be a number or a numeric array: {error}") from error
    try:
        fits = np.broadcast_shapes(values.shape, image) == image
    except ValueError:
        fits = False
    if not fits:
        raise ExplainError(
            f"baseline has shape {values.shape}; it must broadcast to one image {image} "
            "(spatial axes, then channels)."
        )
    if not np.all(np.isfinite(values)):
        raise ExplainError("baseline has values that are not finite.")
    return values


def path_rule(steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """The points α_i in [0, 1] and the weights w_i of the quadrature along the path (`steps`
    and `rule` already checked against the declared parameters)."""
    if rule == "gauss_legendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1) / 2, weights / 2
    if steps < 2:
        raise ExplainError(f"The riemann_trapezoid rule needs at least 2 steps (both ends), not {steps}.")
    weights = np.full(steps, 1 / (steps - 1))
    weights[[0, -1]] /= 2
    return np.linspace(0, 1, steps), weights


def _cost(params: Mapping[str, ParamValue], shape: tuple[int, ...], channels: int) -> int:
    return int(params["steps"])


METHOD = Method(
    name="integrated_gradients",
    label="Integrated gradients",
    run=integrated_gradients,
    can_target=has_spatial_output,
    kind="attribution",
    uses_layer=False,
    params=(
        Param(
            "baseline",
            "Baseline",
            0.0,
            help="the image of no evidence, in model-input units (after the card's intensity transform)",
        ),
        Param("steps", "Steps", STEPS, minimum=1, help="points along the path from the baseline"),
        Param(
            "rule",
            "Integration rule",
            "gauss_legendre",
            choices=RULES,
            help="gauss_legendre: Gauss–Legendre nodes; riemann_trapezoid: evenly spaced, ends halved",
        ),
        BATCH_PARAM,
    ),
    cost=_cost,
)
