"""Volumes and images: DICOM, NIfTI/MHA/NRRD, InVesalius, raster images. No Qt, no TensorFlow.

The public names load their submodule on first use (PEP 562 `__getattr__`): pydicom and
SimpleITK take about half a second to import, which the viewer's window must not wait for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from medvis_desktop.errors import LoadError
from medvis_desktop.lazy import lazy_names

if TYPE_CHECKING:
    from medvis_desktop.imaging.dicom import Scan, SeriesInfo
    from medvis_desktop.imaging.streaming import SeriesLoad
    from medvis_desktop.imaging.volume import Volume

__all__ = [
    "CT_PRESETS",
    "DEFAULT_MEMORY_BUDGET",
    "MEMORY_BUDGET_ENV",
    "LoadError",
    "Scan",
    "SeriesInfo",
    "SeriesLoad",
    "TooLargeError",
    "Volume",
    "Window",
    "default_window",
    "is_dicom",
    "list_series",
    "load",
    "load_isolated",
    "needs_isolation",
    "open_series",
    "presets",
    "save",
    "scan_dicom",
    "series_infos",
    "to_display",
]

# Each public name imported on first use, by the submodule that defines it.
_SOURCES = {
    "DEFAULT_MEMORY_BUDGET": "checks",
    "MEMORY_BUDGET_ENV": "checks",
    "TooLargeError": "checks",
    "Scan": "dicom",
    "SeriesInfo": "dicom",
    "list_series": "dicom",
    "series_infos": "dicom",
    "load_isolated": "isolated",
    "SeriesLoad": "streaming",
    "Volume": "volume",
    "Window": "volume",
    "CT_PRESETS": "windowing",
    "default_window": "windowing",
    "presets": "windowing",
    "to_display": "windowing",
}
# Its submodules, which were its attributes when it imported them all at once.
_SUBMODULES = (
    "checks",
    "dicom",
    "invesalius",
    "isolated",
    "itk",
    "orientation",
    "planar",
    "streaming",
    "volume",
    "windowing",
)

__getattr__, __dir__ = lazy_names(__name__, _SOURCES, _SUBMODULES)


def load(
    path: Path | str,
    *,
    series_uid: str | None = None,
    memory_budget: int | None = None,
    slices: tuple[int, int] | None = None,
) -> Volume:
    """Open a study: a DICOM folder, DICOMDIR or file, a NIfTI/MHA/NRRD, an .inv3, an image.

    Headers are checked before anything is decoded (imaging/checks.py); `memory_budget` (bytes)
    caps the voxels one load may allocate, by default $MEDVIS_MEMORY_BUDGET_MB or a quarter of
    the RAM. A DICOM series over it raises TooLargeError, saying how many slices fit; `slices`
    (first, stop; DICOM series only) then opens a range of them. Every failure is a LoadError
    with a one-line message naming the file, and a loaded Volume always has finite, sane
    spacing, origin and direction.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise LoadError(f"Nothing found at {path}")
    volume = _read(path, series_uid, memory_budget, slices)
    _check_geometry(volume, path)
    return volume


def is_dicom(path: Path | str) -> bool:
    """Whether `path` is read as DICOM: a folder (searched for DICOM files) or a DICOM file."""
    from medvis_desktop.imaging import dicom_scan

    path = Path(path).expanduser()
    return path.is_dir() or dicom_scan.is_dicom_file(path)


def scan_dicom(path: Path | str, memory_budget: int | None = None) -> Scan:
    """Every DICOM header below `path` (no pixels), grouped into series: read once, then handed
    to series_infos, needs_isolation and open_series."""
    from medvis_desktop.imaging import dicom

    return dicom.scan(Path(path).expanduser(), memory_budget)


def open_series(
    path: Path | str,
    found: Scan,
    *,
    series_uid: str | None = None,
    memory_budget: int | None = None,
    slices: tuple[int, int] | None = None,
) -> SeriesLoad:
    """A DICOM series (chosen as `load` chooses) from headers already read, to be decoded slice
    by slice: its Volume is allocated and placed, no pixel decoded yet (see streaming.py);
    compressed slices are decoded in child processes. Raises what `load` raises before
    decoding, TooLargeError included."""
    from medvis_desktop.imaging import checks, dicom
    from medvis_desktop.imaging.streaming import SeriesLoad

    path = Path(path).expanduser()
    budget = checks.memory_budget(memory_budget)
    load = SeriesLoad(dicom.plan_series(found, path, series_uid, slices), path, budget)
    _check_geometry(load.volume, path)
    return load


def _check_geometry(volume: Volume, path: Path) -> None:
    from medvis_desktop.imaging import checks

    try:
        checks.geometry(volume.spacing, volume.origin, volume.direction)
    except checks.HeaderError as error:
        raise checks.HeaderError(f"{path.name}: {error}") from None


def needs_isolation(
    path: Path | str, series_uid: str | None = None, found: list[SeriesInfo] | None = None
) -> bool:
    """Whether reading this study runs native decoders (C, C++, Rust) that a damaged file can
    crash past any Python exception: compressed DICOM pixels, SimpleITK's readers, the image
    codecs. A viewer reads those with load_isolated, or a DICOM series with open_series (which
    decodes compressed slices in child processes); uncompressed DICOM and .inv3 are decoded
    by Python and NumPy after the header checks, and stay on the fast path. Only headers are
    read here, unless `found` gives the series list_series has just read (a damaged header
    answers True: the child process then gives the error)."""
    from medvis_desktop.imaging import dicom, invesalius

    path = Path(path).expanduser()
    if is_dicom(path):
        try:
            found = dicom.list_series(path) if found is None else found
        except LoadError:
            return True
        chosen = [s for s in found if s.uid == series_uid] if series_uid else found[:1]  # as load picks
        return not chosen or any(s.compressed for s in chosen)
    return not invesalius.handles(path)


def _read(
    path: Path, series_uid: str | None, memory_budget: int | None, slices: tuple[int, int] | None
) -> Volume:
    from medvis_desktop.imaging import dicom, invesalius, itk, planar

    if is_dicom(path):
        return dicom.load_dicom(path, series_uid=series_uid, memory_budget=memory_budget, slices=slices)
    if slices is not None:
        raise LoadError(f"{path.name}: a range of slices can be opened from a DICOM series only")
    if itk.handles(path):
        return itk.load_itk(path, memory_budget=memory_budget)
    if invesalius.handles(path):
        return invesalius.load_inv3(path, memory_budget=memory_budget)
    if planar.handles(path):
        return planar.load_raster(path, memory_budget=memory_budget)
    raise LoadError(
        f"{path.name} is neither a DICOM file nor a supported image "
        "(NIfTI .nii/.nii.gz, MHA/MHD, NRRD, InVesalius .inv3, PNG, JPEG, TIFF)"
    )


def save(volume: Volume, path: Path | str) -> None:
    """Write the volume with its geometry (NIfTI, MHA or NRRD by the file suffix)."""
    from medvis_desktop.imaging import itk

    path = Path(path)
    if not path.name.lower().endswith(itk.SUFFIXES):
        raise LoadError(f"Cannot write {path.name}: use .nii, .nii.gz, .mha or .nrrd")
    itk.save_itk(volume, path)
