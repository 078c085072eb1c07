"""Writes real CT pixels out as DICOM, the way scanners and PACS exports lay them down.

Deliberately independent of the package: geometry is written from explicit numbers here,
so a reader bug cannot be cancelled out by the same bug in a writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.1"


@dataclass
class SeriesSpec:
    """How a head CT is written: its geometry, file naming and the faults to plant."""

    row_direction: Sequence[float] = (1.0, 0.0, 0.0)
    column_direction: Sequence[float] = (0.0, 1.0, 0.0)
    origin: Sequence[float] = (-120.0, -130.0, -80.0)
    pixel_spacing: tuple[float, float] = (0.9570312, 0.9570312)
    slice_step: float = 1.5
    slice_thickness: float = 5.0  # deliberately wrong: spacing must come from positions
    rescale_slope: float = 1.0
    rescale_intercept: float = -1024.0
    bits_stored: int = 12
    # Extra offset along the slice normal per slice index (uneven spacing, missing slices).
    extra_offsets: dict[int, float] = field(default_factory=dict)
    # Shift per slice along the column direction (gantry tilt).
    shear_per_slice: float = 0.0
    series_uid: str = field(default_factory=generate_uid)
    series_description: str = "Head 1.5mm"
    pixel_padding_value: int | None = None
    patient_name: str = "Test^Patient"
    shuffle_names: bool = True
    reverse_instance_numbers: bool = True


def slice_normal(spec: SeriesSpec) -> np.ndarray:
    return np.cross(np.asarray(spec.row_direction), np.asarray(spec.column_direction))


def slice_position(spec: SeriesSpec, index: int) -> np.ndarray:
    offset = index * spec.slice_step + spec.extra_offsets.get(index, 0.0)
    return (
        np.asarray(spec.origin, dtype=float)
        + offset * slice_normal(spec)
        + index * spec.shear_per_slice * np.asarray(spec.column_direction)
    )


def stored_values(hu: np.ndarray, spec: SeriesSpec) -> np.ndarray:
    raw = np.round((hu.astype(np.float64) - spec.rescale_intercept) / spec.rescale_slope)
    assert raw.min() >= 0 and raw.max() < 2**spec.bits_stored, "HU do not fit the stored bits"
    return raw.astype(np.uint16)


def _base_dataset(spec: SeriesSpec, sop_class: str, study_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.PatientName = spec.patient_name
    ds.PatientID = "PID-0042"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.SeriesDescription = spec.series_description
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyDate = "20120914"
    ds.StudyTime = "151208"
    ds.StudyID = "1"
    ds.SeriesNumber = 2 if spec.series_description.endswith("5mm") else 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = spec.bits_stored
    ds.HighBit = spec.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter = 40
    ds.WindowWidth = 80
    if spec.pixel_padding_value is not None:
        ds.PixelPaddingValue = spec.pixel_padding_value
    return ds


def write_series(
    hu: np.ndarray,
    folder: Path,
    spec: SeriesSpec | None = None,
    *,
    study_uid: str | None = None,
    stored: np.ndarray | None = None,
) -> list[Path]:
    """One file per slice of `hu` (z, y, x) into `folder`; returns the paths in slice order."""
    spec = spec or SeriesSpec()
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    stored = stored_values(hu, spec) if stored is None else stored
    count = hu.shape[0]
    names = np.random.default_rng(7).permutation(count) if spec.shuffle_names else np.arange(count)
    paths = []
    for index in range(count):
        ds = _base_dataset(spec, CTImageStorage, study_uid)
        ds.InstanceNumber = count - index if spec.reverse_instance_numbers else index + 1
        ds.ImagePositionPatient = [float(v) for v in slice_position(spec, index)]
        ds.ImageOrientationPatient = [*map(float, spec.row_direction), *map(float, spec.column_direction)]
        ds.PixelSpacing = list(spec.pixel_spacing)
        ds.SliceThickness = spec.slice_thickness
        ds.RescaleSlope = spec.rescale_slope
        ds.RescaleIntercept = spec.rescale_intercept
        ds.Rows, ds.Columns = hu.shape[1:]
        ds.PixelData = np.ascontiguousarray(stored[index]).tobytes()
        path = folder / f"IM{names[index]:05d}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def compress_files(paths: list[Path], syntax: str = RLELossless) -> list[Path]:
    """Rewrite these DICOM files with their pixels compressed by pydicom (RLE Lossless by
    default): a compressed series, decoded by native code in child processes."""
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(path)
    return paths


def write_enhanced_ct(hu: np.ndarray, path: Path, spec: SeriesSpec | None = None) -> Path:
    """One Enhanced CT multi-frame file, geometry in the per-frame functional groups."""
    spec = spec or SeriesSpec()
    ds = _base_dataset(spec, EnhancedCTImageStorage, generate_uid())
    ds.NumberOfFrames = hu.shape[0]
    ds.Rows, ds.Columns = hu.shape[1:]
    measures = Dataset()
    measures.PixelSpacing = list(spec.pixel_spacing)
    measures.SliceThickness = spec.slice_thickness
    orientation = Dataset()
    orientation.ImageOrientationPatient = [
        *map(float, spec.row_direction),
        *map(float, spec.column_direction),
    ]
    transform = Dataset()
    transform.RescaleSlope = spec.rescale_slope
    transform.RescaleIntercept = spec.rescale_intercept
    transform.RescaleType = "HU"
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    # Frames stored in reverse order: the reader must sort them by position.
    order = list(range(hu.shape[0]))[::-1]
    for index in order:
        position = Dataset()
        position.ImagePositionPatient = [float(v) for v in slice_position(spec, index)]
        item = Dataset()
        item.PlanePositionSequence = [position]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = stored_values(hu, spec)[order].tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
