"""Single raster images (PNG, JPEG, TIFF, BMP) as one-slice volumes.

Single DICOM images (mammograms, radiographs) go through the DICOM loader, which gives them
their pixel spacing, windows and MONOCHROME1 handling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medvis_desktop.errors import LoadError
from medvis_desktop.imaging.volume import Volume

SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def handles(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SUFFIXES


def load_raster(path: Path) -> Volume:
    try:
        with Image.open(path) as image:
            image.load()
            warnings = []
            if image.mode in ("I;16", "I;16B", "I;16L", "I", "F", "L"):
                pixels = np.asarray(image)
            else:
                if image.mode not in ("1", "LA", "P"):
                    warnings.append(f"Colour image ({image.mode}) converted to grey levels")
                pixels = np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise LoadError(f"{path.name} is not a readable image ({error})") from error
    if pixels.dtype not in (np.uint8, np.int16):
        pixels = pixels.astype(np.float32)
    return Volume(
        voxels=pixels[np.newaxis],
        modality="OT",
        meta={"Format": path.suffix.lstrip(".").upper()},
        warnings=[*warnings, "Plain image: no pixel spacing, distances are in pixels"],
        source=path,
    )
