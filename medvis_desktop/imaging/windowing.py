"""Window/level: the presets a radiologist expects and the mapping to display grey levels."""

from __future__ import annotations

import numpy as np

from medvis_desktop.imaging.volume import Volume, Window

# Standard CT windows in HU (centre, width), as used on common PACS workstations.
CT_PRESETS: tuple[Window, ...] = (
    Window("Brain", 40, 80),
    Window("Subdural", 75, 215),
    Window("Stroke", 32, 8),
    Window("Lung", -600, 1500),
    Window("Mediastinum", 50, 350),
    Window("Abdomen", 50, 400),
    Window("Liver", 60, 160),
    Window("Bone", 400, 1800),
)

# Modalities without calibrated units get a window from the data itself.
AUTO_PERCENTILES = (0.5, 99.5)


def auto_window(voxels: np.ndarray, name: str = "Auto") -> Window:
    """Window spanning the 0.5–99.5 percentiles of the non-background voxels."""
    sample = voxels[:: max(1, voxels.shape[0] // 32)]
    values = sample[sample > sample.min()] if np.any(sample > sample.min()) else sample.ravel()
    low, high = np.percentile(values, AUTO_PERCENTILES)
    width = max(float(high - low), 1e-6)
    return Window(name, float(low) + width / 2, width)


def presets(volume: Volume) -> list[Window]:
    """Windows from the file first, then the modality's standard ones (or an automatic one)."""
    standard = list(CT_PRESETS) if volume.modality == "CT" else [auto_window(volume.voxels)]
    return [*volume.windows, *standard]


def default_window(volume: Volume) -> Window:
    """The first window a viewer shows: the file's own, else Brain for CT, else automatic."""
    if volume.windows:
        return volume.windows[0]
    if volume.modality == "CT":
        return CT_PRESETS[0]
    return auto_window(volume.voxels)


def to_display(values: np.ndarray, window: Window) -> np.ndarray:
    """Grey levels 0–255 (uint8) of `values` seen through `window` (linear, clipped)."""
    scaled = (np.asarray(values, dtype=np.float32) - window.low) / window.width
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
