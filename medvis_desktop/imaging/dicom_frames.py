"""One DICOM file's header → the frames it holds, each with its geometry, rescale and windows.

Every value is checked (checks.py) as it is read: a frame that joins a series has a finite,
sane position, orientation, spacing and rescale, and usable display windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from medvis_desktop.imaging import checks
from medvis_desktop.imaging.dicom_source import reduced_header
from medvis_desktop.imaging.volume import Window


@dataclass
class Frame:
    """One 2D image of a series: a single-frame file, or one frame of a multi-frame file."""

    path: Path
    frame_index: int | None
    position: np.ndarray | None
    orientation: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    rescale: tuple[float, float]
    instance_number: int
    windows: list[Window]
    # The file's header reduced to what DICOM results reference (shared by a file's frames).
    header: Dataset | None = None
    # What was wrong but not fatal in the header (unusable display windows).
    notes: tuple[str, ...] = ()


def _float_list(value: object) -> list[float] | None:
    """The numbers of a (multi-valued) element; None when absent, empty or not numeric."""
    if value is None or value == "":
        return None
    if not isinstance(value, pydicom.multival.MultiValue | list | tuple):
        value = [value]
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return values or None


def _windows(item: Dataset) -> tuple[list[Window], list[str]]:
    """The VOI windows a DICOM object recommends (WindowCenter/Width may be multi-valued).

    Unusable ones (NaN, infinite, width ≤ 0) are dropped with a note: a bad window must not
    cost the reader the image.
    """
    centers = item.get("WindowCenter")
    widths = item.get("WindowWidth")
    if centers is None or widths is None:
        return [], []
    centers = list(centers) if isinstance(centers, pydicom.multival.MultiValue) else [centers]
    widths = list(widths) if isinstance(widths, pydicom.multival.MultiValue) else [widths]
    names = item.get("WindowCenterWidthExplanation") or []
    names = list(names) if isinstance(names, pydicom.multival.MultiValue) else [names]
    windows, notes = [], []
    for k, (center, width) in enumerate(zip(centers, widths, strict=False)):
        name = str(names[k]) if k < len(names) and names[k] else f"DICOM {k + 1}"
        usable = checks.window(center, width)
        if usable is None:
            notes.append(f"Display window '{name}' (centre {center}, width {width}) is unusable: ignored")
            continue
        windows.append(Window(name, *usable))
    return windows, notes


def _nested(item: Dataset | None, sequence: str, keyword: str) -> object:
    """`item.sequence[0].keyword`, or None where any step is absent."""
    if item is None or sequence not in item or not item[sequence].value:
        return None
    return item[sequence].value[0].get(keyword)


def _rescale(
    slope: object, intercept: object, default: tuple[float, float] = (1.0, 0.0)
) -> tuple[float, float]:
    """Rescale slope and intercept (absent: `default`); a zero or NaN slope is refused, not guessed."""
    slope_value = _float_list(slope)
    intercept_value = _float_list(intercept)
    return checks.rescale(
        slope_value[0] if slope_value else default[0],
        intercept_value[0] if intercept_value else default[1],
    )


def frames_of(ds: Dataset, path: Path, count: int) -> list[Frame]:
    """The frames of one file, with the geometry of each (enhanced multi-frame included)."""
    rescale = _rescale(ds.get("RescaleSlope"), ds.get("RescaleIntercept"))
    instance = int(ds.get("InstanceNumber", 0) or 0)
    header = reduced_header(ds)
    if count == 1 and "PerFrameFunctionalGroupsSequence" not in ds:
        spacing = _spacing(ds.get("PixelSpacing"), "PixelSpacing") or _spacing(
            ds.get("ImagerPixelSpacing"), "ImagerPixelSpacing"
        )
        windows, notes = _windows(ds)
        return [
            Frame(
                path=path,
                frame_index=None,
                position=_position(ds.get("ImagePositionPatient")),
                orientation=_orientation(ds.get("ImageOrientationPatient")),
                pixel_spacing=spacing,
                rescale=rescale,
                instance_number=instance,
                windows=windows,
                header=header,
                notes=tuple(notes),
            )
        ]
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared = shared[0] if shared else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or [None] * count
    legacy_step = float(ds.get("SpacingBetweenSlices", 0) or ds.get("SliceThickness", 0) or 0)
    frames = []
    for index, item in enumerate(per_frame[:count]):

        def functional(sequence: str, keyword: str, item: Dataset | None = item) -> object:
            value = _nested(item, sequence, keyword)
            return value if value is not None else _nested(shared, sequence, keyword)

        position = _position(functional("PlanePositionSequence", "ImagePositionPatient"))
        orientation = _orientation(functional("PlaneOrientationSequence", "ImageOrientationPatient"))
        if orientation is None:
            orientation = _orientation(ds.get("ImageOrientationPatient"))
        if position is None and legacy_step and ds.get("ImagePositionPatient") is not None:
            orientation = _orientation(ds.get("ImageOrientationPatient"))
            if orientation is not None:
                normal = np.cross(orientation[:3], orientation[3:])
                start = _position(ds.ImagePositionPatient)
                if start is not None:
                    position = checks.position(
                        start + index * legacy_step * normal, "ImagePositionPatient + frame step"
                    )
        spacing = (
            _spacing(functional("PixelMeasuresSequence", "PixelSpacing"), "PixelSpacing")
            or _spacing(ds.get("PixelSpacing"), "PixelSpacing")
            or _spacing(ds.get("ImagerPixelSpacing"), "ImagerPixelSpacing")
        )
        frame_rescale = _rescale(
            functional("PixelValueTransformationSequence", "RescaleSlope"),
            functional("PixelValueTransformationSequence", "RescaleIntercept"),
            default=rescale,
        )
        voi = item["FrameVOILUTSequence"][0] if item is not None and "FrameVOILUTSequence" in item else None
        if voi is None and shared is not None and "FrameVOILUTSequence" in shared:
            voi = shared["FrameVOILUTSequence"][0]
        windows, notes = _windows(voi if voi is not None else ds)
        frames.append(
            Frame(
                path=path,
                frame_index=index,
                position=position,
                orientation=orientation,
                pixel_spacing=spacing,
                rescale=frame_rescale,
                instance_number=instance * 100000 + index,
                windows=windows,
                header=header,
                notes=tuple(notes),
            )
        )
    return frames


def _spacing(value: object, what: str) -> tuple[float, float] | None:
    """(row, column) spacing in mm; absent or all zero (as some radiographs carry) is None.

    Anything else must be two finite values in (0, 1000] mm, or the file is refused.
    """
    values = _float_list(value)
    if values is None or values == [0.0, 0.0]:
        return None
    if len(values) != 2:
        raise checks.HeaderError(f"{what} needs 2 values, has {len(values)}")
    row, column = checks.spacing(values, what)
    return float(row), float(column)


def _position(value: object, what: str = "ImagePositionPatient") -> np.ndarray | None:
    values = _float_list(value)
    return None if values is None else checks.position(values, what)


def _orientation(value: object) -> np.ndarray | None:
    values = _float_list(value)
    return None if values is None else checks.orientation(values)
