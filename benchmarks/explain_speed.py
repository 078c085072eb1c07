"""Speed of the methods against the model's own compiled passes and tf-keras-vis, side by side.

VGG16-shaped network (keras.applications.VGG16, random weights: nothing is downloaded), a batch
of 8 at 224×224×3, on whatever device TensorFlow uses. Each contender is run once to compile,
then ROUNDS times interleaved with the others, and the median is taken, so that load from other
processes on a shared machine hits all of them alike.

Run: make bench   (or .venv/bin/python benchmarks/explain_speed.py [--size 224] [--rounds 5])
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from medvis_desktop import explain
from medvis_desktop.explain.runner import explain_volume
from medvis_desktop.imaging.volume import Volume
from medvis_desktop.models.card import Intensity, ModelCard
from medvis_desktop.models.runtime import start_tensorflow

LAYER = "block5_conv3"
TARGET = 1


def contenders(model: keras.Model, batch: np.ndarray) -> dict[str, Callable[[], object]]:
    x = tf.constant(batch)
    forward = tf.function(lambda x: model(x, training=False))
    features = keras.Model(model.inputs, model.get_layer(LAYER).output)

    @tf.function
    def gradient_pass(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)
            activation = features(x, training=False)
        return tape.gradient(activation, x)

    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    tf_keras_vis = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
    score = CategoricalScore([TARGET] * len(batch))
    # The same batch as a study of grey slices, as the viewer explains it (maps and scores).
    volume = Volume(voxels=batch[..., 0] * 1000.0)
    card = ModelCard(
        input_mode="2d", input_shape=batch.shape[1:], intensity=Intensity(kind="scale", scale=1e-3)
    )
    return {
        "forward (compiled)": lambda: forward(x).numpy(),
        "gradient pass (compiled)": lambda: gradient_pass(x).numpy(),
        "activation_maps": lambda: explain.activation_maps(model, batch, LAYER),
        "grad_cam": lambda: explain.grad_cam(model, batch, LAYER, TARGET),
        "explain_volume grad_cam": lambda: explain_volume(
            volume, model, "grad_cam", card=card, layer=LAYER, target=TARGET, batch_size=len(batch)
        ),
        "deconvnet": lambda: explain.deconvnet(model, batch, LAYER),
        "tf-keras-vis Gradcam": lambda: tf_keras_vis(score, batch, penultimate_layer=LAYER),
    }


def interleaved_medians(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Each run once to compile and warm up, then `rounds` times in turn with the others: the
    median seconds of each, so that load from other processes hits all of them alike."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    device = start_tensorflow()
    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None, input_shape=(args.size, args.size, 3), classes=2)
    batch = np.random.default_rng(0).random((args.batch, args.size, args.size, 3), dtype=np.float32)
    median = interleaved_medians(contenders(model, batch), args.rounds)
    print(f"VGG16 {args.size}×{args.size}×3, batch {args.batch}, {device}, median of {args.rounds} rounds")
    for name, seconds in median.items():
        print(f"  {name:<26} {seconds * 1000:9.1f} ms")
    forward, gradient = median["forward (compiled)"], median["gradient pass (compiled)"]
    rival = median["tf-keras-vis Gradcam"]
    print("ratios (goal in brackets)")
    print(f"  grad_cam / forward              {median['grad_cam'] / forward:5.2f}  (≤ 1.3)")
    runner = median["explain_volume grad_cam"]
    print(f"  explain_volume grad_cam / fwd   {runner / forward:5.2f}  (≤ 1.4: maps and scores, one pass)")
    print(f"  tf-keras-vis / grad_cam         {rival / median['grad_cam']:5.2f}  (≥ 2.5)")
    print(f"  deconvnet / gradient pass       {median['deconvnet'] / gradient:5.2f}  (≤ 2.0)")
    print(f"  activation_maps / forward       {median['activation_maps'] / forward:5.2f}  (≤ 1.1)")


if __name__ == "__main__":
    main()
