"""A Conv3D on 1-4 input channels, forward pass and input gradient: Keras's own layer
(TensorFlow's 3D kernels) against the replay's (explain/conv_gradient.py folds a Conv3D on 1
or 2 channels into a 2D convolution over its depth neighbours). 16 filters of 3³, "same",
ReLU, a batch of 8 patches of 64³; interleaved rounds, median, in one run. On 3 and 4
channels the replay leaves the layer to TensorFlow: those rows show that the two are alike
there, and how much of a ratio is noise.

Run: .venv/bin/python benchmarks/conv3d_fold.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as the viewer runs
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from explain_speed import interleaved_medians

from medvis_desktop.explain import conv_gradient
from medvis_desktop.explain.graph import plain_call
from medvis_desktop.models.runtime import start_tensorflow


def value_and_gradient(run):
    """A compiled forward pass and input gradient of sum(run(x)²)."""

    @tf.function
    def both(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = run(x)
            total = tf.reduce_sum(y * y)
        return y, tape.gradient(total, x)

    return both


def compare(channels: int, rounds: int) -> str:
    """One line: Keras's layer and the replay's on `channels` input channels, side by side."""
    keras.utils.set_random_seed(channels)
    layer = keras.layers.Conv3D(16, 3, padding="same", activation="relu")
    layer.build((None, 64, 64, 64, channels))
    x = tf.constant(np.random.default_rng(channels).random((8, 64, 64, 64, channels), dtype=np.float32))
    own = value_and_gradient(layer)
    replayed = value_and_gradient(lambda t: plain_call(layer, (t,), {}, False))
    difference = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(own(x), replayed(x), strict=True))
    median = interleaved_medians(
        {"keras": lambda: own(x)[1].numpy(), "replay": lambda: replayed(x)[1].numpy()}, rounds
    )
    path = "folded into 2D" if conv_gradient.applies(layer) else "TensorFlow's"
    return (
        f"  {channels} channel(s): Keras {median['keras']:.3f} s, replay ({path}) "
        f"{median['replay']:.3f} s, {median['replay'] / median['keras']:.2f}× "
        f"(largest difference {difference:.1e})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    device = start_tensorflow(quiet=True)
    print(f"Conv3D(16, 3, same, relu), a batch of 8 patches of 64³, {device}, median of {args.rounds} rounds")
    for channels in (1, 2, 3, 4):
        print(compare(channels, args.rounds))


if __name__ == "__main__":
    main()
