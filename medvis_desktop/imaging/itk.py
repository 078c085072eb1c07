"""NIfTI, MHA/MHD and NRRD through SimpleITK, in the Volume's (z, y, x) LPS convention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medvis_desktop.errors import LoadError
from medvis_desktop.imaging.volume import Volume

SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
# The array axes are flipped and permuted (never resampled) to lie closest to this
# orientation, so axial slices read like a DICOM axial series: x to the patient's left,
# y to the back, slices from feet to head.
CANONICAL_ORIENTATION = "LPS"


def handles(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(SUFFIXES)


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


def load_itk(path: Path) -> Volume:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise LoadError(f"{path.name} could not be read as a NIfTI/MHA/NRRD image") from error
    volume = volume_from_image(image, source=path)
    volume.meta["Format"] = path.name.split(".", 1)[-1].upper()
    return volume


def save_itk(volume: Volume, path: Path, voxels: np.ndarray | None = None) -> None:
    """Write `voxels` (default: the volume's) in the volume's geometry; the suffix picks the format."""
    sitk.WriteImage(image_from_volume(volume, voxels), str(path), useCompression=True)
