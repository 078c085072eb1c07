"""The README's per-demo tables of faithfulness: every method that gives evidence for a class,
on the held-out slices of each demo case that hold a lesion.

    nice -n 5 .venv/bin/python tools/quality_table.py [--demos ct,mri,mammo] [--methods grad_cam,...]
        [--max-slices 17] [--quick] [--out FILE]

For each demo case (medvis --demo NAME) the slices are those of the block the model never saw
(resources/models/evaluation.json) where the true mask covers at least cases.MIN_LESION_PIXELS
pixels, evenly thinned to --max-slices. Each method is measured on each slice with the engine's
own per-slice functions (evaluate.SliceRun, measure_slice: what `medvis evaluate` and the Quality
panel run): deletion and insertion AUC and MuFidelity on the slice's model input, and, with the
map brought back onto the study's slice, the pointing game (5 mm) and the energy inside the true
lesion (evaluate.reference_scores). Seconds: the method alone on one slice, after one untimed
run of it that builds its compiled functions. Occlusion's window is set to the lesions' size on
the model input (what a user would choose), half of it the stride; every other method keeps its
defaults; the settings are printed under each table.
Runtime: ct, mri and mammo with the default --max-slices (every held-out lesion slice) took
12.5 min (749 s) on the project's 2-core machine at a load average of 2-3 from other jobs;
mri's 17 slices (545 s) take most of it. --quick (one slice each) takes 1-2 min per demo case.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medvis_desktop.cli import DEMOS
from medvis_desktop.demo import cases
from medvis_desktop.errors import MedvisError
from medvis_desktop.evaluate import SliceRun, check_evidence, measure_slice, reference_scores, scored_patches
from medvis_desktop.explain import METHODS
from medvis_desktop.explain.graph import resolve
from medvis_desktop.explain.runner import explain_volume
from medvis_desktop.imaging.volume import Volume
from medvis_desktop.models import load_model
from medvis_desktop.models.card import ModelCard, read_card
from medvis_desktop.models.layers import default_gradcam_layer, output_shape

if TYPE_CHECKING:  # keras only after medvis_desktop, which keeps oneDNN off as the viewer does
    import keras

EVALUATION = cases.MODELS_DIR / "evaluation.json"
MAX_SLICES = 17  # per demo case: ct has 7 held-out lesion slices, mri 17, mammo 1: all of them
STEPS, SAMPLES = 10, 128  # as `medvis evaluate` defaults
QUICK_SAMPLES = 32
# (heading, lower is better)
COLUMNS = (
    ("deletion AUC ↓", True),
    ("insertion AUC ↑", False),
    ("MuFidelity ↑", False),
    ("pointing game ↑", False),
    ("energy inside ↑", False),
    ("s / slice ↓", True),
)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class MethodRow:
    method: str
    deletion: list[float]
    insertion: list[float]
    mu_fidelity: list[float]
    pointing: list[float]
    energy: list[float]
    seconds: list[float]

    def values(self) -> list[float]:
        """The table's numbers, in COLUMNS order (NaN: undefined on every slice)."""
        columns = (self.deletion, self.insertion, self.mu_fidelity, self.pointing, self.energy)
        means = [float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for v in columns]
        return [*means, float(np.mean(self.seconds))]


def held_out_slices(case: cases.DemoCase, volume: Volume) -> tuple[list[int], str, dict]:
    """The study's held-out slices as evaluation.json records them, its words, and the record
    (the model's entry, or for a model trained on several studies the one of this study)."""
    entry = json.loads(EVALUATION.read_text())[case.model_path.stem]
    if "held_out" not in entry:
        entry = next(v for k, v in entry.items() if isinstance(v, dict) and k in case.title)
    text = entry["held_out"]
    found = re.match(r"slices (\d+)\D(\d+)", text)
    if found:
        return list(range(int(found[1]), int(found[2]) + 1)), text, entry
    description = str(volume.meta.get("SeriesDescription", ""))
    views = re.match(r"views (.+?) and (.+?) of ", text)
    if views and any(view in description for view in views.groups()):
        return list(range(volume.shape[0])), f"{text} (the demo is the first of them)", entry
    raise SystemExit(f"evaluation.json's held-out record for {case.name} is not understood: {text}")


def thinned(slices: list[int], most: int) -> list[int]:
    """At most `most` of the slices, evenly spread over them: the middle one of each of `most`
    equal runs (one slice: the middle slice, through the lesion rather than its cap)."""
    if len(slices) <= most:
        return slices
    return [slices[int((k + 0.5) * len(slices) / most)] for k in range(most)]


def lesion_window(mask: np.ndarray, slices: list[int], card: ModelCard, spacing: tuple[float, ...]) -> int:
    """The lesions' median equivalent diameter on the model input, in whole voxels, even."""
    covered = (card.patch_extent(spacing) or mask.shape)[1:]  # the slice, or the patch, one input shows
    scale = np.prod(np.divide(card.spatial_shape[-2:], covered)) if card.resize == "resize" else 1
    areas = [float(mask[z].sum()) * scale for z in slices]
    diameter = 2 * math.sqrt(float(np.median(areas)) / math.pi)
    return int(min(max(4, 2 * round(diameter / 2)), min(card.spatial_shape[-2:])))


def method_settings(
    name: str, model: keras.Model, card: ModelCard, layer: str, window: int
) -> tuple[dict[str, object], str]:
    """The parameters a user would choose here, and what they cost in words."""
    method = METHODS[name]
    params: dict[str, object] = {}
    if name == "occlusion":
        params = {"window": window, "stride": max(1, window // 2)}
    if method.cost is None:
        return params, ""
    shape = output_shape(resolve(model, layer).layer)
    channels = int(shape[-1]) if method.uses_layer and shape else 0
    chosen = method.parameters(params)
    passes = method.cost(chosen, card.spatial_shape, channels)
    shown = ", ".join(f"{k} {v}" for k, v in chosen.items() if k != "batch_size") or "defaults"
    if name == "occlusion":
        shown += " (model-input voxels; the window ≈ the lesions' median diameter there)"
    return params, f"{name}: {shown}, {passes} passes per slice"


def patch_scores(
    volume: Volume, model: keras.Model, card: ModelCard, layer: str, target: int, slices: list[int]
) -> tuple[tuple[tuple[int, ...], float], ...]:
    """A study read in patches: each patch's score, which chooses the patch a slice is
    measured on (as SliceRun.of passes them); nothing for one read in whole slices or volumes."""
    if card.patch_extent(volume.spacing) is None:
        return ()
    return scored_patches(
        explain_volume(volume, model, "grad_cam", card=card, layer=layer, target=target, slices=slices)
    )


def warm_up(run: SliceRun, model: keras.Model, volume: Volume, z: int) -> None:
    """One untimed run of the method, so that its timing leaves out building compiled functions."""
    batch = run.model_input(volume.voxels, z)
    METHODS[run.method].run(model, batch, **run.method_arguments(run.scored_region(model, batch)))


def measure_demo(name: str, methods: list[str], max_slices: int, samples: int) -> str:
    """The markdown section of one demo case."""
    started = time.perf_counter()
    volume, mask, model_path, case = cases.load_case(name)
    held, held_text, record = held_out_slices(case, volume)
    lesion = [z for z in cases.lesion_slices(mask) if z in set(held)]
    slices = thinned(lesion, max_slices)
    model = load_model(model_path)
    card = read_card(model_path)
    if card is None:
        raise SystemExit(f"{model_path} has no model card")
    layer = str(record.get("gradcam_layer") or case.layer or default_gradcam_layer(model))
    target = case.target
    window = lesion_window(mask, lesion, card, volume.spacing)
    heading = f"### `{name}`: {case.title}\n"
    try:
        patches = patch_scores(volume, model, card, layer, target, slices)
        rows, notes, scores = [], [], []
        for method in methods:
            params, note = method_settings(method, model, card, layer, window)
            notes += [note] if note else []
            run = SliceRun.make(
                card,
                method,
                layer=layer,
                target=target,
                params=params,
                patches=patches,
                region=case.region,
                extent=card.patch_extent(volume.spacing),
            )
            log(f"{name}: {method} on {len(slices)} slices")
            warm_up(run, model, volume, slices[0])
            measured = [measure_slice(volume, model, run, z, steps=STEPS, samples=samples) for z in slices]
            done = [m for m in measured if m is not None]
            study_maps = np.stack([run.on_study_slice(m.maps, m.slice, volume.shape) for m in done])
            pointing, energy = reference_scores(study_maps, mask[slices], volume.spacing[1:])
            scores = [float(m.deletion.curve[0, 0]) for m in done]
            rows.append(
                MethodRow(
                    method, [m.deletion_auc for m in done], [m.insertion_auc for m in done],
                    [m.mu_fidelity for m in done], pointing.tolist(), energy.tolist(),
                    [m.seconds for m in done],
                )
            )  # fmt: skip
    except MedvisError as error:
        log(f"{name}: refused: {error}")
        return f"{heading}\nNot measured: the per-slice metrics refuse this model: {error}\n"
    elapsed = time.perf_counter() - started
    score_words = f"P({card.class_name(target)}) after the {card.output_activation}"
    if card.task == "segmentation":
        region = "everywhere"
        if case.region == "predicted":
            region = "where the model predicts the lesion (Seg-Grad-CAM)"
        score_words = f"the lesion channel's {card.output_activation} output summed {region}"
    load = os.getloadavg()[0]
    described = [
        f"Slices {_ranges(slices)}: {len(slices)} of the {len(lesion)} held-out slices with a lesion "
        f"(≥ {cases.MIN_LESION_PIXELS} pixels of the true mask; held out: {held_text}); model "
        f"`{model_path.name}`, layer `{layer}`, target {target} ({card.class_name(target)}); the "
        f"metrics' score: {score_words}, mean {np.mean(scores):.3f} on these slices."
        + (
            " Read in patches: each slice is measured on the patch behind its score (the "
            "highest-scoring patch covering it; slices sharing a patch share its measures) and its "
            "seconds are the method's on that patch."
            if card.patch_extent(volume.spacing) is not None
            else ""
        ),
        "Settings: "
        + "; ".join(
            [
                f"deletion/insertion {STEPS} steps, MuFidelity {samples} subsets of a 9×9 grid (20 %), "
                "baseline 0 in model-input units, pointing game tolerance 5 mm",
                *notes,
                "every other parameter at its default; seconds: the method alone on one slice, after "
                f"one untimed run. Wall time {elapsed:.0f} s (load average {load:.1f}).",
            ]
        ),
    ]
    return heading + "\n" + table(rows) + "\n" + "\n\n".join(described) + "\n"


def table(rows: list[MethodRow]) -> str:
    """Markdown, one row per method, the best value of each column in bold."""
    shown = [[_cell(row, k, v) for k, v in enumerate(row.values())] for row in rows]
    for column, (_, lower) in enumerate(COLUMNS):
        values = [row.values()[column] for row in rows]
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            continue
        best = _format(column, min(finite) if lower else max(finite))
        for cells, value in zip(shown, values, strict=True):
            if math.isfinite(value) and _format(column, value) == best:
                cells[column] = f"**{cells[column]}**"
    lines = ["| method | " + " | ".join(heading for heading, _ in COLUMNS) + " |"]
    lines.append("|---" * (len(COLUMNS) + 1) + "|")
    lines += [
        f"| `{row.method}` | " + " | ".join(cells) + " |" for row, cells in zip(rows, shown, strict=True)
    ]
    return "\n".join(lines) + "\n"


def _format(column: int, value: float) -> str:
    if column == 3:
        return f"{100 * value:.0f}%"
    if column == 5:
        return f"{value:.3f}" if value < 1 else f"{value:.2f}"
    return f"{round(value, 3) + 0.0:.3f}"  # + 0.0: no "-0.000"


def _cell(row: MethodRow, column: int, value: float) -> str:
    per_slice = (row.deletion, row.insertion, row.mu_fidelity, row.pointing, row.energy, row.seconds)[column]
    defined = int(np.isfinite(per_slice).sum())
    if not math.isfinite(value):
        return "undefined"
    text = _format(column, value)
    if column == 3:
        text += f" ({round(value * defined)}/{defined})"
    elif defined < len(per_slice):
        text += f" ({len(per_slice) - defined} of {len(per_slice)} undefined)"
    return text


def _ranges(slices: list[int]) -> str:
    """[55, 56, 57, 60] -> '55–57, 60'."""
    runs: list[list[int]] = []
    for z in slices:
        if runs and z == runs[-1][-1] + 1:
            runs[-1].append(z)
        else:
            runs.append([z])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def parse_list(text: str, allowed: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise SystemExit(
            f"Unknown {what}: {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}"
        )
    return names


def main(argv: Sequence[str] | None = None) -> None:
    evidence = [name for name, method in METHODS.items() if method.kind != "features"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demos", default=",".join(DEMOS), help=f"comma-separated, of {', '.join(DEMOS)}")
    parser.add_argument("--methods", default=",".join(evidence), help="comma-separated (default: all)")
    parser.add_argument("--max-slices", type=int, default=MAX_SLICES, help="per demo case, evenly spread")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: 1 slice, {QUICK_SAMPLES} subsets")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    demos = parse_list(args.demos, DEMOS, "demo case")
    methods = parse_list(args.methods, evidence, "method")
    for method in methods:
        check_evidence(method)
    max_slices, samples = (1, QUICK_SAMPLES) if args.quick else (max(1, args.max_slices), SAMPLES)
    started = time.perf_counter()
    sections = [measure_demo(name, methods, max_slices, samples) for name in demos]
    command = " ".join(argv if argv is not None else sys.argv[1:])
    text = (
        "Deletion/insertion AUC (Petsiuk et al. 2018) on the model's output after its sigmoid, "
        "MuFidelity (Bhatt et al. 2020), pointing game and energy inside the true lesion mask; "
        "means over the slices, best of each column in bold. Made by `tools/quality_table.py "
        f"{command}` in {time.perf_counter() - started:.0f} s.\n\n" + "\n".join(sections)
    )
    print(text)
    if args.out:
        args.out.write_text(text)
        log(f"written: {args.out}")


if __name__ == "__main__":
    main()
