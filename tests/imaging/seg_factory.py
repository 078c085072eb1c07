"""DICOM SEGs made by highdicom over a CT series written by dicom_factory, with boxes placed by
the test: what a reader of SEGs is checked against (the numpy boxes, never the reader's output)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from medvis_desktop import imaging
from tests.imaging.dicom_factory import SeriesSpec, slice_normal, slice_position, write_series

# Segment number → its boxes, each (slice, rows, columns) on the study's grid.
Boxes = dict[int, list[tuple[int, slice, slice]]]
LABELS = ("Lesion", "Oedema")
# Type 2 attributes the factory leaves out and highdicom copies from the source.
TYPE2 = ("PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName")


@dataclass
class Study:
    """A CT series on disk, as loaded, with its files' datasets in the loaded volume's slice order."""

    folder: Path
    volume: imaging.Volume
    sources: list[pydicom.Dataset]


def write_study(folder: Path, hu: np.ndarray, spec: SeriesSpec, frame_of_reference: str) -> Study:
    """The factory's series with one Frame of Reference for all files (as a scanner writes it)."""
    paths = write_series(hu, folder, spec)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.FrameOfReferenceUID = frame_of_reference
        for keyword in TYPE2:
            setattr(ds, keyword, None)
        ds.save_as(path, enforce_file_format=True)
    # The volume's slice z is the z-th file by position along the normal: the factory's geometry.
    along = [float(slice_position(spec, k) @ slice_normal(spec)) for k in range(len(paths))]
    sources = [pydicom.dcmread(paths[k]) for k in np.argsort(along)]
    return Study(folder, imaging.load(folder), sources)


def expected(shape: tuple[int, ...], segment: int | None, boxes: Boxes) -> np.ndarray:
    """The mask a reader must give for `segment` (None: the union of all)."""
    mask = np.zeros(shape, dtype=bool)
    for number, placed in boxes.items():
        if segment in (None, number):
            for z, rows, columns in placed:
                mask[z, rows, columns] = True
    return mask


def descriptions(count: int) -> list[hd.seg.SegmentDescription]:
    return [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=LABELS[number - 1],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for number in range(1, count + 1)
    ]


def make_seg(
    study: Study, boxes: Boxes, *, kind: str = "BINARY", value: float = 1.0, **options
) -> hd.seg.Segmentation:
    """A SEG of `boxes` over the study's source files (one frame per slice and segment with a box)."""
    slices = sorted({z for placed in boxes.values() for z, _, _ in placed})
    rows, columns = study.volume.shape[1:]
    pixels = np.zeros((len(slices), rows, columns, len(boxes)), dtype=np.float32)
    for number, placed in boxes.items():
        for z, rows, columns in placed:
            pixels[slices.index(z), rows, columns, number - 1] = value
    if kind != "FRACTIONAL":
        pixels = pixels.astype(bool)
    return hd.seg.Segmentation(
        source_images=[study.sources[z] for z in slices],
        pixel_array=pixels,
        segmentation_type=kind,
        segment_descriptions=descriptions(len(boxes)),
        series_instance_uid=hd.UID(),
        series_number=100,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
        **options,
    )


def saved(seg: pydicom.Dataset, path: Path) -> Path:
    seg.save_as(path, enforce_file_format=True)
    return path
