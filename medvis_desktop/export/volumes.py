"""Heat maps as volumes in the source study's own geometry, so they open aligned over it."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medvis_desktop.export.atomic import atomic_write
from medvis_desktop.imaging import itk
from medvis_desktop.imaging.volume import Volume


def save_heatmap(volume: Volume, maps: np.ndarray, path: Path | str) -> Path:
    """Write `maps` (the volume's z, y, x grid) as NIfTI/MHA/NRRD with the volume's geometry,
    atomically and never over the volume's own source.

    Slices that were not computed (NaN) are written as 0: most viewers cannot window NaN.
    """
    if maps.shape != volume.shape:
        raise ValueError(f"Heat map shape {maps.shape} differs from the volume's {volume.shape}")
    path = Path(path)
    voxels = np.nan_to_num(maps.astype(np.float32), nan=0.0)
    with atomic_write(path, source=volume.source) as temporary:
        itk.save_itk(volume, temporary, voxels)
        # SimpleITK's NIfTI writer ignores failed writes (nifti_clib prints and carries on) and
        # its reader pads a short file: only reading the file back tells a full disk.
        if not np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(temporary))), voxels):
            raise OSError(errno.EIO, "the file written does not read back as written")
    return path
