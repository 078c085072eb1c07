"""Explanation methods for Keras CNNs on 2D and 3D images; no Qt.

    activation_maps(model, inputs, layer) -> (N, *spatial, C)
    dead_filters(model, inputs, layer) -> (C,) bool
    CAM family, (model, inputs, layer, target, *, upsample=True, output=None, mask=None) ->
    (N, *spatial): grad_cam, grad_cam_plus_plus, hires_cam, layer_cam, xgrad_cam,
    score_cam(..., batch_size=); eigen_cam(model, inputs, layer, *, upsample=True)
    grad_cam_with_outputs(...) -> (maps, the model's output from the same pass)
    deconvnet(model, inputs, layer, filter=None, *, mode="feature_map") -> like inputs
    Pixel attributions, (model, inputs, target, *, output=None, mask=None, ...) -> like inputs,
    signed: gradient, input_x_gradient, guided_backprop, integrated_gradients(..., baseline=,
    steps=, rule=), smooth_grad(..., samples=, noise=, seed=, base=), occlusion(..., window=,
    stride=, baseline=); guided_grad_cam(model, inputs, layer, target)

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
from medvis_desktop.explain import gradient as _gradient
from medvis_desktop.explain import guided_backprop as _guided_backprop
from medvis_desktop.explain import hires_cam as _hires_cam
from medvis_desktop.explain import integrated_gradients as _integrated_gradients
from medvis_desktop.explain import layer_cam as _layer_cam
from medvis_desktop.explain import occlusion as _occlusion
from medvis_desktop.explain import score_cam as _score_cam
from medvis_desktop.explain import smooth_grad as _smooth_grad
from medvis_desktop.explain import xgrad_cam as _xgrad_cam
from medvis_desktop.explain.activations import activation_maps, dead_filters
from medvis_desktop.explain.base import ExplainError, Method
from medvis_desktop.explain.deconvnet import deconvnet
from medvis_desktop.explain.eigen_cam import eigen_cam
from medvis_desktop.explain.gradcam import grad_cam, grad_cam_with_outputs
from medvis_desktop.explain.gradcam_plus_plus import grad_cam_plus_plus
from medvis_desktop.explain.gradient import gradient, input_x_gradient
from medvis_desktop.explain.graph import layers_for
from medvis_desktop.explain.guided_backprop import guided_backprop, guided_grad_cam
from medvis_desktop.explain.hires_cam import hires_cam
from medvis_desktop.explain.integrated_gradients import integrated_gradients
from medvis_desktop.explain.layer_cam import layer_cam
from medvis_desktop.explain.occlusion import occlusion
from medvis_desktop.explain.score_cam import score_cam
from medvis_desktop.explain.smooth_grad import smooth_grad
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
        *_gradient.METHODS,
        *_guided_backprop.METHODS,
        _integrated_gradients.METHOD,
        _smooth_grad.METHOD,
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
    "gradient",
    "guided_backprop",
    "guided_grad_cam",
    "hires_cam",
    "input_x_gradient",
    "integrated_gradients",
    "layer_cam",
    "occlusion",
    "score_cam",
    "smooth_grad",
    "target_layers",
    "xgrad_cam",
]


def target_layers(model: keras.Model, method: str) -> list[str]:
    """Paths ("outer/inner") of the layers `method` can explain, in model order."""
    if method not in METHODS:
        raise ExplainError(f"Unknown method '{method}'; available: {', '.join(METHODS)}.")
    return layers_for(model, METHODS[method].can_target)
