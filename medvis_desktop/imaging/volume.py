"""The Volume: voxels plus the patient-space geometry every viewer and export needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from medvis_desktop.imaging.dicom_source import DicomSource

# A slice normal within about 25° of a patient axis names the plane after it.
PLANE_TOLERANCE = 0.9


@dataclass(frozen=True)
class Window:
    """A display window in the volume's units (HU for CT)."""

    name: str
    center: float
    width: float

    @property
    def low(self) -> float:
        return self.center - self.width / 2

    @property
    def high(self) -> float:
        return self.center + self.width / 2


@dataclass
class Volume:
    """A scalar image on a regular grid, indexed (z, y, x).

    Geometry follows DICOM patient coordinates (LPS, millimetres): `origin` is the centre of
    voxel (0, 0, 0) as a point (x, y, z); column k of `direction` is the unit vector, in
    (x, y, z), along array axis k (0 = slice axis z, 1 = rows y, 2 = columns x); `spacing` is
    (z, y, x). A 2D image is a volume with one slice. `dicom` is set when the volume was read
    from a DICOM series: what results written back as DICOM reference (see dicom_source).
    """

    voxels: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3)[:, ::-1].copy())
    modality: str = "OT"
    meta: dict[str, str] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    source: Path | None = None
    dicom: DicomSource | None = None

    def __post_init__(self) -> None:
        if self.voxels.ndim != 3:
            raise ValueError(f"Volume voxels must be 3D (z, y, x), got shape {self.voxels.shape}")
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin = tuple(float(o) for o in self.origin)
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.voxels.shape

    @property
    def affine(self) -> np.ndarray:
        """4×4 matrix taking a (z, y, x, 1) index to an LPS (x, y, z, 1) point in mm."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction * np.asarray(self.spacing)
        affine[:3, 3] = self.origin
        return affine

    def index_to_patient(self, index_zyx: np.ndarray) -> np.ndarray:
        """LPS millimetres of voxel indices (..., 3) given as (z, y, x)."""
        index = np.asarray(index_zyx, dtype=np.float64)
        return index @ (self.direction * np.asarray(self.spacing)).T + np.asarray(self.origin)

    @property
    def plane(self) -> str:
        """The acquisition plane the slices lie in: axial, coronal, sagittal or oblique."""
        normal = np.abs(self.direction[:, 0])
        axis = int(np.argmax(normal))
        if normal[axis] < PLANE_TOLERANCE:
            return "oblique"
        return ("sagittal", "coronal", "axial")[axis]

    def value_range(self) -> tuple[float, float]:
        return float(np.min(self.voxels)), float(np.max(self.voxels))
