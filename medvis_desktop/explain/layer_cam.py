"""LayerCAM (Jiang et al. 2021): the positive gradient times the activation, position by
position, summed over channels. Unlike Grad-CAM it keeps fine detail on shallow layers, where
a channel's gradient changes sign across the image and its spatial mean says little.
"""

from __future__ import annotations

import tensorflow as tf

from medvis_desktop.explain.gradcam import cam_method


def layer_cam_weigh(features: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.nn.relu(grads) * features, axis=-1)


METHOD = cam_method(
    "layer_cam",
    "LayerCAM",
    layer_cam_weigh,
    """LayerCAM of class `target` at `layer`: ReLU(Σ_c ReLU(g_c) ⊙ A_c), (N, *spatial), not
    normalised; g is the gradient of the target's logit (before the softmax). The paper's
    scaling and fusion of several layers' maps are not done here. Arguments as for
    gradcam.grad_cam.""",
)
layer_cam = METHOD.run
