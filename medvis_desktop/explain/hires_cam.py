"""HiResCAM (Draelos & Carin 2020): the gradient times the activation, position by position,
summed over channels. Grad-CAM averages the gradient over space first, so its map can show
places the model did not use; HiResCAM's map is exactly what the score sees through the
layer when the rest of the model is linear (e.g. global average pooling and a dense layer,
where the two methods agree).
"""

from __future__ import annotations

import tensorflow as tf

from medvis_desktop.explain.gradcam import cam_method


def hires_cam_weigh(features: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(grads * features, axis=-1)


METHOD = cam_method(
    "hires_cam",
    "HiResCAM",
    hires_cam_weigh,
    """HiResCAM of class `target` at `layer`: ReLU(Σ_c g_c ⊙ A_c), (N, *spatial), not
    normalised; g is the gradient of the target's logit (before the softmax). Arguments as
    for gradcam.grad_cam.""",
)
hires_cam = METHOD.run
