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
from PIL import Image

from medvis_desktop import imaging
from medvis_desktop.export.atomic import atomic_write, make_folder
from medvis_desktop.export.images import (
    OverlayStyle,
    activation_grid,
    axial_layout,
    map_scale,
    save_png,
    scale_range,
    triptych,
)
from medvis_desktop.export.provenance import Provenance, write_provenance
from medvis_desktop.export.volumes import save_heatmap
from medvis_desktop.imaging.orientation import planar_view
from medvis_desktop.imaging.volume import Volume

DEFAULT_SEG_FRACTION = 0.5
"""The SEG holds the voxels above this fraction of the map's maximum (over computed slices)."""


def key_slice(explanation: Any) -> int:
    """The slice a figure shows: the highest score for the target among computed slices."""
    computed = np.nonzero(explanation.computed)[0]
    scores = explanation.scores
    if explanation.scores_per_slice and explanation.target is not None:
        return int(computed[np.nanargmax(scores[computed, explanation.target])])
    strongest = np.nanmax(explanation.maps[computed].reshape(len(computed), -1), axis=1)
    return int(computed[np.argmax(strongest)])


def legend(explanation: Any, volume: Volume, z: int) -> list[str]:
    what = explanation.description or explanation.method
    where = planar_view(volume) or f"slice {z + 1}/{volume.shape[0]}"
    if explanation.scores_per_slice and explanation.target is not None:
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
    dicom_out: Path | None = None,
    seg_fraction: float = DEFAULT_SEG_FRACTION,
) -> list[Path]:
    """Heat-map volume, the key slice's triptych, scores, and the activation grid when given.

    `features` (y, x, C) and `dead` (C,) are the target layer's maps on the key slice. With
    `dicom_out`, the DICOM results too (see `write_dicom_results`), with the same record.
    """
    make_folder(out, source=volume.source)
    stem = f"{explanation.method}_{_safe(explanation.layer)}"
    z = key_slice(explanation)
    record = Provenance.for_run(
        explanation.method,
        model_path=model_path,
        input_path=input_path,
        layer=explanation.layer,
        target=explanation.target,
        method_label=explanation.label,
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
    style, maps = OverlayStyle(), explanation.maps  # the window's default scale: the study's robust range
    value_range = scale_range(maps, explanation.computed, maps[z], style, explanation.signed)
    scale = map_scale(value_range, explanation.signed, style)
    figure = triptych(grey, explanation.maps[z], scale=scale, legend=lines, **axial_layout(volume))
    written.append(save_png(figure, out / f"{stem}_slice{z:03d}.png", source=volume.source))
    if features is not None:
        grid = activation_grid(features, dead, legend=lines[:2])
        written.append(save_png(grid, out / f"{stem}_grid_slice{z:03d}.png", source=volume.source))
    written.append(_write_scores(explanation, out / f"{stem}_scores.csv", volume.source))
    if dicom_out is not None:
        written += write_dicom_results(volume, explanation, figure, z, record, dicom_out, seg_fraction)
    record.outputs = [path.name for path in written]
    return written + [write_provenance(record, path) for path in written]


def dicom_results_missing(volume: Volume) -> str | None:
    """Which DICOM results this study cannot have, and why; None when it can have all three."""
    if volume.dicom is None:
        return (
            "The Parametric Map and the Segmentation need a DICOM study; only the Secondary Capture "
            "was written (it starts a new study and says what is unknown)"
        )
    if volume.dicom.frame_of_reference_uid is None:
        return (
            "A Parametric Map needs images with a Frame of Reference (these have none); "
            "the Segmentation and the Secondary Capture were written"
        )
    return None


def write_dicom_results(
    volume: Volume,
    explanation: Any,
    figure: Image.Image,
    z: int,
    record: Provenance,
    out: Path,
    seg_fraction: float = DEFAULT_SEG_FRACTION,
) -> list[Path]:
    """Parametric Map, binary SEG (above `seg_fraction` of the map's maximum) and a Secondary
    Capture of `figure` (slice z's triptych, legend drawn in) into `out`, as far as the study
    allows (`dicom_results_missing`)."""
    # Here, not at the top: dicom_results imports this module (LABELS), and highdicom is slow to load.
    from medvis_desktop.export import dicom_results

    what = explanation.class_name if explanation.method == "grad_cam" else None
    maps, written = explanation.maps, []
    record.parameters["seg_threshold_fraction"] = seg_fraction
    if volume.dicom is not None:
        if volume.dicom.frame_of_reference_uid is not None:
            pm = dicom_results.parametric_map(
                volume, maps, record, class_name=what, computed=explanation.computed
            )
            written.append(dicom_results.save(pm, out, source=volume.source))
        segment = what or (f"filter {explanation.filter}" if explanation.filter is not None else "map")
        threshold = seg_fraction * float(np.nanmax(maps[explanation.computed]))
        seg = dicom_results.segmentation(volume, {segment: maps}, record, threshold=threshold)
        written.append(dicom_results.save(seg, out, source=volume.source))
    label = explanation.label or explanation.method
    sc = dicom_results.secondary_capture(
        np.asarray(figure.convert("RGB")),
        volume,
        burned_in_annotation=True,  # the legend (method, layer, class, score) is drawn into the pixels
        description=f"{label} triptych",
        provenance=record,
        slices=[z],
    )
    return [*written, dicom_results.save(sc, out, source=volume.source)]


def _write_scores(explanation: Any, path: Path, source: Path | None) -> Path:
    names = [explanation.card.class_name(k) for k in range(explanation.scores.shape[-1])]
    values = explanation.scores
    if explanation.scores_per_slice:
        computed = np.flatnonzero(explanation.computed)
        header, rows, values = ["slice"], [[z] for z in computed], values[computed]
    elif explanation.patches:  # read in patches: each row's corner, in voxels (z, y, x)
        header, rows = ["patch z", "patch y", "patch x"], [list(corner) for corner in explanation.patches]
    else:
        header, rows = ["volume"], [["whole"]]
    with atomic_write(path, source=source) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*header, *names])
        for where, row in zip(rows, values, strict=True):
            writer.writerow([*where, *(f"{v:.6g}" for v in row)])
    return path
