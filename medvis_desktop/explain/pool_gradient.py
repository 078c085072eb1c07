"""3D max pooling's gradient by one comparison, where TensorFlow's kernel is slow.

On TensorFlow's CPU build MaxPool3DGrad takes about 14× the pooling itself (1,060 ms against
75 ms for a batch of eight 64³×16 maps): more than the whole forward pass of a small 3D CNN,
and most of what an input gradient of one cost. For windows that tile the input (pool size =
strides, every side a multiple of the pool) the gradient is the upstream value sent to every
position of its window that equals the window's maximum, all tied positions alike, as
TensorFlow's 3D kernel does (its 1D and 2D kernels send a tie to the first maximum only, and
cost far less: they are left alone). That is one comparison of the input with its pooled
maximum, broadcast back over the window: about 1.5× the pooling.

One difference: TensorFlow's kernel also sends the gradient to a position a few millionths
below the maximum (66 of 33 million in the batch above); this sends it to exact ties only,
the subgradient of the maximum.

Only on the CPU (a GPU's cuDNN pooling gradient is not measured here); overlapping or padded
windows, and sides unknown when the replay is traced, keep TensorFlow's gradient.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from medvis_desktop.models.runtime import device


def applies(layer: keras.layers.Layer) -> bool:
    """Whether `layer` is a max pooling whose gradient `max_pool` computes (input permitting)."""
    return (
        type(layer) is keras.layers.MaxPooling3D  # a subclass may pool otherwise
        and layer.data_format == "channels_last"
        and tuple(layer.pool_size) == tuple(layer.strides)
        and layer.compute_dtype == "float32"
        and device().kind == "CPU"
    )


def max_pool(layer: keras.layers.Layer, inputs: tf.Tensor) -> tf.Tensor:
    """`layer`'s output, with the gradient by comparison when the windows tile `inputs`."""
    pool = tuple(layer.pool_size)
    inputs = tf.cast(inputs, layer.compute_dtype)  # as Layer.__call__ would
    sides = tuple(inputs.shape[1:-1])
    if None in sides or any(side % size for side, size in zip(sides, pool, strict=True)):
        return layer(inputs)

    @tf.custom_gradient
    def pooled(x: tf.Tensor):
        maxima = tf.nn.max_pool3d(x, pool, pool, "VALID")

        def input_gradient(upstream: tf.Tensor) -> tf.Tensor:
            return _to_maxima(x, maxima, upstream, pool)

        return maxima, input_gradient

    return pooled(inputs)


def _to_maxima(x: tf.Tensor, maxima: tf.Tensor, upstream: tf.Tensor, pool: tuple[int, ...]) -> tf.Tensor:
    """`upstream` at every position of `x` equal to its window's maximum, 0 elsewhere.

    x (N, D, H, W, C) is seen as (N·D', pd, H', ph, W·C) without a copy; the maxima and the
    upstream, repeated pw times along W, as (N·D', 1, H', 1, W·C): a broadcast of rank 5,
    the highest TensorFlow's comparison takes."""
    _, _, height, width, channels = x.shape
    pd, ph, pw = pool
    windows = [-1, pd, height // ph, ph, width * channels]
    per_window = [-1, 1, height // ph, 1, width * channels]

    def spread(values: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.repeat(values, pw, axis=3), per_window)

    at_maximum = tf.equal(tf.reshape(x, windows), spread(maxima))
    routed = tf.where(at_maximum, spread(upstream), tf.zeros((), upstream.dtype))
    return tf.reshape(routed, tf.shape(x))
