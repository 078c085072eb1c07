"""SmoothGrad (Smilkov et al. 2017): an attribution averaged over noisy copies of the input.

Gradients of ReLU networks jump from pixel to pixel; averaging them over Gaussian noise
around the image keeps what is stable in a neighbourhood and washes out the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import keras
import numpy as np

from medvis_desktop.explain import integrated_gradients as ig
from medvis_desktop.explain.base import BATCH_PARAM, Method, Param, ParamValue, check_inputs
from medvis_desktop.explain.gradient import Attribute, plain_gradient, weighted_sum
from medvis_desktop.explain.scores import Score, score_for
from medvis_desktop.models.layers import has_spatial_output

BASES = ("gradient", "integrated_gradients")


def smooth_grad(
    model: keras.Model,
    inputs: object,
    target: int | Sequence[int],
    *,
    output: int | str | None = None,
    mask: object = None,
    samples: int = 25,
    noise: float = 0.15,
    seed: int = 0,
    base: str = "gradient",
    batch_size: int = ig.BATCH_SIZE,
) -> np.ndarray:
    """The mean of the `base` attribution over `samples` noisy copies of each image.

    Target, output and mask as in `gradient`. The noise is Gaussian with, for each image, a
    standard deviation of noise × (max − min) of that image (all channels), drawn as float32
    from numpy's default_rng seeded by the seed and the image's content (`image_generator`),
    one copy after another: the same seed gives an image the same map whatever batch, batch
    size or slice order it comes in, so a study's maps do not depend on the slice that was on
    screen when it ran. base: "gradient", or "integrated_gradients" with its defaults
    (baseline 0, 50 Gauss–Legendre steps) on each noisy copy, 50 times the cost.
    batch_size: noisy copies (and interpolated images) per pass; it bounds memory and does
    not change the result.
    """
    METHOD.parameters(
        {"samples": samples, "noise": noise, "seed": seed, "base": base, "batch_size": batch_size}
    )
    batch = check_inputs(model, inputs)
    score = score_for(model, len(batch), target, output, mask)
    sigma = noise_sigma(batch, noise)
    generators = [image_generator(image, seed) for image in batch]

    def derive(rows: np.ndarray, ks: np.ndarray) -> np.ndarray:
        draws = np.stack([generators[n].standard_normal(batch.shape[1:], dtype=np.float32) for n in rows])
        return batch[rows] + sigma[rows].reshape(-1, *[1] * (batch.ndim - 1)) * draws

    def integrated(model: keras.Model, images: np.ndarray, score: Score) -> np.ndarray:
        return ig.integrate(model, images, score, batch_size=batch_size)

    attribute: Attribute = plain_gradient if base == "gradient" else integrated
    weights = np.full(samples, 1 / samples)
    return weighted_sum(
        model, batch, score, attribute=attribute, derive=derive, weights=weights, batch_size=batch_size
    )


def noise_sigma(batch: np.ndarray, noise: float) -> np.ndarray:
    """(N,): the noise's standard deviation for each image, `noise` times its value range."""
    flat = batch.reshape(len(batch), -1)
    return (noise * (flat.max(axis=1) - flat.min(axis=1))).astype(np.float32)


def image_generator(image: np.ndarray, seed: int) -> np.random.Generator:
    """default_rng of [seed, the four 32-bit words of the BLAKE2b-128 digest of the float32
    image's bytes]: the noise is a function of the seed and the image alone."""
    digest = hashlib.blake2b(np.ascontiguousarray(image, np.float32).tobytes(), digest_size=16).digest()
    return np.random.default_rng([seed, *np.frombuffer(digest, dtype="<u4").tolist()])


def _cost(params: Mapping[str, ParamValue], shape: tuple[int, ...], channels: int) -> int:
    return int(params["samples"]) * (ig.STEPS if params["base"] == "integrated_gradients" else 1)


METHOD = Method(
    name="smooth_grad",
    label="SmoothGrad",
    run=smooth_grad,
    can_target=has_spatial_output,
    kind="attribution",
    uses_layer=False,
    params=(
        Param("samples", "Samples", 25, minimum=1, help="noisy copies averaged per image"),
        Param(
            "noise",
            "Noise",
            0.15,
            minimum=0.0,
            help="standard deviation, as a fraction of the image's range",
        ),
        Param("seed", "Seed", 0, minimum=0, help="of the noise: the same seed gives the same maps"),
        Param(
            "base",
            "Averaged method",
            "gradient",
            choices=BASES,
            help="integrated_gradients uses its defaults (baseline 0, 50 steps): 50 times slower",
        ),
        BATCH_PARAM,
    ),
    cost=_cost,
)
