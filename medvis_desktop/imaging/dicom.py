"""DICOM folders, files and DICOMDIRs → series → Volume.

Two passes keep memory near the size of the result: headers first (no pixels) to find the
series, order the slices and size the array; then pixels, one file or frame at a time,
written straight into the preallocated volume (all at once here; slice by slice, the first
ones shown while the rest load, in streaming.py).

No header is trusted (see checks.py): before a file joins a series, its declared
Rows × Columns × SamplesPerPixel × BitsAllocated × NumberOfFrames is compared with the pixel
bytes (or, compressed, the fragments) the file really holds and with the memory budget, and its
positions, orientation, spacing and rescale must be finite and sane. A file that fails, or
whose decoder fails in any way (Rust decoders panic with a BaseException), is skipped with a
warning naming it; a lone file that fails is a LoadError naming it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array

from medvis_desktop.errors import LoadError
from medvis_desktop.imaging import checks, dicom_scan
from medvis_desktop.imaging.dicom_frames import Frame
from medvis_desktop.imaging.dicom_header import check_decoder
from medvis_desktop.imaging.dicom_scan import META_KEYWORDS
from medvis_desktop.imaging.dicom_source import source_of
from medvis_desktop.imaging.volume import Volume, Window

# A gap this many times the usual slice step means slices are missing.
MISSING_SLICE_FACTOR = 1.5
# Slice steps differing from the usual one by more than this fraction are "uneven".
UNEVEN_TOLERANCE = 0.01
# A slice stack leaning more than this off its normal was acquired with a gantry tilt.
TILT_TOLERANCE_DEGREES = 0.1
ORIENTATION_DECIMALS = 3
# Outside the scanner's field of view CT padding is shown as air.
CT_PADDING_FILL_HU = -1024


@dataclass
class Series:
    """The images of one series that share a grid, in the order they will be stacked."""

    uid: str
    description: str
    modality: str
    rows: int
    columns: int
    header: Dataset
    frames: list[Frame] = field(default_factory=list)
    # Any of its files' pixels compressed (or of an unreadable transfer syntax): decoded by
    # native code (C, C++, Rust) that a damaged file can crash.
    compressed: bool = False

    @property
    def image_count(self) -> int:
        return len(self.frames)


@dataclass
class SeriesInfo:
    """What `list_series` reports to a caller choosing among the series in a folder."""

    uid: str
    description: str
    modality: str
    image_count: int
    rows: int
    columns: int
    compressed: bool = False


@dataclass
class Scan:
    """Everything a folder held: the series found, and what was skipped and why."""

    series: list[Series]
    not_dicom: list[Path]
    damaged: dict[Path, str]
    without_image: list[Path]

    def skipped_warnings(self) -> list[str]:
        warnings = []
        if self.not_dicom:
            warnings.append(f"{len(self.not_dicom)} file(s) that are not DICOM were skipped")
        warnings.extend(f"Damaged file skipped: {path.name} ({why})" for path, why in self.damaged.items())
        return warnings


def _files_below(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def _grid_key(frame: Frame) -> tuple:
    orientation = (
        None if frame.orientation is None else tuple(np.round(frame.orientation, ORIENTATION_DECIMALS))
    )
    return orientation


def scan(path: Path | str, memory_budget: int | None = None) -> Scan:
    """Read the headers (not the pixels) of every file below `path` and group them into series.

    A file whose header cannot be read, or fails the checks of `check_pixel_header` and
    `frames_of`, is recorded as damaged with the reason, and left out.
    """
    path = Path(path)
    budget = checks.memory_budget(memory_budget)
    if not path.exists():
        raise LoadError(f"Nothing found at {path}")
    files = _files_below(path)
    if not files:
        raise LoadError(f"The folder {path} is empty")
    not_dicom: list[Path] = []
    damaged: dict[Path, str] = {}
    without_image: list[Path] = []
    groups: dict[tuple, Series] = {}
    read = dict(zip(files, dicom_scan.read_headers(files, budget), strict=True))
    queue = list(files)
    seen: set[Path] = set()
    while queue:
        file = queue.pop(0)
        if file in seen:
            continue
        seen.add(file)
        found = read.pop(file, None)
        if found is None:  # listed by a DICOMDIR, outside the folder
            found = dicom_scan.read_file(file, budget)
        if found.why:  # damaged, or a DICOMDIR that could not be read
            damaged[file] = found.why
        if found.kind == dicom_scan.NOT_DICOM:
            not_dicom.append(file)
        elif found.kind in (dicom_scan.NO_IMAGE, dicom_scan.DIRECTORY):
            without_image.append(file)
            queue.extend(linked for linked in found.linked if linked not in seen)
        elif found.kind == dicom_scan.IMAGE:
            if found.key not in groups:  # in file order: the first of a key has its header
                header = found.header
                groups[found.key] = Series(
                    uid=found.uid,
                    description=str(header.get("SeriesDescription", "")),
                    modality=str(header.get("Modality", "OT")),
                    rows=found.key[1],
                    columns=found.key[2],
                    header=header,
                )
            groups[found.key].frames.extend(found.frames)
            groups[found.key].compressed |= found.compressed
    series = sorted(groups.values(), key=lambda s: s.image_count, reverse=True)
    return Scan(series=series, not_dicom=not_dicom, damaged=damaged, without_image=without_image)


def list_series(path: Path | str) -> list[SeriesInfo]:
    """The image series below `path`, largest first."""
    return series_infos(scan(path), Path(path))


def series_infos(found: Scan, path: Path) -> list[SeriesInfo]:
    """What `list_series` reports, from a scan already made (headers are read once)."""
    return [
        SeriesInfo(s.uid, s.description, s.modality, s.image_count, s.rows, s.columns, s.compressed)
        for s in _require_series(found, path)
    ]


def _require_series(found: Scan, path: Path) -> list[Series]:
    if found.series:
        return found.series
    parts = []
    if found.not_dicom:
        parts.append(f"{len(found.not_dicom)} file(s) are not DICOM")
    if found.without_image:
        parts.append(f"{len(found.without_image)} DICOM file(s) hold no image (reports, directories)")
    if found.damaged:
        first, why = next(iter(found.damaged.items()))
        parts.append(f"{len(found.damaged)} file(s) are damaged ({first.name}: {why})")
    raise LoadError(f"No DICOM images found in {path}: " + ", ".join(parts))


@dataclass
class SeriesPlan:
    """A series chosen and checked, its frames in slice order, before any pixel is decoded."""

    series: Series
    frames: list[Frame]
    warnings: list[str]
    dtype: np.dtype


def load_dicom(
    path: Path | str,
    series_uid: str | None = None,
    memory_budget: int | None = None,
    slices: tuple[int, int] | None = None,
) -> Volume:
    """Load the largest image series below `path` (or the one with `series_uid`).

    `memory_budget` (bytes; default: checks.memory_budget) bounds each file's declared pixels
    and the assembled volume, checked before anything is allocated; a series over it raises
    TooLargeError, which says how many slices fit. `slices` (first, stop), counted in the
    series' order along its normal, opens only those.
    """
    path = Path(path)
    budget = checks.memory_budget(memory_budget)
    return assemble(plan_series(scan(path, budget), path, series_uid, slices), path, budget)


def plan_series(
    found: Scan, path: Path, series_uid: str | None = None, slices: tuple[int, int] | None = None
) -> SeriesPlan:
    """The series to load from a scan (see load_dicom), its frames ordered and its decoder checked."""
    candidates = _require_series(found, path)
    if series_uid is not None:
        candidates = [s for s in candidates if s.uid == series_uid]
        if not candidates:
            available = ", ".join(f"{s.uid} ({s.image_count} images)" for s in found.series)
            raise LoadError(f"No series {series_uid} in {path}; available: {available}")
    chosen = candidates[0]
    warnings = found.skipped_warnings()
    others = [s for s in found.series if s is not chosen]
    if others and series_uid is None:
        warnings.append(f"{len(others)} other series in this folder were not loaded; choose one by its UID")
    frames, grid_warnings = _consistent_grid(chosen.frames)
    warnings.extend(grid_warnings)
    if slices is not None:
        warnings.append(f"Slices {slices[0] + 1} to {slices[1]} of {len(frames)} opened")
        frames = frames[checks.slice_range(slices, len(frames), path.name)]
    check_decoder(chosen.header, path)
    return SeriesPlan(chosen, frames, warnings, _output_dtype(chosen, frames))


def check_size(plan: SeriesPlan, path: Path, budget: int) -> None:
    """Refuse a volume over the memory budget (TooLargeError) before it is allocated."""
    series = plan.series
    checks.slices_within_budget(
        len(plan.frames),
        series.rows * series.columns * plan.dtype.itemsize,
        budget,
        f"{path.name}: a volume of {len(plan.frames)}×{series.rows}×{series.columns} ({plan.dtype.name})",
    )


def _consistent_grid(frames: list[Frame]) -> tuple[list[Frame], list[str]]:
    """Keep the largest group of frames sharing one orientation and one position each."""
    by_orientation: dict[tuple | None, list[Frame]] = defaultdict(list)
    for frame in frames:
        by_orientation[_grid_key(frame)].append(frame)
    warnings = []
    kept = max(by_orientation.values(), key=len)
    if len(by_orientation) > 1:
        warnings.append(
            f"Mixed orientations: {len(frames) - len(kept)} image(s) with another orientation were left out"
        )
    placed = [frame for frame in kept if frame.position is not None]
    if placed and len(placed) < len(kept):
        names = ", ".join(dict.fromkeys(frame.path.name for frame in kept if frame.position is None))
        warnings.append(f"Image(s) without a slice position left out: {names}")
        kept = placed
    if any(frame.position is None or frame.orientation is None for frame in kept):
        kept = sorted(kept, key=lambda f: f.instance_number)
        if len(kept) > 1:
            warnings.append("No slice positions in the files: slices ordered by instance number")
        return kept, warnings
    normal = _normal(kept[0].orientation)
    kept = sorted(kept, key=lambda f: (float(f.position @ normal), f.instance_number))
    unique: list[Frame] = []
    for frame in kept:
        if unique and abs(float((frame.position - unique[-1].position) @ normal)) < 1e-3:
            continue
        unique.append(frame)
    if len(unique) < len(kept):
        warnings.append(f"{len(kept) - len(unique)} image(s) repeat a slice position and were left out")
    return unique, warnings


def _normal(orientation: np.ndarray) -> np.ndarray:
    normal = np.cross(orientation[:3], orientation[3:])
    return normal / np.linalg.norm(normal)


def _slice_geometry(frames: list[Frame], modality: str) -> tuple[float, list[str]]:
    """Slice spacing from positions along the normal, with warnings on what looks wrong."""
    warnings: list[str] = []
    if len(frames) < 2 or any(frame.position is None or frame.orientation is None for frame in frames):
        return 1.0, warnings
    normal = _normal(frames[0].orientation)
    positions = np.array([f.position for f in frames])
    along = positions @ normal
    steps = np.diff(along)
    step = float(np.median(steps))
    gaps = np.nonzero(steps > MISSING_SLICE_FACTOR * step)[0]
    for gap in gaps:
        missing = round(steps[gap] / step) - 1
        warnings.append(
            f"Missing slices: a gap of {steps[gap]:.2f} mm between slice {gap} and {gap + 1} "
            f"(about {missing} slice(s) missing)"
        )
    regular = np.delete(steps, gaps)
    if regular.size and np.max(np.abs(regular - step)) > UNEVEN_TOLERANCE * step:
        warnings.append(
            f"Uneven slice spacing: steps from {regular.min():.3f} to {regular.max():.3f} mm "
            f"(using {step:.3f} mm)"
        )
    travel = positions[-1] - positions[0]
    cosine = abs(float(travel @ normal)) / max(float(np.linalg.norm(travel)), 1e-9)
    tilt = float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
    if tilt > TILT_TOLERANCE_DEGREES:
        warnings.append(
            f"Gantry tilt of {tilt:.1f}°: slices are shown unsheared, positions in mm are approximate"
        )
    return step, warnings


def _output_dtype(series: Series, frames: list[Frame]) -> np.dtype:
    """int16 or uint16 when every rescaled value fits exactly (HU, raw mammograms), else float32."""
    if int(series.header.get("SamplesPerPixel", 1) or 1) != 1:
        return np.dtype(np.float32)
    stored = _stored_range(series.header)
    low, high = np.inf, -np.inf
    for slope, intercept in {f.rescale for f in frames}:
        if slope != int(slope) or intercept != int(intercept):
            return np.dtype(np.float32)
        ends = (slope * stored[0] + intercept, slope * stored[1] + intercept)
        low, high = min(low, *ends), max(high, *ends)
    for dtype in (np.int16, np.uint16):
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.float32)


def _stored_range(header: Dataset) -> tuple[int, int]:
    bits = int(header.get("BitsStored", 16) or 16)
    if int(header.get("PixelRepresentation", 0) or 0) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _decode(frame: Frame, rows: int, columns: int) -> np.ndarray:
    """One frame's stored values; a decoder's result of another size is refused."""
    if frame.frame_index is None:
        pixels = pixel_array(frame.path)
    else:
        pixels = pixel_array(frame.path, index=frame.frame_index)
    if pixels.shape[:2] != (rows, columns):
        raise checks.HeaderError(f"decoded a {pixels.shape} image where the header declares {rows}×{columns}")
    return pixels


def _to_grey(pixels: np.ndarray, header: Dataset) -> np.ndarray:
    """Colour images (rare in this context, e.g. secondary captures) become luminance."""
    if pixels.ndim == 3:
        from pydicom.pixels import convert_color_space

        if str(header.get("PhotometricInterpretation", "RGB")).startswith("YBR"):
            pixels = convert_color_space(pixels, header.PhotometricInterpretation, "RGB")
        return pixels @ np.array([0.299, 0.587, 0.114])
    return pixels


def assemble(plan: SeriesPlan, path: Path, budget: int) -> Volume:
    """Decode every frame into one preallocated volume; damaged frames are left out, named."""
    series, frames = plan.series, plan.frames
    check_size(plan, path, budget)
    voxels = np.empty((len(frames), series.rows, series.columns), dtype=plan.dtype)
    kept: list[Frame] = []
    damaged: list[str] = []
    for frame in frames:
        pixels, why = decode(frame, series.rows, series.columns)
        if pixels is None:
            damaged.append(f"Damaged file skipped: {frame.path.name} ({why})")
            continue
        write_slice(voxels[len(kept)], pixels, frame, series)
        kept.append(frame)
    if not kept:
        reasons = "; ".join(damaged[:3])
        raise LoadError(f"None of the images in {path} could be read: {reasons}")
    volume = volume_of(series, kept, voxels[: len(kept)], [*plan.warnings, *damaged], path)
    total = monochrome1_total(series.header, kept[0].rescale)
    if total is not None:
        invert_windows(volume, total)
        for z in range(volume.shape[0]):
            invert_slice(volume.voxels[z], total)
    return volume


Decoder = Callable[[Frame, int, int], tuple[np.ndarray | None, str]]


def decode(frame: Frame, rows: int, columns: int) -> tuple[np.ndarray | None, str]:
    """One frame's stored values, or None and why it could not be decoded.

    Decoders fail in every way, Rust ones (pylibjpeg-rle) with a PanicException that derives
    from BaseException only: all but the interpreter's own exits count as a damaged frame.
    """
    try:
        return _decode(frame, rows, columns), ""
    except checks.NOT_FAILURES:
        raise
    except BaseException as error:
        return None, checks.one_line(error)


def decode_into(
    target: np.ndarray, frame: Frame, series: Series, inverted: float | None, decoder: Decoder | None = None
) -> str:
    """Decode one frame into its slice of a volume (see write_slice; `inverted`: the
    monochrome1_total, if any): "" once done, or why the frame could not be decoded (the slice
    is left as it was). `decoder` replaces `decode` (tests plant failing decoders through it)."""
    pixels, why = (decoder or decode)(frame, series.rows, series.columns)
    if pixels is None:
        return why
    write_slice(target, pixels, frame, series)
    if inverted is not None:
        invert_slice(target, inverted)
    return ""


def write_slice(target: np.ndarray, pixels: np.ndarray, frame: Frame, series: Series) -> None:
    """One frame's stored values into its slice of the volume: grey, rescaled, padding masked."""
    header = series.header
    padding = _padding_range(header)
    pixels = _to_grey(pixels, header)
    slope, intercept = frame.rescale
    if padding is not None:
        pad_mask = (pixels >= padding[0]) & (pixels <= padding[1])
    if target.dtype.kind in "iu":
        target[...] = pixels.astype(np.int32) * int(slope) + int(intercept)
    else:
        target[...] = pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    if padding is not None:
        target[pad_mask] = _padding_fill(series, target, pad_mask)


def volume_of(
    series: Series, frames: list[Frame], voxels: np.ndarray, warnings: list[str], path: Path
) -> Volume:
    """The Volume of these frames, stacked as `voxels`: geometry from their positions, the
    first frame's windows, the series' description."""
    header = series.header
    warnings.extend(dict.fromkeys(note for frame in frames for note in frame.notes))
    spacing_z, geometry_warnings = _slice_geometry(frames, series.modality)
    warnings.extend(geometry_warnings)
    first = frames[0]
    if first.pixel_spacing is None:
        warnings.append("No pixel spacing in the file: distances are in pixels, not mm")
        spacing_yx = (1.0, 1.0)
    else:
        spacing_yx = (first.pixel_spacing[0], first.pixel_spacing[1])
    if first.orientation is not None:
        row_dir, col_dir = first.orientation[:3], first.orientation[3:]
        direction = np.column_stack([_normal(first.orientation), col_dir, row_dir])
    else:
        direction = np.eye(3)[:, ::-1]
    origin = tuple(first.position) if first.position is not None else (0.0, 0.0, 0.0)
    meta = _meta(header, series)
    padding = _padding_range(header)
    if padding is not None:
        meta["PixelPadding"] = f"stored values {padding[0]}..{padding[1]} masked"
    return Volume(
        voxels=voxels,
        spacing=(spacing_z, *spacing_yx),
        origin=origin,
        direction=direction,
        modality=series.modality,
        meta=meta,
        windows=list(first.windows),
        warnings=warnings,
        source=path,
        dicom=source_of(frames),
    )


def lowest_value(plan: SeriesPlan) -> float:
    """The lowest value a slice of the plan can hold once rescaled (CT padding shown as air too)."""
    stored = _stored_range(plan.series.header)
    rescales = {frame.rescale for frame in plan.frames}
    low = min(slope * value + intercept for slope, intercept in rescales for value in stored)
    if plan.series.modality == "CT" and _padding_range(plan.series.header) is not None:
        low = min(low, CT_PADDING_FILL_HU)
    return max(low, np.iinfo(plan.dtype).min) if plan.dtype.kind in "iu" else low


def _padding_range(header: Dataset) -> tuple[float, float] | None:
    value = header.get("PixelPaddingValue")
    if value is None:
        return None
    limit = header.get("PixelPaddingRangeLimit", value)
    return float(min(value, limit)), float(max(value, limit))


def _padding_fill(series: Series, target: np.ndarray, pad_mask: np.ndarray) -> float:
    """What padded pixels show: air for CT, the darkest real value otherwise."""
    if series.modality == "CT":
        return CT_PADDING_FILL_HU
    real = target[~pad_mask]
    return float(real.min()) if real.size else 0.0


def monochrome1_total(header: Dataset, rescale: tuple[float, float]) -> float | None:
    """MONOCHROME1 stores dense as dark: v ↦ total − v (the rescaled stored range's ends added)
    flips it so that bright means dense. None for any other photometric interpretation."""
    if str(header.get("PhotometricInterpretation", "")) != "MONOCHROME1":
        return None
    low, high = (rescale[0] * v + rescale[1] for v in _stored_range(header))
    return low + high


def invert_slice(target: np.ndarray, total: float) -> None:
    np.subtract(target.dtype.type(total), target, out=target)


def invert_windows(volume: Volume, total: float) -> None:
    """The windows of a MONOCHROME1 volume flipped with its values (see monochrome1_total)."""
    volume.windows = [Window(w.name, total - w.center, w.width) for w in volume.windows]
    volume.meta["Photometric"] = "MONOCHROME1, inverted for display (bright = dense)"


def _meta(header: Dataset, series: Series) -> dict[str, str]:
    meta = {key: str(header.get(key)) for key in META_KEYWORDS if header.get(key) not in (None, "")}
    meta["SeriesInstanceUID"] = series.uid
    return meta
