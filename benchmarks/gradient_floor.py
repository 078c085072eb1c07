"""What an input gradient costs at least: medvis's `gradient` against a bare tf.GradientTape
input gradient of the same model and batch, each as a multiple of the compiled forward pass.

The backward pass through each convolution to its input (the data gradient) costs about as
much as the convolution itself, so an input gradient is about 2× a forward pass for a network
whose time is in its convolutions. Issue #10 asked for at most 1.5×; this shows where the floor
is, measured in one run, interleaved (median of ROUNDS): VGG16 (random seeded weights, nothing
downloaded), 224², batch 8, target class 1, the logit (no softmax).

Run: .venv/bin/python benchmarks/gradient_floor.py [--rounds 5]
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

from medvis_desktop.explain import gradient
from medvis_desktop.models.runtime import start_tensorflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    device = start_tensorflow(quiet=True)
    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(
        weights=None, input_shape=(224, 224, 3), classes=2, classifier_activation=None
    )
    batch = np.random.default_rng(0).random((8, 224, 224, 3), dtype=np.float32)
    constant = tf.constant(batch)
    forward = tf.function(lambda x: model(x, training=False))

    @tf.function
    def bare_gradient(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            score = model(x, training=False)[:, 1]
        return tape.gradient(score, x)

    median = interleaved_medians(
        {
            "forward pass": lambda: forward(constant).numpy(),
            "bare tf.GradientTape gradient": lambda: bare_gradient(constant).numpy(),
            "medvis gradient": lambda: gradient(model, batch, 1),
        },
        args.rounds,
    )
    print(f"VGG16 224²×3, batch 8, {device}, median of {args.rounds} rounds")
    for name, seconds in median.items():
        print(f"  {name:30s} {seconds:6.3f} s  {seconds / median['forward pass']:5.2f}× forward")


if __name__ == "__main__":
    main()
