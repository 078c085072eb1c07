"""The demo cases `medvis --demo NAME` opens: a demo model, a study, where to look first.

Each case pairs a model trained by tools/train_demo_models.py with a whole study shipped in the
package (medvis_desktop.demo.studies, made as medvis_desktop.demo.data says) whose lesions lie in
a block of slices the model never saw, and their true mask, so what the explanation shows can
be checked against where the lesion is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from medvis_desktop.demo import data, studies
from medvis_desktop.explain.runner import explain_volume
from medvis_desktop.imaging.volume import Volume
from medvis_desktop.models.card import ModelCard
from medvis_desktop.package_data import resource

MODELS_DIR = resource("models")
# A slice counts as a lesion slice when the lesion covers at least this many pixels there
# (the smallest lesion, 5 mm across, covers about 20 pixels of the CT).
MIN_LESION_PIXELS = 20
# The pointing game counts a hit when the map's maximum is this close to the lesion (or in it).
POINTING_TOLERANCE_MM = 5.0


@dataclass(frozen=True)
class DemoCase:
    """A demo model with its volume and the explanation to show first."""

    name: str
    title: str
    model_file: str
    study: str  # a study of medvis_desktop.demo.studies
    first_slice: int  # a slice through a lesion
    method: str = "grad_cam"
    layer: str | None = None  # None: the method's default layer
    target: int = 0
    # Segmentation models: the region whose score Grad-CAM explains (Seg-Grad-CAM), as
    # explain_volume takes it: "all", or "predicted" where the model predicts `target`.
    region: str = "all"

    @property
    def model_path(self) -> Path:
        return MODELS_DIR / self.model_file


CASES: dict[str, DemoCase] = {
    case.name: case
    for case in (
        DemoCase(
            name="ct",
            title="Head CT, hyperdense lesions: 2D CNN slice by slice",
            model_file="ct_head_lesion_2d.keras",
            study="ct_head",
            first_slice=58,
            layer="relu5",
        ),
        DemoCase(
            name="ct3d",
            title="Head CT, hyperdense lesions: 3D CNN over overlapping sub-volumes",
            model_file="ct_head_lesion_3d.keras",
            study="ct_head",
            first_slice=58,
            layer="relu4",
        ),
        DemoCase(
            name="mri",
            title="T1 brain MRI (Colin27), tumour-like lesions: 2D U-Net segmentation, Seg-Grad-CAM",
            model_file="mri_lesion_seg_2d.keras",
            study="colin27_t1",
            first_slice=101,
            layer="relu4",
            region="predicted",
        ),
        DemoCase(
            name="mammo",
            title="Mammogram (CBIS-DDSM), inserted spiculated mass: 2D CNN over overlapping patches",
            model_file="mammo_mass_2d.keras",
            study="mammogram",
            first_slice=0,
            layer="relu5",
        ),
    )
}


class DemoCaseError(data.DemoDataError):
    """An unknown demo case, or its model has not been made."""


def load_case(name: str) -> tuple[Volume, np.ndarray, Path, DemoCase]:
    """The volume, its true lesion mask (z, y, x), the model file and the case itself."""
    if name not in CASES:
        raise DemoCaseError(f"No demo case '{name}'; the demo cases are: {', '.join(CASES)}")
    case = CASES[name]
    if not case.model_path.exists():
        raise DemoCaseError(
            f"The demo model {case.model_path} is missing: make it with "
            f"tools/train_demo_models.py --only {case.model_path.stem}"
        )
    volume, mask = studies.read_study(case.study)
    return volume, mask, case.model_path, case


def lesion_slices(mask: np.ndarray) -> list[int]:
    """Slices the lesions clearly cross (at least MIN_LESION_PIXELS)."""
    return [int(z) for z in np.flatnonzero(mask.sum(axis=(1, 2)) >= MIN_LESION_PIXELS)]


def clear_slices(mask: np.ndarray) -> list[int]:
    """Slices without any lesion."""
    return [int(z) for z in np.flatnonzero(~mask.any(axis=(1, 2)))]


def pointing_hit(heat: np.ndarray, mask: np.ndarray, spacing: tuple[float, ...]) -> bool:
    """The pointing game: is the map's maximum within POINTING_TOLERANCE_MM of the true lesion?

    `heat` and `mask` share a 2D or 3D grid whose voxel size is `spacing` (mm, same axes).
    """
    if mask.ndim == 2:
        heat, mask, spacing = heat[None], mask[None], (1.0, *spacing)
    distance = data.room_mm(~mask, spacing)  # 0 inside the lesion
    peak = np.unravel_index(np.nanargmax(heat), heat.shape)
    return bool(distance[peak] <= POINTING_TOLERANCE_MM)


def case_maps(
    case: DemoCase, volume: Volume, model: keras.Model, card: ModelCard, slices: list[int]
) -> np.ndarray:
    """The case's explanation of `slices` on the volume's grid (NaN elsewhere), as the viewer shows it."""
    return explain_volume(
        volume,
        model,
        case.method,
        card=card,
        layer=case.layer,
        target=case.target,
        slices=slices,
        region=case.region,
    ).maps
