"""The set of files one explanation run leaves behind, each with its provenance record.

Used by `medvis explain` and the GUI's export menu alike. `explanation` is an
`explain.Explanation`; it is taken as it comes, so that export stays below explain.
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from medvis_desktop import imaging
from medvis_desktop.export.images import activation_grid, save_png, triptych
from medvis_desktop.export.provenance import Provenance, write_provenance
from medvis_desktop.export.volumes import save_heatmap
from medvis_desktop.imaging.volume import Volume

LABELS = {"grad_cam": "Grad-CAM", "deconvnet": "Deconvnet", "activation_maps": "Activation map"}


def key_slice(explanation: Any) -> int:
    """The slice a figure shows: the highest score for the target among computed slices."""
    computed = np.nonzero(explanation.computed)[0]
    scores = explanation.scores
    if explanation.card.input_mode != "3d" and explanation.target is not None:
        return int(computed[np.nanargmax(scores[computed, explanation.target])])
    strongest = np.nanmax(explanation.maps[computed].reshape(len(computed), -1), axis=1)
    return int(computed[np.argmax(strongest)])


def legend(explanation: Any, volume: Volume, z: int) -> list[str]:
    label = LABELS.get(explanation.method, explanation.method)
    what = f"{label} · layer {explanation.layer}"
    if explanation.method == "grad_cam":
        what += f" · class {explanation.class_name}"
    elif explanation.filter is not None:
        what += f" · filter {explanation.filter}"
    where = f"slice {z + 1}/{volume.shape[0]}"
    if explanation.card.input_mode != "3d" and explanation.target is not None:
        where += f" · score {explanation.scores[z, explanation.target]:.3f} ({explanation.class_name})"
    return [what, where, "Research use only, not for diagnosis"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_exports(
    volume: Volume,
    explanation: Any,
    out: Path,
    *,
    model_path: Path | None,
    input_path: Path | None,
    features: np.ndarray | None = None,
    dead: np.ndarray | None = None,
) -> list[Path]:
    """Heat-map volume, the key slice's triptych, scores, and the activation grid when given.

    `features` (y, x, C) and `dead` (C,) are the target layer's maps on the key slice.
    """
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{explanation.method}_{_safe(explanation.layer)}"
    z = key_slice(explanation)
    record = Provenance.for_run(
        explanation.method,
        model_path=model_path,
        input_path=input_path,
        layer=explanation.layer,
        target=explanation.target,
        parameters={
            "filter": explanation.filter,
            "slices_computed": int(explanation.computed.sum()),
            "key_slice": z,
            "card": asdict(explanation.card),
            "assumptions": explanation.assumptions,
            **explanation.parameters,
        },
    )
    written = [save_heatmap(volume, explanation.maps, out / f"{stem}.nii.gz")]
    grey = imaging.to_display(volume.voxels[z], imaging.default_window(volume))
    lines = legend(explanation, volume, z)
    figure = triptych(grey, explanation.maps[z], spacing_yx=volume.spacing[1:], legend=lines)
    written.append(save_png(figure, out / f"{stem}_slice{z:03d}.png"))
    if features is not None:
        grid = activation_grid(features, dead, legend=lines[:2])
        written.append(save_png(grid, out / f"{stem}_grid_slice{z:03d}.png"))
    written.append(_write_scores(explanation, out / f"{stem}_scores.csv"))
    record.outputs = [path.name for path in written]
    return written + [write_provenance(record, path) for path in written]


def _write_scores(explanation: Any, path: Path) -> Path:
    names = [explanation.card.class_name(k) for k in range(explanation.scores.shape[-1])]
    values = explanation.scores
    if explanation.card.input_mode != "3d":
        computed = np.flatnonzero(explanation.computed)
        header, rows, values = ["slice"], [[z] for z in computed], values[computed]
    elif explanation.patches:  # read in patches: each row's corner, in voxels
        header, rows = ["patch z", "patch y", "patch x"], [list(corner) for corner in explanation.patches]
    else:
        header, rows = ["volume"], [["whole"]]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*header, *names])
        for where, row in zip(rows, values, strict=True):
            writer.writerow([*where, *(f"{v:.6g}" for v in row)])
    return path
