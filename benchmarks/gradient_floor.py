"""What an input gradient costs at least: medvis's `gradient` against a bare tf.GradientTape
input gradient of the same model and batch, each as a multiple of the compiled forward pass.

An input gradient is a forward pass and a backward one, and the backward pass through each
convolution to its input (the data gradient) does as many multiplications as the convolution:
about 2× the forward pass for a network whose time is in its convolutions. Issue #10 asked for
at most 1.5×; this shows where the floor is, measured in one run, interleaved (median of
ROUNDS), on VGG16 (random seeded weights, nothing downloaded), 224², batch 8, class 1, the logit
(no softmax), and on the 3D CNN of explain_methods.py, 64³, batch 8, class 1 (its softmax output
for the bare tape: the same cost). On this CPU build TensorFlow's data-gradient kernels and its
3D max pooling gradient are slower than the forward operations, so medvis computes the first as
a forward convolution (explain/conv_gradient.py) and the second by one comparison
(explain/pool_gradient.py), and comes in below the bare tape.

Run: .venv/bin/python benchmarks/gradient_floor.py [--rounds 5] [--models vgg16,cnn3d]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as the viewer runs
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from explain_methods import cnn3d
from explain_speed import interleaved_medians

from medvis_desktop.explain import gradient
from medvis_desktop.models.runtime import start_tensorflow


def floors(model: keras.Model, batch: np.ndarray, rounds: int) -> dict[str, float]:
    """Median seconds of the forward pass, a bare tape's input gradient and medvis's."""
    constant = tf.constant(batch)
    forward = tf.function(lambda x: model(x, training=False))

    @tf.function
    def bare_gradient(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            score = model(x, training=False)[:, 1]
        return tape.gradient(score, x)

    return interleaved_medians(
        {
            "forward pass": lambda: forward(constant).numpy(),
            "bare tf.GradientTape gradient": lambda: bare_gradient(constant).numpy(),
            "medvis gradient": lambda: gradient(model, batch, 1),
        },
        rounds,
    )


def vgg16() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.applications.VGG16(
        weights=None, input_shape=(224, 224, 3), classes=2, classifier_activation=None
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", default="vgg16,cnn3d", help="comma-separated: vgg16, cnn3d")
    args = parser.parse_args()
    device = start_tensorflow(quiet=True)
    rng = np.random.default_rng(0)
    cases = {
        "vgg16": ("VGG16 224²×3", vgg16, (8, 224, 224, 3)),
        "cnn3d": ("3D CNN 64³×1", lambda: cnn3d(64), (8, 64, 64, 64, 1)),
    }
    for name in args.models.split(","):
        title, make, shape = cases[name]
        model, batch = make(), rng.random(shape, dtype=np.float32)
        median = floors(model, batch, args.rounds)
        print(f"{title}, batch 8, {device}, median of {args.rounds} rounds")
        for name, seconds in median.items():
            print(f"  {name:30s} {seconds:6.3f} s  {seconds / median['forward pass']:5.2f}× forward")


if __name__ == "__main__":
    main()
