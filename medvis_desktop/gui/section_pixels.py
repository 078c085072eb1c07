"""A volume's sections in the form pyqtgraph's fast path draws, made one section at a time.

pyqtgraph draws uint16 (through a 65536-entry table of levels and lookup table) and float32
quickly; other types it rescales on every draw. Converting the whole volume when a study
opens took two seconds and about five times its memory for a 1,000-slice CT series (#14), so
only the section on screen is converted, when it is drawn: a 512×512 slice in about a
millisecond. The offset subtracted from integer voxels is fixed per volume, so the levels of
a window do not change from one section to the next, and slices decoded later (a series
loading in the background) fit without any renewal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medvis_desktop.imaging import Window

UINT16_VALUES = 2**16


@dataclass(frozen=True)
class SectionPixels:
    """How one volume's sections are handed to pyqtgraph: integers as uint16 less `offset`
    (None: as float32)."""

    offset: int | None

    @classmethod
    def of(cls, voxels: np.ndarray) -> SectionPixels:
        """The form for these voxels; O(1) for the types DICOM series load as (8- and 16-bit
        integers take their type's lowest value as offset), one pass without a copy for wider
        integers (their lowest value, if their range fits in 16 bits)."""
        if not np.issubdtype(voxels.dtype, np.integer):
            return cls(None)
        if voxels.dtype.itemsize <= 2:
            return cls(int(np.iinfo(voxels.dtype).min))
        low, high = int(voxels.min()), int(voxels.max())
        return cls(low if high - low < UINT16_VALUES else None)

    def convert(self, section: np.ndarray) -> np.ndarray:
        """One section of the volume, as drawn: one pass over it (none for uint16), as it
        runs on every scroll."""
        if self.offset is None:
            return section.astype(np.float32, copy=False)
        kind, size = section.dtype.kind, section.dtype.itemsize
        if size > 2:
            return (section - section.dtype.type(self.offset)).astype(np.uint16)
        if kind == "u":
            return section.astype(np.uint16, copy=False)
        # Less the type's lowest value (the offset), a signed value is its bits read unsigned
        # with the sign bit flipped.
        unsigned = section.view(f"u{size}")
        return (unsigned ^ unsigned.dtype.type(1 << (8 * size - 1))).astype(np.uint16, copy=False)

    def levels(self, window: Window) -> tuple[float, float]:
        """The window's ends in the drawn values."""
        shift = self.offset or 0
        return window.low - shift, window.high - shift
