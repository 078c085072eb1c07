"""Score-CAM (Wang et al. 2020): weigh a layer's maps by what each one, used as a mask on the
input, lets the model score, instead of by gradients (which saturate or are noisy).

Every channel costs one forward pass of a masked input, so the passes go in batches of
`batch_size` masked inputs built one batch at a time: memory is bounded by the batch, never
by the number of channels. A channel that is constant over the layer's grid (a dead ReLU
filter, common in trained networks) masks the input to zeros, so all of a sample's constant
channels share one pass on a zero input: exact for finite inputs, and fewer passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np

from medvis_desktop.arrays import resize_linear
from medvis_desktop.explain.activations import activation_maps
from medvis_desktop.explain.base import (
    BATCH_PARAM,
    Method,
    ParamValue,
    check_batch_size,
    check_inputs,
)
from medvis_desktop.explain.graph import resolve_target
from medvis_desktop.explain.scores import score_for, target_scores
from medvis_desktop.models.layers import has_spatial_output

LABEL = "Score-CAM"


def score_cam(
    model: keras.Model,
    inputs: object,
    layer: str,
    target: int | Sequence[int],
    *,
    upsample: bool = True,
    batch_size: int = 32,
    output: int | str | None = None,
    mask: object = None,
) -> np.ndarray:
    """Score-CAM of class `target` at `layer`: (N, *spatial) of the input, or of the layer.

    Each channel A_c of the layer's activations is resized to the input's grid (linear,
    half-pixel centres: arrays.resize_linear), min-max normalised to [0, 1] per sample and
    channel over the input's grid (a constant channel gives a mask of zeros) and multiplied
    into every channel of the input. w = softmax over channels of the target's score on those
    masked inputs, the score taken before the output's softmax/sigmoid (explain/scores.py;
    for a segmentation output the sum of the class's logits inside `mask`, or everywhere).
    No baseline score is subtracted: softmax is unchanged by a shift common to all channels.
    The map is ReLU(sum_c w_c A_c) with the raw activations, at the layer's resolution, and is
    resized to the input's grid as the masks are when `upsample`; it is not normalised.
    batch_size: masked inputs per forward pass (memory against speed, same result).
    """
    batch = check_inputs(model, inputs)
    resolve_target(model, layer, has_spatial_output, LABEL)
    check_batch_size(batch_size)
    score = score_for(model, len(batch), target, output, mask)
    features = activation_maps(model, batch, layer)  # (N, *layer spatial, C)
    channels = features.shape[-1]
    varying = np.ptp(features, axis=tuple(range(1, features.ndim - 1))) > 0  # (N, C)
    logits = np.empty(varying.shape, dtype=np.float32)
    for items in _chunks(np.flatnonzero(varying), batch_size):
        samples, channel = items // channels, items % channels
        masks = normalised(resize_linear(features[samples, ..., channel], batch.shape[1:-1]))  # (k, *spatial)
        masked = batch[samples] * masks[..., None]
        logits[samples, channel] = target_scores(model, masked, score.take(samples))
    # A constant channel's mask is all zeros, so its masked input is zeros: one pass per sample.
    for samples in _chunks(np.flatnonzero(~varying.all(axis=1)), batch_size):
        blank = target_scores(model, np.zeros_like(batch[samples]), score.take(samples))
        logits[samples] = np.where(varying[samples], logits[samples], blank[:, None])
    weights = softmax(logits)
    weights = weights.reshape(len(batch), *[1] * (features.ndim - 2), channels)
    maps = np.maximum((weights * features).sum(axis=-1), 0).astype(np.float32)
    return resize_linear(maps, batch.shape[1:-1]) if upsample else maps


def _chunks(items: np.ndarray, size: int) -> list[np.ndarray]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def normalised(masks: np.ndarray) -> np.ndarray:
    """Each of (k, *spatial) scaled to [0, 1]; one with no range becomes zeros."""
    axes = tuple(range(1, masks.ndim))
    low = masks.min(axis=axes, keepdims=True)
    span = masks.max(axis=axes, keepdims=True) - low
    return np.where(span > 0, (masks - low) / np.where(span > 0, span, 1), 0).astype(np.float32)


def softmax(values: np.ndarray) -> np.ndarray:
    """Along the last axis, shifted by the maximum so large scores do not overflow."""
    exp = np.exp(values - values.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def _cost(params: Mapping[str, ParamValue], spatial: tuple[int, ...], channels: int) -> int:
    """At most one pass per channel of the layer, and one for the activations."""
    return channels + 1


METHOD = Method(
    name="score_cam",
    label=LABEL,
    run=score_cam,
    can_target=has_spatial_output,
    params=(BATCH_PARAM,),
    cost=_cost,
)
