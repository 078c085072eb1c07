"""Eigen-CAM (Muhammad & Yeasin 2020): the layer's activations projected on their first
principal component. It needs no gradient and no class, so it works on any model that runs,
and shows what the layer responds to most, whatever the output.
"""

from __future__ import annotations

import keras
import numpy as np

from medvis_desktop.arrays import resize_linear
from medvis_desktop.explain.activations import activation_maps
from medvis_desktop.explain.base import Method, check_inputs
from medvis_desktop.explain.graph import resolve_target
from medvis_desktop.models.layers import has_spatial_output


def eigen_cam(model: keras.Model, inputs: object, layer: str, *, upsample: bool = True) -> np.ndarray:
    """Eigen-CAM at `layer`: (N, *spatial) of the input (upsample) or of the layer, not normalised.

    Per sample, the activations A as a (positions, C) matrix are centred (each channel's mean
    over positions subtracted: the paper does not centre; pytorch-grad-cam does, as here),
    and projected on the first right-singular vector of that centred matrix (SVD in float64).
    A singular vector's sign is arbitrary, so the projection is oriented to correlate
    positively with the channel-mean activation map (left as the SVD gives it where that
    correlation is 0). Then ReLU. upsample resizes linearly with half-pixel centres, as
    gradcam.grad_cam does.
    """
    batch = check_inputs(model, inputs)
    resolve_target(model, layer, has_spatial_output, METHOD.label)
    features = activation_maps(model, batch, layer)
    maps = np.maximum(principal_projection(features), 0).astype(np.float32)
    return resize_linear(maps, batch.shape[1:-1]) if upsample else maps


def principal_projection(features: np.ndarray) -> np.ndarray:
    """(N, *spatial, C) -> (N, *spatial): the centred activations on their first principal
    component, signed to correlate positively with the channel-mean map; before the ReLU."""
    count, channels = features.shape[0], features.shape[-1]
    matrix = features.reshape(count, -1, channels).astype(np.float64)
    centred = matrix - matrix.mean(axis=1, keepdims=True)
    _, _, right = np.linalg.svd(centred, full_matrices=False)
    projection = np.einsum("npc,nc->np", centred, right[:, 0, :])
    mean_map = matrix.mean(axis=2)
    agreement = np.sum(projection * (mean_map - mean_map.mean(axis=1, keepdims=True)), axis=1)
    projection *= np.where(agreement < 0, -1.0, 1.0)[:, None]
    return projection.reshape(features.shape[:-1])


METHOD = Method(
    name="eigen_cam",
    label="Eigen-CAM",
    run=eigen_cam,
    can_target=has_spatial_output,
    uses_target=False,
)
