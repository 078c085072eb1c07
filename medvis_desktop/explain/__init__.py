"""Explanation methods for Keras CNNs on 2D and 3D images; no Qt.

    activation_maps(model, inputs, layer) -> (N, *spatial, C)
    grad_cam(model, inputs, layer, target, *, upsample=True, output=None, mask=None)
    grad_cam_with_outputs(...same...) -> (maps, the model's output from the same pass)
    deconvnet(model, inputs, layer, filter=None, *, mode="feature_map") -> like inputs
    dead_filters(model, inputs, layer) -> (C,) bool

`layer` is a layer name, "outer/inner" inside nested models. METHODS lists the methods for
the GUI and the CLI: adding one is a module defining METHOD plus one line below.
"""

from __future__ import annotations

import keras

from medvis_desktop.explain import activations, gradcam
from medvis_desktop.explain import deconvnet as _deconvnet
from medvis_desktop.explain.activations import activation_maps, dead_filters
from medvis_desktop.explain.base import ExplainError, Method
from medvis_desktop.explain.deconvnet import deconvnet
from medvis_desktop.explain.gradcam import grad_cam, grad_cam_with_outputs
from medvis_desktop.explain.graph import layers_for

METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        activations.METHOD,
        gradcam.METHOD,
        _deconvnet.METHOD,
    )
}

__all__ = [
    "METHODS",
    "ExplainError",
    "Method",
    "activation_maps",
    "dead_filters",
    "deconvnet",
    "grad_cam",
    "grad_cam_with_outputs",
    "target_layers",
]


def target_layers(model: keras.Model, method: str) -> list[str]:
    """Paths ("outer/inner") of the layers `method` can explain, in model order."""
    if method not in METHODS:
        raise ExplainError(f"Unknown method '{method}'; available: {', '.join(METHODS)}.")
    return layers_for(model, METHODS[method].can_target)
