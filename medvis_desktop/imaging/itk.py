"""NIfTI, MHA/MHD and NRRD through SimpleITK, in the Volume's (z, y, x) LPS convention.

The header is read first (`ImageFileReader.ReadImageInformation`) and checked before a voxel
is read: ITK's MetaIO and NIfTI readers otherwise ask for tens of GB from a 100-byte header
(ITK#6853, nifti_clib#196). Checked: dimension 2–4, one component, the voxel bytes against
the file size (when stored raw in the same file) and the memory budget, spacing, origin and
direction finite and sane. ITK turns a NaN NIfTI pixdim into 1 mm without a word, so those
are read from the NIfTI header itself.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medvis_desktop.errors import LoadError
from medvis_desktop.imaging import checks
from medvis_desktop.imaging.volume import Volume

SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
# The array axes are flipped and permuted (never resampled) to lie closest to this
# orientation, so axial slices read like a DICOM axial series: x to the patient's left,
# y to the back, slices from feet to head.
CANONICAL_ORIENTATION = "LPS"


# Enough of an MHA or NRRD file to hold its text header.
HEADER_PEEK_BYTES = 64 * 1024
NIFTI1_HEADER, NIFTI2_HEADER = 348, 540


def handles(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(SUFFIXES)


def _itk_message(error: BaseException) -> str:
    """ITK's own reason without its source paths and object addresses, on one line."""
    for line in str(error).splitlines():
        if "ITK ERROR:" in line:
            return re.sub(r"^.*ITK ERROR:\s*\w+\(0x[0-9a-f]+\):\s*", "", line).strip()
    return checks.one_line(error)


def _component_bytes(pixel_id: int) -> int:
    """Bytes per component, from ITK's pixel type name ("vector of 32-bit float" → 4)."""
    name = sitk.GetPixelIDValueAsString(pixel_id)
    bits = re.search(r"(\d+)-bit", name)
    size = int(bits.group(1)) // 8 if bits else 8
    return 2 * size if name.startswith("complex") else size


def _stored_raw_inline(path: Path) -> bool:
    """True when the voxels follow the header uncompressed in this very file."""
    name = path.name.lower()
    if name.endswith(".nii"):
        return True
    if not name.endswith((".mha", ".nrrd")):
        return False
    with path.open("rb") as handle:
        head = handle.read(HEADER_PEEK_BYTES).decode("latin-1")
    flags = re.MULTILINE | re.IGNORECASE
    if name.endswith(".mha"):
        local = re.search(r"^ElementDataFile\s*=\s*LOCAL\s*$", head, flags)
        return bool(local) and not re.search(r"^CompressedData\s*=\s*True", head, flags)
    raw = re.search(r"^encoding:\s*raw\s*$", head, flags)
    return bool(raw) and not re.search(r"^data ?file:", head, flags)


def _nifti_pixdim(path: Path) -> list[float] | None:
    """The spatial pixdim of a NIfTI-1 or -2 header, or None when it cannot be parsed here."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(NIFTI2_HEADER)
    except (OSError, EOFError):
        return None
    for endian in "<>":
        if len(head) < 4:
            return None
        size = struct.unpack_from(f"{endian}i", head)[0]
        if size == NIFTI1_HEADER and len(head) >= NIFTI1_HEADER:
            ndim = struct.unpack_from(f"{endian}h", head, 40)[0]
            pixdim = struct.unpack_from(f"{endian}8f", head, 76)
        elif size == NIFTI2_HEADER and len(head) >= NIFTI2_HEADER:
            ndim = struct.unpack_from(f"{endian}q", head, 16)[0]
            pixdim = struct.unpack_from(f"{endian}8d", head, 104)
        else:
            continue
        return list(pixdim[1 : 1 + max(1, min(int(ndim), 3))])
    return None


def read_header(path: Path) -> sitk.ImageFileReader:
    """A reader holding the file's header only; no voxel has been read."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise LoadError(
            f"{path.name} could not be read as a NIfTI/MHA/NRRD image: {_itk_message(error)}"
        ) from None
    return reader


def check_header(reader: sitk.ImageFileReader, path: Path, budget: int) -> list[str]:
    """Refuse a header that lies about its size or geometry; warnings on what is left out."""
    dimension = reader.GetDimension()
    if not 2 <= dimension <= 4:
        raise checks.HeaderError(f"{dimension} dimensions; 2, 3 or 4 are supported")
    size = [checks.count(n, f"Size along axis {k}") for k, n in enumerate(reader.GetSize())]
    if reader.GetNumberOfComponents() != 1:
        raise checks.HeaderError("multi-component images (colour, vectors) are not supported")
    nbytes = math.prod(size) * _component_bytes(reader.GetPixelID())
    if _stored_raw_inline(path):
        checks.bytes_present(nbytes, path.stat().st_size, "Voxel data")
    checks.within_budget(nbytes, budget, f"A {'×'.join(map(str, size))} image")
    spatial = min(dimension, 3)
    checks.spacing(reader.GetSpacing()[:spatial], "Spacing")
    checks.position([*reader.GetOrigin()[:spatial], 0.0, 0.0][:3], "Origin")
    matrix = np.asarray(reader.GetDirection(), dtype=np.float64).reshape(dimension, dimension)
    square = np.eye(3)
    square[:spatial, :spatial] = matrix[:spatial, :spatial]
    checks.direction(square, "Direction")
    if path.name.lower().endswith((".nii", ".nii.gz")):
        pixdim = _nifti_pixdim(path)
        if pixdim is not None:
            checks.finite(pixdim, len(pixdim), "NIfTI pixdim")
    if dimension == 4 and size[3] > 1:
        return [f"A 4D image of {size[3]} volumes: only the first is shown"]
    return []


def volume_from_image(image: sitk.Image, *, source: Path | None = None) -> Volume:
    """Convert an ITK image, keeping its geometry exactly (axes reordered to z, y, x)."""
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise LoadError(f"{source}: multi-component images (colour, vectors) are not supported")
    image = sitk.DICOMOrient(image, CANONICAL_ORIENTATION)
    voxels = sitk.GetArrayFromImage(image)
    if voxels.dtype not in (np.int16, np.uint8, np.float32):
        voxels = voxels.astype(np.float32)
    direction_xyz = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    return Volume(
        voxels=voxels,
        spacing=tuple(reversed(image.GetSpacing())),
        origin=image.GetOrigin(),
        direction=direction_xyz[:, ::-1],
        modality="OT",
        source=source,
    )


def image_from_volume(volume: Volume, voxels: np.ndarray | None = None) -> sitk.Image:
    """An ITK image on the volume's grid holding `voxels` (the volume's own by default)."""
    image = sitk.GetImageFromArray(volume.voxels if voxels is None else voxels)
    image.SetSpacing(tuple(reversed(volume.spacing)))
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(volume.direction[:, ::-1].ravel()))
    return image


def load_itk(path: Path, memory_budget: int | None = None) -> Volume:
    """Read the header, check it (see the module's docstring), then the voxels."""
    reader = read_header(path)
    try:
        warnings = check_header(reader, path, checks.memory_budget(memory_budget))
    except checks.HeaderError as error:
        raise checks.HeaderError(f"{path.name}: {error}") from None
    if reader.GetDimension() == 4:
        reader.SetExtractSize([*reader.GetSize()[:3], 0])
        reader.SetExtractIndex([0, 0, 0, 0])
    try:
        volume = volume_from_image(reader.Execute(), source=path)
    except LoadError:
        raise
    except Exception as error:  # ITK RuntimeError, MemoryError: a damaged body after a sane header
        raise LoadError(
            f"{path.name} could not be read as a NIfTI/MHA/NRRD image: {_itk_message(error)}"
        ) from None
    volume.warnings.extend(warnings)
    volume.meta["Format"] = path.name.split(".", 1)[-1].upper()
    return volume


def save_itk(volume: Volume, path: Path, voxels: np.ndarray | None = None) -> None:
    """Write `voxels` (default: the volume's) in the volume's geometry; the suffix picks the format."""
    sitk.WriteImage(image_from_volume(volume, voxels), str(path), useCompression=True)
