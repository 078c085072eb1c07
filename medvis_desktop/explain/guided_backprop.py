"""Guided backpropagation (Springenberg et al. 2015) and Guided Grad-CAM (Selvaraju et al. 2017).

Guided backprop is the gradient of the target's logit with every ReLU's backward pass
replaced by the guided rule: the signal coming back passes where the ReLU's forward input
was positive (the gradient) and where it is itself positive (the deconvnet), so only
evidence for the class flows down. ReLU layers, Activation("relu") layers and a relu fused
into a layer's `activation` are all swapped while replaying the graph (graph.py), never in
the user's model; every other layer, max pooling included (its forward switches), passes
its ordinary derivative.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from medvis_desktop.explain.base import Method, check_inputs, maps_only
from medvis_desktop.explain.gradcam import grad_cam_with_outputs
from medvis_desktop.explain.graph import call_with_activation, plain_call
from medvis_desktop.explain.scores import input_gradients, score_for
from medvis_desktop.models.layers import has_spatial_output, layer_activation


@tf.custom_gradient
def guided_relu(x: tf.Tensor) -> tuple[tf.Tensor, Callable]:
    """ReLU forward; backward, upstream × (x > 0) × (upstream > 0).

    Written as ReLU's own gradient kernel on the output (positive exactly where x is) and the
    rectified upstream: the same numbers as a select on x > 0 and upstream > 0, and side by side
    on the 3D CNN of benchmarks/explain_methods.py the whole guided backprop took 1.44× the
    forward pass instead of 1.57–1.62×."""
    rectified = tf.nn.relu(x)

    def backward(upstream: tf.Tensor) -> tf.Tensor:
        return tf.raw_ops.ReluGrad(gradients=tf.nn.relu(upstream), features=rectified)

    return rectified, backward


def guided_backprop_with_outputs(
    model: keras.Model,
    inputs: object,
    target: int | Sequence[int],
    *,
    output: int | str | None = None,
    mask: object = None,
) -> tuple[np.ndarray, np.ndarray]:
    """guided_backprop, and the model's outputs (softmax/sigmoid applied) from the same pass:
    the guided ReLUs only change the backward pass."""
    batch = check_inputs(model, inputs)
    score = score_for(model, len(batch), target, output, mask)
    return input_gradients(model, batch, score, call=_guided_call, key="guided_backprop")


def guided_grad_cam_with_outputs(
    model: keras.Model,
    inputs: object,
    layer: str,
    target: int | Sequence[int],
    *,
    output: int | str | None = None,
    mask: object = None,
) -> tuple[np.ndarray, np.ndarray]:
    """guided_grad_cam, and the model's outputs (softmax/sigmoid applied) from Grad-CAM's pass."""
    batch = check_inputs(model, inputs)
    cam, outputs = grad_cam_with_outputs(model, batch, layer, target, upsample=True, output=output, mask=mask)
    guided, _ = guided_backprop_with_outputs(model, batch, target, output=output, mask=mask)
    return guided * cam[..., None], outputs


guided_backprop = maps_only(
    guided_backprop_with_outputs,
    "guided_backprop",
    """The guided gradient of the target's logit (before the output softmax/sigmoid) w.r.t.
    the input, shaped like `inputs`, not normalised. Target, output, mask as in `gradient`.""",
)
guided_grad_cam = maps_only(
    guided_grad_cam_with_outputs,
    "guided_grad_cam",
    """Guided backprop × the Grad-CAM map of `layer` upsampled to the input grid (linear
    interpolation, as grad_cam(upsample=True)), the same map for every input channel:
    the pixel detail of guided backprop, restricted to where the class's evidence lies.""",
)


def _guided_call(layer: keras.layers.Layer, args: tuple, kwargs: dict, at_output: bool):
    """ReLUs, as layers or fused activations, run as guided ReLUs; every other layer as it is."""
    if layer_activation(layer) == "relu":
        return call_with_activation(layer, guided_relu, args, kwargs)
    return plain_call(layer, args, kwargs, at_output)


GUIDED_BACKPROP = Method(
    name="guided_backprop",
    label="Guided backprop",
    run=guided_backprop,
    can_target=has_spatial_output,
    kind="attribution",
    uses_layer=False,
    run_with_outputs=guided_backprop_with_outputs,
)
GUIDED_GRAD_CAM = Method(
    name="guided_grad_cam",
    label="Guided Grad-CAM",
    run=guided_grad_cam,
    can_target=has_spatial_output,
    kind="attribution",
    run_with_outputs=guided_grad_cam_with_outputs,
)
METHODS = (GUIDED_BACKPROP, GUIDED_GRAD_CAM)
