"""Convolutions in the replay, computed the faster way where TensorFlow's CPU kernel is slow.

Every gradient method back-propagates through the model's convolutions to their inputs, and
on TensorFlow's CPU build (oneDNN off, as medvis runs it: models/runtime.py) that kernel
(Conv2DBackpropInput, Conv3DBackpropInputV2) is up to 2× slower in 2D and 3× in 3D than the
forward convolution of the same size: it was most of what an input gradient cost. For a
stride-1, undilated, ungrouped convolution the input gradient *is* a forward convolution: of
the output's gradient, with the kernel flipped along its spatial axes and its two channel
axes swapped, padded by (kernel − 1 − the forward padding) on each side. Same numbers up to
float rounding; benchmarks/gradient_floor.py measures the gain side by side.

A Conv3D on one or two input channels (a 3D model's first layer, on the scan, or a scan and a
mask) is slow both ways: TensorFlow's 3D kernel took 400 ms, and its gradient 300 ms, for a
64³ batch of 8 on 1 channel, most of a 3D CNN's forward pass. It runs as a 2D convolution over
(height, width) of the input's depth neighbours stacked as channels, which TensorFlow's 2D
kernels do in about 60% of that time, forward and back. The same sum of products in another
order: float rounding differs. The gain shrinks with the channels (benchmarks/conv3d_fold.py, a
layer's forward pass and input gradient: 0.67× TensorFlow's time on 1 channel, 0.83× on 2; a
fold of 4 channels measured 0.97×, within the noise), and the stacked input is the kernel's
depth times the input's size, so from 3 channels TensorFlow keeps the layer.

Convolutions on 3 to MIN_CHANNELS - 1 channels back-propagate faster with TensorFlow's own
kernel (8 leaves a margin), and are left to it. Only on the CPU (a GPU's cuDNN has its own tuned
kernels, not measured here), and only for Conv2D and Conv3D themselves: a subclass may
override `call` or `convolution_op`, which the replay's stand-in would bypass.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from medvis_desktop.models.runtime import device

MIN_CHANNELS = 8  # from this many input channels, the input gradient as a forward convolution
MAX_FOLDED_CHANNELS = 2  # a Conv3D on up to this many input channels is folded into 2D
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
        and (layer.kernel.shape[-2] >= MIN_CHANNELS or _folds(layer))
        and device().kind == "CPU"
    )


def convolution(layer: keras.layers.Layer, inputs: tf.Tensor, kernel: object) -> tf.Tensor:
    """`layer`'s convolution of `inputs` (no bias, no activation), with the input gradient
    as a forward convolution, and a 3D one on few channels folded into 2D. Only the input's
    gradient is defined (the kernel's is None in a compiled replay): the methods explain
    inputs and activations, never weights."""
    weights = tf.convert_to_tensor(kernel)
    inputs = tf.cast(inputs, weights.dtype)  # as Layer.__call__ would (a float16 layer before)
    padding = layer.padding.upper()
    if _folds(layer):
        return _depth_folded(inputs, weights, padding)
    return _convolved(inputs, weights, padding)


def _folds(layer: keras.layers.Layer) -> bool:
    return type(layer) is keras.layers.Conv3D and layer.kernel.shape[-2] <= MAX_FOLDED_CHANNELS


def _convolved(inputs: tf.Tensor, weights: tf.Tensor, padding: str) -> tf.Tensor:
    @tf.custom_gradient
    def convolve(x: tf.Tensor):
        def input_gradient(upstream: tf.Tensor) -> tf.Tensor:
            return _transposed(upstream, weights, padding)

        return tf.nn.convolution(x, weights, padding=padding), input_gradient

    return convolve(inputs)


def _depth_folded(inputs: tf.Tensor, kernel: tf.Tensor, padding: str) -> tf.Tensor:
    """A 3D convolution as a 2D one: plane d of the output convolves, over (height, width),
    the input planes d .. d + depth - 1 (after the depth padding) stacked as channels, with
    the kernel's depth folded into its input channels the same way. Autodiff sums the stacked
    copies' gradients back into each plane."""
    depth, height, width, channels, filters = kernel.shape
    before, after = _padding(depth, padding)
    padded = tf.pad(inputs, [[0, 0], [before, after], [0, 0], [0, 0], [0, 0]])
    planes = tf.shape(padded)[1] - (depth - 1)
    tf.debugging.assert_positive(planes, f"the input has fewer planes than the kernel's depth, {depth}")
    stacked = tf.concat([padded[:, offset : offset + planes] for offset in range(depth)], axis=-1)
    batch, _, rows, columns, _ = tf.unstack(tf.shape(stacked))
    folded = tf.reshape(tf.transpose(kernel, [1, 2, 0, 3, 4]), [height, width, depth * channels, filters])
    flat = tf.reshape(stacked, [batch * planes, rows, columns, depth * channels])
    convolved = _convolved(flat, folded, padding)
    _, out_rows, out_columns, _ = tf.unstack(tf.shape(convolved))
    return tf.reshape(convolved, [batch, planes, out_rows, out_columns, filters])


def _padding(size: int, padding: str) -> tuple[int, int]:
    """(before, after) that a forward pass pads a kernel side of `size` by, as TensorFlow does."""
    before = (size - 1) // 2 if padding == "SAME" else 0
    after = size - 1 - before if padding == "SAME" else 0
    return before, after


def _transposed(upstream: tf.Tensor, kernel: tf.Tensor, padding: str) -> tf.Tensor:
    """The input gradient of a stride-1 convolution: `upstream` convolved with the kernel
    flipped in space, its channel axes swapped, padded as the forward pass was not."""
    spatial = kernel.shape.rank - 2
    flipped = tf.transpose(tf.reverse(kernel, list(range(spatial))), [*range(spatial), spatial + 1, spatial])
    sizes = kernel.shape[:spatial]
    if padding == "SAME" and all(size % 2 for size in sizes):
        return tf.nn.convolution(upstream, flipped, padding="SAME")  # symmetric: the same padding back
    # The forward pass padded (before, after); the gradient needs (k-1-before, k-1-after).
    pads = [[0, 0]]
    for size in sizes:
        before, after = _padding(size, padding)
        pads.append([size - 1 - before, size - 1 - after])
    pads.append([0, 0])
    return tf.nn.convolution(tf.pad(upstream, pads), flipped, padding="VALID")
