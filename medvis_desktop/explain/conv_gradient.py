"""A convolution's input gradient computed as a forward convolution, where that is faster.

Every gradient method back-propagates through the model's convolutions to their inputs, and
on TensorFlow's CPU build (oneDNN off, as medvis runs it: models/runtime.py) that kernel
(Conv2DBackpropInput, Conv3DBackpropInputV2) is up to 2× slower in 2D and 3× in 3D than the
forward convolution of the same size: it was most of what an input gradient cost. For a
stride-1, undilated, ungrouped convolution the input gradient *is* a forward convolution: of
the output's gradient, with the kernel flipped along its spatial axes and its two channel
axes swapped, padded by (kernel − 1 − the forward padding) on each side. Same numbers up to
float rounding; benchmarks/gradient_floor.py measures the gain side by side.

Only on the CPU (a GPU's cuDNN has its own tuned kernels, not measured here), only from
MIN_CHANNELS input channels (a first layer on 1–4 channels back-propagated faster with
TensorFlow's own kernel; 8 leaves a margin), and only for Conv2D and Conv3D themselves: a
subclass may override `call` or `convolution_op`, which the replay's stand-in would bypass.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from medvis_desktop.models.runtime import device

MIN_CHANNELS = 8
CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.Conv3D)  # Conv1D has its own call, without convolution_op


def applies(layer: keras.layers.Layer) -> bool:
    """Whether `layer` runs its convolution through `convolution` in a replay."""
    return (
        type(layer) in CONVOLUTIONS
        and layer.padding in ("valid", "same")
        and set(layer.strides) == {1}
        and set(layer.dilation_rate) == {1}
        and layer.groups == 1
        and layer.data_format == "channels_last"
        and layer.compute_dtype == "float32"
        and getattr(layer, "quantization_mode", None) is None
        and layer.kernel.shape[-2] >= MIN_CHANNELS
        and device().kind == "CPU"
    )


def convolution(layer: keras.layers.Layer, inputs: tf.Tensor, kernel: object) -> tf.Tensor:
    """`layer`'s convolution of `inputs` (no bias, no activation), with the input gradient
    as a forward convolution. Only the input's gradient is defined (the kernel's is None in a
    compiled replay): the methods explain inputs and activations, never weights."""
    weights = tf.convert_to_tensor(kernel)
    inputs = tf.cast(inputs, weights.dtype)  # as Layer.__call__ would (a float16 layer before)
    padding = layer.padding.upper()

    @tf.custom_gradient
    def convolve(x: tf.Tensor):
        def input_gradient(upstream: tf.Tensor) -> tf.Tensor:
            return _transposed(upstream, weights, padding)

        return tf.nn.convolution(x, weights, padding=padding), input_gradient

    return convolve(inputs)


def _transposed(upstream: tf.Tensor, kernel: tf.Tensor, padding: str) -> tf.Tensor:
    """The input gradient of a stride-1 convolution: `upstream` convolved with the kernel
    flipped in space, its channel axes swapped, padded as the forward pass was not."""
    spatial = kernel.shape.rank - 2
    flipped = tf.transpose(tf.reverse(kernel, list(range(spatial))), [*range(spatial), spatial + 1, spatial])
    sizes = kernel.shape[:spatial]
    if padding == "SAME" and all(size % 2 for size in sizes):
        return tf.nn.convolution(upstream, flipped, padding="SAME")  # symmetric: the same padding back
    # The forward pass padded (before, after) = ((k-1)//2, k-1-(k-1)//2) for SAME and (0, 0) for
    # VALID; the gradient needs (k-1-before, k-1-after).
    pads = [[0, 0]]
    for size in sizes:
        before = (size - 1) // 2 if padding == "SAME" else 0
        after = size - 1 - before if padding == "SAME" else 0
        pads.append([size - 1 - before, size - 1 - after])
    pads.append([0, 0])
    return tf.nn.convolution(tf.pad(upstream, pads), flipped, padding="VALID")
