"""Header checks every reader runs before it allocates or decodes anything.

A header is a claim, not a fact: a damaged or hostile file may declare a million frames, a
100000³ grid, NaN positions or a zero rescale slope. DICOM (dicom.py), NIfTI/MHA/NRRD
(itk.py) and InVesalius projects go through the same functions here, so that the same fault is
refused with the same words whichever format carried it. Each check raises `HeaderError` (a
`LoadError`) with a one-line message; the caller adds the file's name.

The memory budget is the most decoded voxel bytes one load may ask for. It defaults to a
quarter of the physical RAM (`DEFAULT_MEMORY_BUDGET`), is overridden by the environment
variable `MEDVIS_MEMORY_BUDGET_MB` (megabytes), and by the `memory_budget` argument (bytes) of
`imaging.load`, in increasing order of precedence.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from medvis_desktop.errors import LoadError

MEMORY_BUDGET_ENV = "MEDVIS_MEMORY_BUDGET_MB"
RAM_FRACTION = 0.25
MB = 1024 * 1024
# No scanner samples coarser than a metre per voxel, nor sits a kilometre from its isocentre.
MAX_SPACING_MM = 1000.0
MAX_COORDINATE_MM = 1e6
# Direction cosines are written with a few decimals: unit and orthogonal to within this.
DIRECTION_TOLERANCE = 1e-2
# Rescale values far beyond any modality's units (HU, SUV, Bq/ml, raw counts).
MAX_RESCALE = 1e9


class HeaderError(LoadError):
    """A header field contradicts the file or the laws of geometry (the message names which)."""


class TooLargeError(HeaderError):
    """A series larger than the memory budget: `fitting` of its `slices` slices would fit, so
    a viewer can offer to open a range of them instead (imaging.load(..., slices=))."""

    def __init__(self, message: str, slices: int, fitting: int) -> None:
        super().__init__(message)
        self.slices = slices
        self.fitting = fitting


def _physical_ram() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 8 * 1024 * MB


DEFAULT_MEMORY_BUDGET = int(_physical_ram() * RAM_FRACTION)


def memory_budget(override: int | None = None) -> int:
    """The budget in bytes: `override`, else $MEDVIS_MEMORY_BUDGET_MB, else a quarter of RAM."""
    if override is not None:
        if override <= 0:
            raise ValueError(f"memory_budget must be positive, got {override}")
        return int(override)
    setting = os.environ.get(MEMORY_BUDGET_ENV, "").strip()
    if setting:
        try:
            megabytes = float(setting)
        except ValueError:
            megabytes = 0.0
        if math.isfinite(megabytes) and megabytes > 0:
            return int(megabytes * MB)
    return DEFAULT_MEMORY_BUDGET


def _size(nbytes: int) -> str:
    if nbytes >= 1024 * MB:
        return f"{nbytes / (1024 * MB):,.1f} GB"
    return f"{nbytes / MB:,.1f} MB"


def _over_budget(nbytes: int, budget: int, what: str) -> str:
    return (
        f"{what} would need {_size(nbytes)}, more than the memory budget of {_size(budget)} "
        f"(set {MEMORY_BUDGET_ENV} to change it)"
    )


def within_budget(nbytes: int, budget: int, what: str) -> None:
    """Refuse before allocating when `what` would need more than the memory budget."""
    if nbytes > budget:
        raise HeaderError(_over_budget(nbytes, budget, what))


def slices_within_budget(slices: int, slice_bytes: int, budget: int, what: str) -> None:
    """As within_budget, for a series: the refusal says how many of its slices would fit."""
    if slices * slice_bytes > budget:
        fitting = budget // slice_bytes
        raise TooLargeError(
            f"{_over_budget(slices * slice_bytes, budget, what)}; {fitting:,} of its {slices:,} slices fit",
            slices,
            fitting,
        )


def slice_range(slices: tuple[int, int], count: int, name: str) -> slice:
    """The slices (first, stop) asked of a series of `count`, refused unless they lie in it."""
    first, stop = slices
    if not 0 <= first < stop <= count:
        raise LoadError(f"{name}: slices {first + 1} to {stop} asked for, the series has 1 to {count}")
    return slice(first, stop)


def bytes_present(declared: int, present: int, what: str) -> None:
    """Refuse a header that declares more data than the file holds (truncated or lying)."""
    if present < declared:
        raise HeaderError(f"{what}: the header declares {declared:,} bytes but the file holds {present:,}")


# Deflate (gzip, zlib) expands at most about 1032 times: n compressed bytes hold at most this
# many times n bytes, whatever a header says.
DEFLATE_MAX_RATIO = 1032


def inflates_to(declared: int, compressed: int, what: str) -> None:
    """Refuse a header that declares more data than its deflate-compressed bytes can hold."""
    if compressed * DEFLATE_MAX_RATIO < declared:
        raise HeaderError(
            f"{what}: the header declares {declared:,} bytes, more than the file's {compressed:,} "
            f"compressed bytes can hold ({DEFLATE_MAX_RATIO}× at most)"
        )


def count(value: object, what: str, *, maximum: int | None = None) -> int:
    """A header count (frames, rows, dimension sizes): an integer ≥ 1 (and ≤ `maximum`)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise HeaderError(f"{what} is not a number ({value!r})") from None
    if not math.isfinite(number) or number != int(number) or number < 1:
        raise HeaderError(f"{what} must be a whole number ≥ 1, not {value!r}")
    if maximum is not None and number > maximum:
        raise HeaderError(f"{what} of {int(number):,} exceeds the limit of {maximum:,}")
    return int(number)


def finite(values: Sequence[float] | np.ndarray, length: int, what: str) -> np.ndarray:
    """`length` numbers, all finite."""
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size != length:
        raise HeaderError(f"{what} needs {length} values, has {array.size}")
    if not np.all(np.isfinite(array)):
        raise HeaderError(f"{what} is not finite ({_show(array)})")
    return array


def _show(array: np.ndarray) -> str:
    return ", ".join(f"{v:g}" for v in array)


def spacing(values: Sequence[float] | np.ndarray, what: str = "Spacing") -> np.ndarray:
    """Voxel sizes in mm: finite, > 0 and below MAX_SPACING_MM."""
    array = finite(values, len(values), what)
    if np.any(array <= 0) or np.any(array > MAX_SPACING_MM):
        raise HeaderError(f"{what} ({_show(array)} mm) must lie in (0, {MAX_SPACING_MM:g}] mm")
    return array


def position(values: Sequence[float] | np.ndarray, what: str = "Position") -> np.ndarray:
    """A point in patient space (mm): finite and within MAX_COORDINATE_MM of the origin."""
    array = finite(values, 3, what)
    if np.any(np.abs(array) > MAX_COORDINATE_MM):
        raise HeaderError(f"{what} ({_show(array)} mm) lies beyond {MAX_COORDINATE_MM:g} mm")
    return array


def direction(matrix: Sequence[float] | np.ndarray, what: str = "Direction") -> np.ndarray:
    """A 3×3 matrix whose columns are unit vectors, orthogonal to each other (within tolerance)."""
    array = finite(matrix, 9, what).reshape(3, 3)
    gram = array.T @ array
    if np.max(np.abs(gram - np.eye(3))) > DIRECTION_TOLERANCE:
        raise HeaderError(f"{what} ({_show(array.ravel())}) is not made of orthogonal unit vectors")
    return array


def orientation(values: Sequence[float] | np.ndarray, what: str = "ImageOrientationPatient") -> np.ndarray:
    """DICOM row and column cosines (6 values): unit vectors, orthogonal within tolerance.

    Returned normalised, so that the few decimals a scanner writes do not add up downstream.
    """
    array = finite(values, 6, what)
    row, column = array[:3], array[3:]
    unit = max(abs(np.linalg.norm(row) - 1), abs(np.linalg.norm(column) - 1))
    if unit > DIRECTION_TOLERANCE or abs(float(row @ column)) > DIRECTION_TOLERANCE:
        raise HeaderError(f"{what} ({_show(array)}) is not two orthogonal unit vectors")
    return np.concatenate([row / np.linalg.norm(row), column / np.linalg.norm(column)])


def rescale(slope: float, intercept: float) -> tuple[float, float]:
    """Rescale slope and intercept: finite, slope non-zero, both within MAX_RESCALE."""
    pair = finite([slope, intercept], 2, "RescaleSlope/RescaleIntercept")
    if pair[0] == 0 or np.any(np.abs(pair) > MAX_RESCALE):
        raise HeaderError(
            f"RescaleSlope {pair[0]:g} / RescaleIntercept {pair[1]:g}: the slope must be non-zero "
            f"and both within ±{MAX_RESCALE:g}"
        )
    return float(pair[0]), float(pair[1])


def window(center: object, width: object) -> tuple[float, float] | None:
    """A display window (centre, width) when both are finite and the width positive, else None.

    A bad window is dropped with a warning by the caller, never a reason to refuse the image.
    """
    try:
        pair = (float(center), float(width))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in pair) or pair[1] <= 0:
        return None
    return pair


def geometry(
    spacing_zyx: Sequence[float], origin: Sequence[float], direction_matrix: np.ndarray, what: str = ""
) -> None:
    """The last word on a loaded Volume's geometry: spacing, origin and direction all sane."""
    prefix = f"{what} " if what else ""
    spacing(spacing_zyx, f"{prefix}spacing")
    position(origin, f"{prefix}origin")
    direction(direction_matrix, f"{prefix}direction")


# What a reader must never swallow: the user's interrupt and the interpreter's own exits.
NOT_FAILURES = (KeyboardInterrupt, SystemExit, GeneratorExit)
MESSAGE_LIMIT = 240


def one_line(error: BaseException) -> str:
    """A failure as one short line: decoders and ITK raise multi-line, path-laden messages."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = " ".join(lines) or type(error).__name__
    if not isinstance(error, LoadError | ValueError | OSError | RuntimeError):
        text = f"{type(error).__name__}: {text}"
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


# Voxels checked for ±inf this many at a time, so the check needs no full-size mask.
_INF_CHECK_CHUNK = 1 << 22


def refuse_infinite_voxels(voxels: np.ndarray, name: str) -> None:
    """Refuse float voxels holding ±inf (an overflowing rescale slope, a damaged float body).

    Refused rather than clipped: a clipped value would be drawn, windowed and fed to a model
    as a real intensity, while nothing in the file says what it should have been. NaN stays
    allowed (it marks "no data" and is shown as such).
    """
    if voxels.dtype.kind not in "fc":
        return
    flat = voxels.reshape(-1)
    for start in range(0, flat.size, _INF_CHECK_CHUNK):
        if np.isinf(flat[start : start + _INF_CHECK_CHUNK]).any():
            raise LoadError(
                f"{name}: the voxels hold infinite values (an overflowing rescale slope or "
                "damaged data); refused rather than clipped to a made-up intensity"
            )


def file_size(nbytes: int, budget: int) -> None:
    """A file larger than the memory budget is refused before a byte of it is parsed.

    Its pixels could not be loaded within the budget anyway, and a huge (often sparse) file
    would otherwise have its header parsers walk gigabytes.
    """
    if nbytes > budget:
        raise HeaderError(
            f"the file is {_size(nbytes)}, more than the memory budget of {_size(budget)} "
            f"(set {MEMORY_BUDGET_ENV} to change it)"
        )
