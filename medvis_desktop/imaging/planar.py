"""Single raster images (PNG, JPEG, TIFF, BMP) as one-slice volumes.

Single DICOM images (mammograms, radiographs) go through the DICOM loader, which gives them
their pixel spacing, windows and MONOCHROME1 handling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medvis_desktop.errors import LoadError
from medvis_desktop.imaging import checks
from medvis_desktop.imaging.volume import Volume

SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def handles(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SUFFIXES


# Bytes per pixel of the array made from an image, at most (float32 from 32-bit modes).
MAX_PIXEL_BYTES = 4


def load_raster(path: Path, memory_budget: int | None = None) -> Volume:
    budget = checks.memory_budget(memory_budget)
    try:
        with Image.open(path) as image:
            width, height = image.size
            try:
                checks.within_budget(width * height * MAX_PIXEL_BYTES, budget, f"A {width}×{height} image")
            except checks.HeaderError as error:
                raise LoadError(f"{path.name}: {error}") from None
            image.load()
            warnings = []
            if image.mode in ("I;16", "I;16B", "I;16L", "I", "F", "L"):
                pixels = np.asarray(image)
            else:
                if image.mode not in ("1", "LA", "P"):
                    warnings.append(f"Colour image ({image.mode}) converted to grey levels")
                pixels = np.asarray(image.convert("L"))
    except LoadError:
        raise
    except Exception as error:
        # Pillow's decoders raise more than OSError/ValueError on damaged data (SyntaxError
        # "broken PNG file", struct.error, EOFError, ...): any of them means an unreadable file.
        raise LoadError(f"{path.name} is not a readable image ({checks.one_line(error)})") from None
    checks.refuse_infinite_voxels(pixels, path.name)
    if pixels.dtype not in (np.uint8, np.int16):
        pixels = pixels.astype(np.float32)
    return Volume(
        voxels=pixels[np.newaxis],
        modality="OT",
        meta={"Format": path.suffix.lstrip(".").upper()},
        warnings=[*warnings, "Plain image: no pixel spacing, distances are in pixels"],
        source=path,
    )
