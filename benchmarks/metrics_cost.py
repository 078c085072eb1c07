"""The cost of each quality metric as a multiple of one forward pass, on the demo models.

Models: the demo models of resources/models/ with their cards, loaded with models.load_model,
on inputs their cards make from the shipped demo studies (medvis_desktop.demo.studies):
  ct    ct_head_lesion_2d.keras on CT slice 58 (128×128×1), Grad-CAM at relu5
  ct3d  ct_head_lesion_3d.keras on the 16×48×48 CT patch round slice 58's lesion, at relu4
  mri   mri_lesion_seg_2d.keras (U-Net) on MRI slice 101, Grad-CAM at relu4; its score is
        the lesion output summed over the region the model predicts (mask=, Seg-Grad-CAM)
One input (a batch of one), target 0, the metrics' defaults: deletion and insertion with 10
steps, mu_fidelity with 128 samples, pointing_game and energy_inside of the Grad-CAM map
against the study's true lesion mask brought to the model input's grid, and the
randomisation cascade of grad_cam. The map measured is the Grad-CAM map of that input.

Every metric is timed against the model's compiled forward pass (tf.function, batch of one,
outputs fetched) in the same process and run: a warm-up call of each (compiling), then
--rounds rounds in which each contender runs once in turn, with one forward pass timed just
before it (interleaved, so that load from other processes on this shared machine falls on
the metric and its yardstick alike); medians of the rounds.

Printed per model and metric: median seconds; × forward (median / forward pass of one); the
count of forward passes the definition implies (deletion/insertion: steps + 1, mu_fidelity:
samples + 1, pointing/energy: 0, the cascade: maps × grad_cam's measured multiple, one map per
re-initialised layer + 1); measured / expected, flagged "!" above 1.5; and × batches: the
metric's time over the plain forward passes of as many images in the batches the metric
makes (32 per pass: 11 as one batch, 129 as 4 × 32 + 1), i.e. the overhead beyond the passes.

Run: nice -n 5 .venv/bin/python benchmarks/metrics_cost.py [--rounds 7] [--models ct,ct3d,mri]
     [--quick]   (2 rounds: a smoke run, under 2 minutes; the full run about 3.5 minutes)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from medvis_desktop import explain, metrics
from medvis_desktop.arrays import resize_linear
from medvis_desktop.demo import cases, studies
from medvis_desktop.explain.runner import predicted_region
from medvis_desktop.models import load_model
from medvis_desktop.models.card import ModelCard, crop_or_pad, read_card
from medvis_desktop.models.runtime import start_tensorflow

STEPS = 10  # deletion, insertion
SAMPLES = 128  # mu_fidelity
BATCH_SIZE = 32  # the metrics' images per forward pass (metrics.base.BATCH_SIZE)
TARGET = 0
FLAG = 1.5  # measured / expected above this is flagged
METRICS = ("grad_cam", "deletion", "insertion", "mu_fidelity", "pointing_game", "energy_inside", "cascade")

Run = Callable[[], object]


@dataclass
class Case:
    """One demo model with the input, map and reference mask the metrics get."""

    name: str
    title: str
    model: keras.Model
    card: ModelCard
    inputs: np.ndarray  # (1, *spatial, C)
    layer: str
    scored: dict[str, object]  # output= and mask= as the metrics and the method take them
    reference: np.ndarray  # bool (1, *spatial), the true lesion on the model input's grid
    spacing: tuple[float, ...]  # mm per spatial axis of the model input


def load_case(name: str) -> Case:
    demo = cases.CASES[name]
    model = load_model(demo.model_path)
    card = read_card(demo.model_path)
    if card is None:
        raise SystemExit(f"{demo.model_path} has no model card beside it")
    volume, lesions = studies.read_study(demo.study)
    z = demo.first_slice
    if card.input_mode == "3d":
        # The patch centred on the lesion's pixels in slice z, inside the volume.
        ys, xs = np.nonzero(lesions[z])
        centre = (z, int(ys.mean()), int(xs.mean()))
        corner = [
            int(np.clip(c - s // 2, 0, n - s))
            for c, s, n in zip(centre, card.spatial_shape, volume.shape, strict=True)
        ]
        inputs = card.patch_input(volume.voxels, corner)
        region = tuple(slice(c, c + s) for c, s in zip(corner, card.spatial_shape, strict=True))
        reference = lesions[region][None]
        spacing = tuple(volume.spacing)
        where = f"patch at {tuple(corner)}"
    else:
        inputs = card.slice_input(volume.voxels, [z])
        study_yx, model_yx = volume.shape[1:], card.spatial_shape
        if card.resize == "resize":
            reference = resize_linear(lesions[z][None].astype(np.float32), model_yx, axes=(1, 2)) >= 0.5
            spacing = tuple(s * n / m for s, n, m in zip(volume.spacing[1:], study_yx, model_yx, strict=True))
        else:
            reference = crop_or_pad(lesions[z][None], model_yx, (1, 2)).astype(bool)
            spacing = tuple(volume.spacing[1:])
        where = f"slice {z}"
    scored: dict[str, object] = {"output": card.output}
    if card.task == "segmentation":  # the lesion's score over the region the model predicts
        outputs = np.asarray(model(tf.constant(inputs), training=False))
        scored["mask"] = predicted_region(outputs, TARGET)
    shape = "×".join(map(str, inputs.shape[1:]))
    title = f"{name}: {demo.model_file}, {where}, input {shape}, layer {demo.layer}"
    return Case(name, title, model, card, inputs, demo.layer or "", scored, reference, spacing)


def contenders(case: Case, maps: np.ndarray) -> dict[str, Run]:
    model, x, target, scored = case.model, case.inputs, TARGET, case.scored
    return {
        "grad_cam": lambda: explain.grad_cam(model, x, case.layer, target, **scored),
        "deletion": lambda: metrics.deletion(model, x, maps, target, steps=STEPS, **scored),
        "insertion": lambda: metrics.insertion(model, x, maps, target, steps=STEPS, **scored),
        "mu_fidelity": lambda: metrics.mu_fidelity(model, x, maps, target, samples=SAMPLES, **scored),
        "pointing_game": lambda: metrics.pointing_game(maps, case.reference, case.spacing),
        "energy_inside": lambda: metrics.energy_inside(maps, case.reference),
        "cascade": lambda: metrics.randomisation_cascade(
            model, x, "grad_cam", target, layer=case.layer, params=scored
        ),
    }


def batches(images: int) -> list[int]:
    """The batch sizes of the forward passes a metric makes for `images` perturbed copies."""
    return [min(BATCH_SIZE, images - first) for first in range(0, images, BATCH_SIZE)]


def timed(run: Run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def bench(case: Case, rounds: int) -> dict[str, object]:
    """Median seconds of every contender and of the forward passes timed beside them; the
    number of maps the cascade made."""
    forward = tf.function(lambda x: case.model(x, training=False))
    sizes = sorted({1, *batches(STEPS + 1), *batches(SAMPLES + 1)})
    images = {size: tf.constant(np.repeat(case.inputs, size, axis=0)) for size in sizes}
    passes = {size: (lambda t=images[size]: forward(t).numpy()) for size in sizes}
    maps = explain.grad_cam(case.model, case.inputs, case.layer, TARGET, **case.scored)
    runs = contenders(case, maps)
    for run in passes.values():
        run()
    cascade_maps = 0
    for name, run in runs.items():  # warm-up: compiles the metrics' forward pass
        result = run()
        if name == "cascade":
            cascade_maps = len(result.maps)
    times: dict[str, list[float]] = {name: [] for name in [*runs, *(f"forward@{s}" for s in sizes)]}
    for index in range(rounds):
        started_round = time.perf_counter()
        for size, run in passes.items():
            if size != 1:
                times[f"forward@{size}"].append(timed(run))
        for name, run in runs.items():
            times["forward@1"].append(timed(passes[1]))  # the yardstick, right beside the metric
            times[name].append(timed(run))
        took = time.perf_counter() - started_round
        print(f"{case.name}: round {index + 1}/{rounds} in {took:.1f} s", flush=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {"median": median, "cascade_maps": cascade_maps, "samples": len(times["forward@1"])}


def expected(metric: str, gradcam_multiple: float, cascade_maps: int) -> tuple[float, str]:
    """Forward passes per the metric's definition, and how the count is made."""
    if metric == "grad_cam":
        return 1.0, "the method: pass + grad"
    if metric in ("deletion", "insertion"):
        return STEPS + 1.0, f"steps + 1 = {STEPS + 1}"
    if metric == "mu_fidelity":
        return SAMPLES + 1.0, f"samples + 1 = {SAMPLES + 1}"
    if metric == "cascade":
        count = cascade_maps * gradcam_multiple
        return count, f"{cascade_maps} maps × grad_cam {gradcam_multiple:.2f}"
    return 0.0, "no model (numpy)"


def same_batches(metric: str, median: dict[str, float]) -> float | None:
    """The plain forward passes over the images the metric scores, in its batches (seconds)."""
    images = {"deletion": STEPS + 1, "insertion": STEPS + 1, "mu_fidelity": SAMPLES + 1}.get(metric)
    if images is None:
        return None
    return sum(median[f"forward@{size}"] for size in batches(images))


def describe(case: Case, result: dict[str, object]) -> None:
    median: dict[str, float] = result["median"]  # type: ignore[assignment]
    passes = ", ".join(
        f"{k.split('@')[1]}: {v * 1000:.1f} ms" for k, v in median.items() if k.startswith("forward@")
    )
    print(f"{case.title}\n  forward pass by batch size, median ({result['samples']} of one): {passes}")


def table(results: list[tuple[Case, dict[str, object]]]) -> None:
    header = (
        f"| {'metric':<14}| {'model':<5}| {'seconds':>8} | {'× forward':>9} | {'expected':>8} "
        f"| {'expected from':<24}| {'measured/expected':>17} | {'× batches':>9} |"
    )
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for case, result in results:
        median: dict[str, float] = result["median"]  # type: ignore[assignment]
        forward = median["forward@1"]
        gradcam = median["grad_cam"] / forward
        for metric in METRICS:
            seconds = median[metric]
            multiple = seconds / forward
            count, how = expected(metric, gradcam, int(result["cascade_maps"]))  # type: ignore[arg-type]
            verdict = "—"
            if count > 0:  # grad_cam is the cascade's unit, not a metric: never flagged
                flag = multiple / count > FLAG and metric != "grad_cam"
                verdict = f"{multiple / count:.2f}{' !' if flag else '  '}"
            ideal = same_batches(metric, median)
            overhead = "—" if ideal is None else f"{seconds / ideal:.2f}"
            print(
                f"| {metric:<14}| {case.name:<5}| {seconds:8.4f} | {multiple:9.2f} | {count:8.1f} "
                f"| {how:<24}| {verdict:>17} | {overhead:>9} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--models", default=",".join(("ct", "ct3d", "mri")), help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="2 rounds: a smoke run")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in names if name not in ("ct", "ct3d", "mri")]
    if unknown or rounds < 1:
        parser.error(f"unknown models: {', '.join(unknown)}" if unknown else "--rounds must be at least 1")
    device = start_tensorflow(quiet=True)
    keras.utils.set_random_seed(0)
    results = []
    for name in names:
        case = load_case(name)
        results.append((case, bench(case, rounds)))
    print(
        f"\ntensorflow {tf.__version__}, keras {keras.__version__}, {device}; median of {rounds} rounds; "
        f"target {TARGET}; deletion/insertion steps={STEPS}, mu_fidelity samples={SAMPLES}, "
        f"{BATCH_SIZE} images per pass"
    )
    for case, result in results:
        describe(case, result)
    table(results)
    print(
        "× forward = median seconds / the median compiled forward pass of one input, timed beside "
        "each metric in the same rounds.\nexpected = forward passes by the metric's definition; "
        f"'!' marks measured/expected above {FLAG}.\n× batches = median seconds / the plain compiled "
        "forward passes of the same images in the metric's batches of at most 32 (1.00: no overhead)."
    )


if __name__ == "__main__":
    main()
