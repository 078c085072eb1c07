"""A DICOM Segmentation (SEG) as a reference mask on a study's grid.

highdicom reads and validates the SEG and decodes its frames (bit-packed BINARY, FRACTIONAL,
LABELMAP, compressed or not). Each frame is then placed by its own geometry, never by the
order of the frames or by the instances it claims to be derived from: its Image Position
(Patient) must be the stored position of one of the study's slices (within POSITION_TOLERANCE_MM),
and its orientation, pixel spacing, rows and columns must be the study's. highdicom's
`get_volume` is not used for this: it asks for a regularly spaced stack, which a study with
uneven spacing, a gantry tilt or missing slices is not, and its refusal does not say what
differs. A SEG that does not lie on the study's planes is refused in one line saying what
differs; a SEG covering some slices only leaves the others False.

The file is untrusted, as every file the imaging package reads: its size and declared pixels are
checked against the memory budget and the bytes present (dicom_header, checks) before highdicom
parses it, and any failure while parsing or decoding is a SegError naming the file. Decoders of
compressed frames run in this process: a crash inside C code cannot be caught here (a viewer
that fears that reads the SEG in a child process, as imaging.load_isolated does for studies).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from medvis_desktop.errors import LoadError
from medvis_desktop.imaging import checks
from medvis_desktop.imaging.dicom_header import check_pixel_header, read_header
from medvis_desktop.imaging.dicom_scan import is_dicom_file
from medvis_desktop.imaging.volume import Volume

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
SEG_CLASSES = (SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE)
# A frame lies on a study slice when its position is this close to the slice's (as
# evaluate.GRID_TOLERANCE_MM for masks); spacing and orientation may drift this much across a plane.
POSITION_TOLERANCE_MM = 0.05
# A FRACTIONAL frame's voxel is inside when it holds at least this share of the maximum value.
FRACTIONAL_THRESHOLD = 0.5


T = TypeVar("T")


class SegError(LoadError):
    """A DICOM SEG that cannot be read (not a SEG, damaged) or does not lie on the study's planes."""


@dataclass(frozen=True)
class SegmentInfo:
    """One segment of a SEG, as the window offers it: its number and label."""

    number: int
    label: str


@dataclass(frozen=True)
class FramePlane:
    """Where one SEG frame lies and which segment it holds (None: a LABELMAP frame, all of them)."""

    position: np.ndarray  # Image Position (Patient), LPS mm: the centre of its first pixel
    orientation: np.ndarray  # row then column cosines (6)
    spacing: tuple[float, float]  # between rows, between columns (mm)
    segment: int | None


def is_seg(path: Path | str) -> bool:
    """Whether `path` is a DICOM file whose header names a SEG SOP class (read without pixels;
    anything unreadable answers False): how a caller tells a SEG from a mask imaging.load reads."""
    path = Path(path).expanduser()
    if not path.is_file() or not is_dicom_file(path):
        return False
    try:
        header = read_header(path, checks.memory_budget(), specific_tags=["SOPClassUID"])
        return (
            str(header.get("SOPClassUID") or header.file_meta.get("MediaStorageSOPClassUID")) in SEG_CLASSES
        )
    except checks.NOT_FAILURES:
        raise
    except BaseException:
        return False


def segments(path: Path | str) -> list[SegmentInfo]:
    """The segments of the SEG at `path`, by number, with their labels (for a choice in the window)."""
    path = Path(path).expanduser()
    seg = _read(path, lazy=True)
    return _guarded(path, "its segments are unreadable", lambda: _segment_infos(seg))


def seg_mask(path: Path | str, volume: Volume, segment: int | None = None) -> np.ndarray:
    """Segment `segment` of the SEG at `path` (None: the union of all) as bool (z, y, x) on the
    grid of `volume`.

    Every frame goes to the study slice whose stored position it carries (within
    POSITION_TOLERANCE_MM), whatever the frame order; slices without a frame are False. BINARY
    frames are inside where 1, LABELMAP frames where they hold the segment's number, and
    FRACTIONAL frames are thresholded at half their Maximum Fractional Value (inside where the
    stored value is ≥ 0.5 × maximum). Refused in one line (SegError): not a SEG, damaged, a
    segment number the file does not have (the available ones are named), or frames that do not
    lie on the study's planes (what differs is named: frame of reference, rows/columns,
    orientation, pixel spacing, positions off the study's slices).
    """
    path = Path(path).expanduser()
    seg = _read(path)
    infos = _guarded(path, "its segments are unreadable", lambda: _segment_infos(seg))
    numbers = [info.number for info in infos]
    if segment is not None and segment not in numbers:
        available = ", ".join(
            f"{info.number} ({info.label})" if info.label else str(info.number) for info in infos
        )
        raise SegError(f"{path.name} has no segment {segment}; available: {available}")
    wanted = set(numbers) if segment is None else {segment}
    planes = _guarded(path, "its frame geometry is unreadable", lambda: _frame_planes(seg, path))
    _check_frame_of_reference(seg, volume, path)
    slices = _slices_of(planes, (int(seg.Rows), int(seg.Columns)), volume, path)
    kind, maximum = _guarded(path, "its segmentation type is unreadable", lambda: _reading(seg))
    mask = np.zeros(volume.shape, dtype=bool)
    for index, (plane, z) in enumerate(zip(planes, slices, strict=True)):
        if plane.segment is not None and plane.segment not in wanted:
            continue
        pixels = _guarded(
            path, f"frame {index + 1} cannot be decoded", lambda i=index: seg.get_stored_frame(i + 1)
        )
        if pixels.shape != volume.shape[1:]:
            raise SegError(
                f"{path.name}: frame {index + 1} decodes to {pixels.shape}, not {volume.shape[1:]}"
            )
        mask[z] |= _frame_mask(pixels, kind, maximum, wanted)
    return mask


def _guarded(path: Path, what: str, action: Callable[[], T]) -> T:
    """`action()`, any failure of a damaged file (decoders' BaseExceptions too) as one SegError line."""
    try:
        return action()
    except SegError:
        raise
    except checks.NOT_FAILURES:
        raise
    except BaseException as error:
        raise SegError(f"{path.name} is a damaged DICOM SEG: {what} ({_cut(error)})") from None


def _cut(error: BaseException) -> str:
    # pydicom appends a whole traceback to the value errors it re-raises: cut it.
    return checks.one_line(error).split(" Traceback (most recent call last)")[0]


def _read(path: Path, *, lazy: bool = False) -> hd.seg.Segmentation:
    """The SEG, parsed by highdicom once its header is checked against the file and the budget
    (`lazy`: its pixel data left in the file, for a caller wanting the header only)."""
    if not path.exists():
        raise SegError(f"Nothing found at {path}")
    if not path.is_file():
        raise SegError(f"{path.name} is a folder, not a DICOM SEG file")
    if not is_dicom_file(path):
        raise SegError(f"{path.name} is not a DICOM file, so not a DICOM SEG")
    budget = checks.memory_budget()
    try:
        header = read_header(path, budget)
    except checks.NOT_FAILURES:
        raise
    except BaseException as error:
        raise SegError(f"{path.name} is a damaged DICOM file: {_cut(error)}") from None
    sop_class = header.get("SOPClassUID") or header.file_meta.get("MediaStorageSOPClassUID")
    if str(sop_class) not in SEG_CLASSES:
        raise SegError(f"{path.name} is not a DICOM SEG: it is {_class_name(sop_class)}")
    _guarded(
        path, "its pixel header does not match the file", lambda: check_pixel_header(header, path, budget)
    )
    return _guarded(path, "highdicom cannot read it", lambda: hd.seg.segread(path, lazy_frame_retrieval=lazy))


def _class_name(sop_class: object) -> str:
    if not isinstance(sop_class, str) or not sop_class:
        return "an object without a SOP class"
    name = UID(sop_class).name
    return f"a {name} object" if name != sop_class else f"an object of SOP class {sop_class}"


def _segment_infos(seg: hd.seg.Segmentation) -> list[SegmentInfo]:
    infos = []
    for number in seg.segment_numbers:
        label = seg.get_segment_description(number).get("SegmentLabel", "")
        infos.append(SegmentInfo(int(number), str(label or "")))
    return infos


def _item(dataset: Dataset | None, sequence: str) -> Dataset | None:
    """The first item of `sequence` in `dataset`, or None where either is absent or empty."""
    if dataset is None or sequence not in dataset or not dataset[sequence].value:
        return None
    return dataset[sequence].value[0]


def _functional(frame: Dataset | None, shared: Dataset | None, sequence: str, keyword: str) -> object:
    """`keyword` of the frame's functional group `sequence`, else of the shared one."""
    for group in (frame, shared):
        item = _item(group, sequence)
        if item is not None and item.get(keyword) is not None:
            return item.get(keyword)
    return None


def _frame_planes(seg: hd.seg.Segmentation, path: Path) -> list[FramePlane]:
    """Each frame's position, orientation, spacing and segment, checked finite and sane (a fault
    of structure is a ValueError, made one line by _guarded)."""
    count = int(seg.number_of_frames)
    shared = _item(seg, "SharedFunctionalGroupsSequence")
    per_frame = list(seg.get("PerFrameFunctionalGroupsSequence") or [])
    if len(per_frame) != count:
        raise ValueError(f"{count} frames but {len(per_frame)} per-frame functional groups")
    labelmap = seg.segmentation_type == hd.seg.SegmentationTypeValues.LABELMAP
    described = set(seg.segment_numbers)
    planes = []
    for index, frame in enumerate(per_frame, start=1):
        position = _functional(frame, shared, "PlanePositionSequence", "ImagePositionPatient")
        orientation = _functional(frame, shared, "PlaneOrientationSequence", "ImageOrientationPatient")
        spacing = _functional(frame, shared, "PixelMeasuresSequence", "PixelSpacing")
        if position is None or orientation is None or spacing is None:
            missing = [
                name
                for name, value in (
                    ("position", position),
                    ("orientation", orientation),
                    ("pixel spacing", spacing),
                )
                if value is None
            ]
            raise SegError(
                f"{path.name}: frame {index} has no {' or '.join(missing)} in patient space, so it "
                "cannot be placed on a study's slices (a SEG of a radiograph or a slide?)"
            )
        segment = None
        if not labelmap:
            identification = _item(frame, "SegmentIdentificationSequence")
            if identification is None:
                identification = _item(shared, "SegmentIdentificationSequence")
            if identification is None or identification.get("ReferencedSegmentNumber") is None:
                raise ValueError(f"frame {index} names no segment")
            segment = int(identification.ReferencedSegmentNumber)
            if segment not in described:
                raise ValueError(f"frame {index} names segment {segment}, which the file does not describe")
        row_spacing, column_spacing = checks.spacing(list(spacing), "PixelSpacing")
        planes.append(
            FramePlane(
                position=checks.position(list(position), "ImagePositionPatient"),
                orientation=checks.orientation(list(orientation)),
                spacing=(float(row_spacing), float(column_spacing)),
                segment=segment,
            )
        )
    return planes


def _reading(seg: hd.seg.Segmentation) -> tuple[str, int]:
    """The SEG's type and, for FRACTIONAL, its Maximum Fractional Value (else 1)."""
    kind = hd.seg.SegmentationTypeValues(seg.segmentation_type).value
    if kind != "FRACTIONAL":
        return kind, 1
    return kind, checks.count(seg.get("MaximumFractionalValue"), "MaximumFractionalValue", maximum=255)


def _frame_mask(pixels: np.ndarray, kind: str, maximum: int, wanted: set[int]) -> np.ndarray:
    """A decoded frame as bool: BINARY 1, FRACTIONAL ≥ half the maximum, LABELMAP a wanted number."""
    if kind == "FRACTIONAL":
        return pixels >= FRACTIONAL_THRESHOLD * maximum
    if kind == "LABELMAP":
        return np.isin(pixels, sorted(wanted))
    return pixels != 0


def _check_frame_of_reference(seg: hd.seg.Segmentation, volume: Volume, path: Path) -> None:
    """Positions in two frames of reference are not comparable, even when the numbers agree."""
    study = volume.dicom.frame_of_reference_uid if volume.dicom is not None else None
    own = seg.get("FrameOfReferenceUID")
    if study and own and str(own) != study:
        raise SegError(
            f"{path.name} does not lie on the study's planes: frame of reference {own} vs the study's "
            f"{study} (it was made on another acquisition)"
        )


def _study_positions(volume: Volume) -> np.ndarray:
    """(z, 3) LPS position of each slice's first voxel: as stored in the DICOM source (exact for
    uneven spacing or a gantry tilt), else on the Volume's regular grid."""
    source = volume.dicom
    if source is not None and len(source.slices) == volume.shape[0]:
        stored = [s.position for s in source.slices]
        if all(p is not None for p in stored):
            return np.asarray(stored, dtype=np.float64)
    index = np.zeros((volume.shape[0], 3))
    index[:, 0] = np.arange(volume.shape[0])
    return volume.index_to_patient(index)


def _slices_of(planes: list[FramePlane], size: tuple[int, int], volume: Volume, path: Path) -> list[int]:
    """The study slice each frame lies on; one line saying what differs when any lies on none."""
    problems = list(_plane_differences(planes, size, volume))
    if not problems:
        positions = _study_positions(volume)
        frames = np.asarray([plane.position for plane in planes]).reshape(-1, 3)
        normal = volume.direction[:, 0]
        slices, off = [], []
        for index, point in enumerate(frames):
            z = int(np.argmin(np.abs((positions - point) @ normal)))
            distance = float(np.linalg.norm(point - positions[z]))
            if distance > POSITION_TOLERANCE_MM:
                off.append((index, z, point))
            slices.append(z)
        if not off:
            return slices
        index, z, point = off[0]
        along = float((point - positions[z]) @ normal)
        within = float(np.linalg.norm(point - positions[z] - along * normal))
        problems.append(
            f"{len(off)} of {len(planes)} frames lie off the study's slices (frame {index + 1} at "
            f"({_joined(point, ', ')}) mm, nearest slice {z}: {along:+.3f} mm along the slice normal, "
            f"{within:.3f} mm within the plane)"
        )
    raise SegError(
        f"{path.name} does not lie on the study's planes: {'; '.join(problems)}. "
        "Give a SEG made on this series"
    )


def _plane_differences(planes: list[FramePlane], size: tuple[int, int], volume: Volume) -> Iterator[str]:
    """What differs between the frames' planes (`size`: the SEG's rows, columns) and the study's
    slices, in words."""
    rows, columns = volume.shape[1:]
    if size != (rows, columns):
        yield f"rows × columns {size[0]} × {size[1]} vs the study's {rows} × {columns}"
    study_orientation = np.concatenate([volume.direction[:, 2], volume.direction[:, 1]])
    reach = np.asarray([volume.spacing[2] * (columns - 1), volume.spacing[1] * (rows - 1)])
    for plane in _distinct(planes, "orientation"):
        drift = np.linalg.norm((plane.orientation - study_orientation).reshape(2, 3), axis=1) * reach
        if (drift > POSITION_TOLERANCE_MM).any():
            yield (
                f"orientation (row, column cosines) ({_joined(plane.orientation, ', ')}) vs the study's "
                f"({_joined(study_orientation, ', ')})"
            )
            break
    extent = np.maximum(np.asarray([rows, columns]) - 1, 1)
    for plane in _distinct(planes, "spacing"):
        if (np.abs(np.subtract(plane.spacing, volume.spacing[1:])) * extent > POSITION_TOLERANCE_MM).any():
            yield f"pixel spacing {_joined(plane.spacing)} mm vs the study's {_joined(volume.spacing[1:])} mm"
            break


def _distinct(planes: list[FramePlane], field: str) -> list[FramePlane]:
    """One plane per distinct value of `field` (most SEGs share one orientation and spacing)."""
    seen: dict[tuple, FramePlane] = {}
    for plane in planes:
        seen.setdefault(tuple(np.round(np.ravel(getattr(plane, field)), 9)), plane)
    return list(seen.values())


def _joined(values: object, separator: str = " × ") -> str:
    return separator.join(f"{float(v):.6g}" for v in np.ravel(values))
