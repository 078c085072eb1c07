"""Explanation methods for Keras CNNs on 2D and 3D images; no Qt.

    activation_maps(model, inputs, layer) -> (N, *spatial, C)
    dead_filters(model, inputs, layer) -> (C,) bool
    CAM family, (model, inputs, layer, target, *, upsample=True, output=None, mask=None) ->
    (N, *spatial): grad_cam, grad_cam_plus_plus, hires_cam, layer_cam, xgrad_cam,
    score_cam(..., batch_size=); eigen_cam(model, inputs, layer, *, upsample=True)
    grad_cam_with_outputs(...) -> (maps, the model's output from the same pass)
    deconvnet(model, inputs, layer, filter=None, *, mode="feature_map") -> like inputs
    occlusion(model, inputs, target, *, window=, stride=, baseline=0.0, ...) -> like inputs

`layer` is a layer name, "outer/inner" inside nested models. METHODS lists the methods for
the GUI and the CLI, each with its declared parameters: adding one is a module defining
METHOD plus one line below.
"""

from __future__ import annotations

import keras

from medvis_desktop.explain import activations as _activations
from medvis_desktop.explain import deconvnet as _deconvnet
from medvis_desktop.explain import eigen_cam as _eigen_cam
from medvis_desktop.explain import gradcam as _gradcam
from medvis_desktop.explain import gradcam_plus_plus as _gradcam_plus_plus
from medvis_desktop.explain import hires_cam as _hires_cam
from medvis_desktop.explain import layer_cam as _layer_cam
from medvis_desktop.explain import occlusion as _occlusion
from medvis_desktop.explain import score_cam as _score_cam
from medvis_desktop.explain import xgrad_cam as _xgrad_cam
from medvis_desktop.explain.activations import activation_maps, dead_filters
from medvis_desktop.explain.base import ExplainError, Method
from medvis_desktop.explain.deconvnet import deconvnet
from medvis_desktop.explain.eigen_cam import eigen_cam
from medvis_desktop.explain.gradcam import grad_cam, grad_cam_with_outputs
from medvis_desktop.explain.gradcam_plus_plus import grad_cam_plus_plus
from medvis_desktop.explain.graph import layers_for
from medvis_desktop.explain.hires_cam import hires_cam
from medvis_desktop.explain.layer_cam import layer_cam
from medvis_desktop.explain.occlusion import occlusion
from medvis_desktop.explain.score_cam import score_cam
from medvis_desktop.explain.xgrad_cam import xgrad_cam

METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        _activations.METHOD,
        _gradcam.METHOD,
        _deconvnet.METHOD,
        _gradcam_plus_plus.METHOD,
        _hires_cam.METHOD,
        _layer_cam.METHOD,
        _xgrad_cam.METHOD,
        _score_cam.METHOD,
        _eigen_cam.METHOD,
        _occlusion.METHOD,
    )
}

__all__ = [
    "METHODS",
    "ExplainError",
    "Method",
    "activation_maps",
    "dead_filters",
    "deconvnet",
    "eigen_cam",
    "grad_cam",
    "grad_cam_plus_plus",
    "grad_cam_with_outputs",
    "hires_cam",
    "layer_cam",
    "occlusion",
    "score_cam",
    "target_layers",
    "xgrad_cam",
]


def target_layers(model: keras.Model, method: str) -> list[str]:
    """Paths ("outer/inner") of the layers `method` can explain, in model order."""
    if method not in METHODS:
        raise ExplainError(f"Unknown method '{method}'; available: {', '.join(METHODS)}.")
    return layers_for(model, METHODS[method].can_target)
