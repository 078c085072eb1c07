"""Grad-CAM++ (Chattopadhay et al. 2018): Grad-CAM with pixel-wise weights on the gradients, so
several instances of a class in one image each show, where Grad-CAM's mean lets the largest win.
"""

from __future__ import annotations

import tensorflow as tf

from medvis_desktop.explain.gradcam import cam_method, spatial_axes


def grad_cam_plus_plus_weigh(features: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
    axes = spatial_axes(features)
    squared = tf.square(grads)
    total = tf.reduce_sum(features, axis=axes, keepdims=True)
    alpha = tf.math.divide_no_nan(squared, 2 * squared + total * squared * grads)  # 0 where g = 0 too
    weights = tf.reduce_sum(alpha * tf.nn.relu(grads), axis=axes, keepdims=True)
    return tf.reduce_sum(weights * features, axis=-1)


METHOD = cam_method(
    "grad_cam_plus_plus",
    "Grad-CAM++",
    grad_cam_plus_plus_weigh,
    """Grad-CAM++ of class `target` at `layer`: (N, *spatial), not normalised.

    The paper's closed form for an exponential score exp(S), S the target's logit (before the
    softmax), with g = dS/dA: alpha = g² / (2g² + Σ_space(A)·g³), set to 0 where g = 0 or the
    denominator is 0, with no other epsilon; w_c = Σ_space alpha·ReLU(g); map = ReLU(Σ_c w_c A_c).
    The paper's factor exp(S) on the weights is left out: it scales each sample's map by a
    constant. Arguments as for gradcam.grad_cam.
    """,
)
grad_cam_plus_plus = METHOD.run
