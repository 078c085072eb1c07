"""XGrad-CAM (Fu et al. 2020): Grad-CAM with each channel's gradient averaged in proportion to
the channel's activation rather than uniformly, the weights the paper derives from its two
axioms (sensitivity and conservation).
"""

from __future__ import annotations

import tensorflow as tf

from medvis_desktop.explain.gradcam import cam_method, spatial_axes

# Keeps a channel that is zero everywhere from dividing by zero (its weight is then 0).
EPSILON = 1e-7


def xgrad_cam_weigh(features: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
    axes = spatial_axes(features)
    total = tf.reduce_sum(features, axis=axes, keepdims=True)
    weights = tf.reduce_sum(grads * features, axis=axes, keepdims=True) / (total + EPSILON)
    return tf.reduce_sum(weights * features, axis=-1)


METHOD = cam_method(
    "xgrad_cam",
    "XGrad-CAM",
    xgrad_cam_weigh,
    """XGrad-CAM of class `target` at `layer`: (N, *spatial), not normalised.

    w_c = Σ_space(g_c·A_c) / (Σ_space A_c + 1e-7), map = ReLU(Σ_c w_c A_c); g is the gradient
    of the target's logit (before the softmax). The epsilon is added as is, whatever the sign
    of Σ_space A_c. Arguments as for gradcam.grad_cam.
    """,
)
xgrad_cam = METHOD.run
