"""The demo studies as they travel inside the package: each is a compressed NIfTI of the voxels,
one of the true lesion mask, and a JSON sidecar with what NIfTI cannot hold (modality, windows,
description, warnings) and where the data came from, under which licence.

They are made from the installed sources by tools/make_demo_studies.py (medvis_desktop.demo.data
says how); at run time only these files are read, so the demos work on a workstation that has
none of the sources.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from medvis_desktop.errors import MedvisError
from medvis_desktop.imaging.itk import load_itk, save_itk
from medvis_desktop.imaging.volume import Volume, Window
from medvis_desktop.package_data import resource

FOLDER = "demo"


@dataclass(frozen=True)
class DataSource:
    """Where a demo study's real data comes from, for the About dialog and the licence files."""

    title: str
    origin: str
    licence: str  # SPDX identifier
    licence_files: tuple[str, ...]  # beside the study, in the same folder


def study_files(name: str, folder: Path | None = None) -> tuple[Path, Path, Path]:
    """The voxels, mask and sidecar of study `name`."""
    folder = resource(FOLDER) if folder is None else folder
    return folder / f"{name}.nii.gz", folder / f"{name}_lesions.nii.gz", folder / f"{name}.json"


def write_study(name: str, volume: Volume, mask: np.ndarray, source: DataSource, folder: Path) -> None:
    voxels_path, mask_path, sidecar_path = study_files(name, folder)
    save_itk(volume, voxels_path)
    save_itk(volume, mask_path, mask.astype(np.uint8))
    sidecar = {
        "modality": volume.modality,
        "dtype": volume.voxels.dtype.name,
        # NIfTI keeps geometry in float32: the exact values, as the derivation made them
        "spacing": volume.spacing,
        "origin": volume.origin,
        "direction": volume.direction.tolist(),
        "meta": volume.meta,
        "windows": [[w.name, w.center, w.width] for w in volume.windows],
        "warnings": volume.warnings,
        "source": {**source.__dict__, "licence_files": list(source.licence_files)},
    }
    sidecar_path.write_text(json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n")


def read_study(name: str, folder: Path | None = None) -> tuple[Volume, np.ndarray]:
    """The shipped study `name` (or one in `folder`) and its true lesion mask (z, y, x, bool)."""
    voxels_path, mask_path, sidecar_path = study_files(name, folder)
    if not sidecar_path.exists():
        raise MedvisError(f"The demo study '{name}' is not in this installation ({sidecar_path.parent})")
    sidecar = json.loads(sidecar_path.read_text())
    volume = load_itk(voxels_path)
    mask = load_itk(mask_path).voxels > 0
    volume = replace(
        volume,
        voxels=volume.voxels.astype(sidecar["dtype"], copy=False),
        spacing=tuple(sidecar["spacing"]),
        origin=tuple(sidecar["origin"]),
        direction=np.asarray(sidecar["direction"]),
        modality=sidecar["modality"],
        meta=dict(sidecar["meta"]),
        windows=[Window(*window) for window in sidecar["windows"]],
        warnings=list(sidecar["warnings"]),
    )
    return volume, mask


def sources() -> dict[str, DataSource]:
    """Every shipped study's data source, by study name."""
    found = {}
    for sidecar in sorted(resource(FOLDER).glob("*.json")):
        source = json.loads(sidecar.read_text())["source"]
        found[sidecar.stem] = DataSource(**{**source, "licence_files": tuple(source["licence_files"])})
    return found
