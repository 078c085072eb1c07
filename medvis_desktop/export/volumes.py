"""Heat maps as volumes in the source study's own geometry, so they open aligned over it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medvis_desktop.imaging import itk
from medvis_desktop.imaging.volume import Volume


def save_heatmap(volume: Volume, maps: np.ndarray, path: Path | str) -> Path:
    """Write `maps` (the volume's z, y, x grid) as NIfTI/MHA/NRRD with the volume's geometry.

    Slices that were not computed (NaN) are written as 0: most viewers cannot window NaN.
    """
    if maps.shape != volume.shape:
        raise ValueError(f"Heat map shape {maps.shape} differs from the volume's {volume.shape}")
    path = Path(path)
    itk.save_itk(volume, path, np.nan_to_num(maps.astype(np.float32), nan=0.0))
    return path
