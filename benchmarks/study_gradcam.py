"""The viewer's whole-study Grad-CAM against the model's own compiled forward pass (issue 14).

A 300 × 512 × 512 head CT (the CT demo's real study, 108 × 256 × 256, resampled by nearest
neighbour: the voxels are real HU, only finer) is explained with the CT demo model as the
window does it: `explain_volume(..., "grad_cam")` with the panel's default batch of 8 slices,
maps mapped back onto the study's grid and the scores taken. Against it: the same model's
compiled forward pass over the same slices, in the same batches, with the inputs prepared in
advance, and (to show where the rest goes) preparing those inputs alone. The contenders run
once to compile, then ROUNDS times interleaved, and the medians are compared, so that load from
other processes hits all of them alike. The issue's goal: at most 2× the forward pass.

Run: .venv/bin/python benchmarks/study_gradcam.py [--rounds 3] [--slices 300]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as the viewer runs
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from explain_speed import interleaved_medians

from medvis_desktop.demo.cases import load_case
from medvis_desktop.explain.runner import DEFAULT_BATCH, explain_volume
from medvis_desktop.imaging.volume import Volume
from medvis_desktop.models.card import read_card
from medvis_desktop.models.loading import load_model
from medvis_desktop.models.runtime import start_tensorflow

SIDE = 512


def large_study(slices: int) -> Volume:
    """The demo CT on a slices × 512 × 512 grid, each voxel its nearest real voxel."""
    volume, _, _, _ = load_case("ct")
    depth, rows, columns = volume.shape
    z = np.minimum(np.arange(slices) * depth // slices, depth - 1)
    y = np.arange(SIDE) * rows // SIDE
    x = np.arange(SIDE) * columns // SIDE
    voxels = np.ascontiguousarray(volume.voxels[z][:, y][:, :, x])
    spacing = (
        volume.spacing[0] * depth / slices,
        volume.spacing[1] * rows / SIDE,
        volume.spacing[2] * columns / SIDE,
    )
    return Volume(voxels=voxels, spacing=spacing, modality="CT")


def contenders(volume: Volume) -> dict[str, Callable[[], object]]:
    _, _, model_path, case = load_case("ct")
    model = load_model(model_path)
    card = read_card(model_path)
    chunks = [
        range(start, min(start + DEFAULT_BATCH, volume.shape[0]))
        for start in range(0, volume.shape[0], DEFAULT_BATCH)
    ]
    prepared = [tf.constant(card.slice_input(volume.voxels, chunk)) for chunk in chunks]
    forward = tf.function(lambda x: model(x, training=False))

    def forward_pass() -> None:
        for batch in prepared:
            forward(batch).numpy()

    def prepare_inputs() -> None:
        for chunk in chunks:
            card.slice_input(volume.voxels, chunk)

    def viewer_grad_cam() -> None:
        explain_volume(volume, model, "grad_cam", card=card, layer=case.layer, target=case.target)

    return {
        "forward pass, inputs prepared": forward_pass,
        "preparing the inputs alone": prepare_inputs,
        "explain_volume grad_cam (viewer)": viewer_grad_cam,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    device = start_tensorflow(quiet=True)
    volume = large_study(args.slices)
    print(f"study {'×'.join(map(str, volume.shape))} {volume.voxels.dtype}, CT demo model, device {device}")
    median = interleaved_medians(contenders(volume), args.rounds)
    for name, seconds in median.items():
        print(f"  {name:34s} {seconds:7.3f} s  (median of {args.rounds})")
    forward = median["forward pass, inputs prepared"]
    viewer = median["explain_volume grad_cam (viewer)"]
    print("ratios (goal in brackets)")
    print(f"  explain_volume grad_cam / forward  {viewer / forward:5.2f}  (≤ 2)")
    print(f"  preparing the inputs / forward     {median['preparing the inputs alone'] / forward:5.2f}")


if __name__ == "__main__":
    main()
