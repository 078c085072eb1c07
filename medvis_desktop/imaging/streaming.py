"""A DICOM series decoded slice by slice into its Volume, so that a viewer shows the first
slices of a 1,000-slice series while the rest load (issue #14). No Qt.

The headers are read once (dicom.scan, which the caller may already have made to list the
series); they fix the slice order, the geometry and the voxel type, so the Volume is allocated
once, filled with the lowest value a slice can hold (black in any window) and its geometry set
before any pixel is decoded. `fill` decodes given slices (those around the one shown first);
`load_rest` decodes the others on a background thread, nearest those first, in chunks, calling
back after each chunk. A slice whose file cannot be decoded stays black and is named in the
Volume's warnings: its neighbours keep their places.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from medvis_desktop.imaging import checks, dicom

# Slices decoded between two callbacks: a view refresh every few tenths of a second.
CHUNK_SLICES = 32

ChunkDone = Callable[[list[int]], None]
Ended = Callable[[str], None]


class SeriesLoad:
    """One series being decoded into `volume`; `loaded[z]` says whether slice z is done."""

    def __init__(self, plan: dicom.SeriesPlan, path: Path, budget: int) -> None:
        dicom.check_size(plan, path, budget)
        series = plan.series
        shape = (len(plan.frames), series.rows, series.columns)
        voxels = np.full(shape, dicom.lowest_value(plan), plan.dtype)
        self.volume = dicom.volume_of(series, plan.frames, voxels, list(plan.warnings), path)
        self.loaded = np.zeros(len(plan.frames), dtype=bool)
        self.error = ""  # why the background load stopped, if it did
        self._plan = plan
        self._inverted = dicom.monochrome1_total(series.header, plan.frames[0].rescale)
        if self._inverted is not None:
            dicom.invert_windows(self.volume, self._inverted)
        self._cancelled = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def complete(self) -> bool:
        return bool(self.loaded.all())

    @property
    def done(self) -> int:
        return int(self.loaded.sum())

    def fill(self, slices: Iterable[int]) -> None:
        """Decode these slices (those not loaded yet) into the volume, in the calling thread."""
        series = self._plan.series
        for z in slices:
            if self.loaded[z] or self._cancelled.is_set():
                continue
            frame = self._plan.frames[z]
            pixels, why = dicom.decode(frame, series.rows, series.columns)
            if pixels is None:
                self.volume.warnings.append(
                    f"Damaged file: slice {z + 1} ({frame.path.name}) is left black: {why}"
                )
            else:
                dicom.write_slice(self.volume.voxels[z], pixels, frame, series)
                if self._inverted is not None:
                    dicom.invert_slice(self.volume.voxels[z], self._inverted)
            self.loaded[z] = True

    def load_rest(self, around: int, chunk_done: ChunkDone, ended: Ended) -> None:
        """Decode every other slice on a background thread, nearest `around` first.

        `chunk_done(slices)` follows each chunk; `ended(error)` comes last, with "" once every
        slice is in, or the one-line reason the load stopped (a folder gone, memory), also kept
        as `error`. Both run on the background thread, neither after `cancel`. Call `fill`
        before this, not while it runs.
        """
        order = sorted(np.flatnonzero(~self.loaded).tolist(), key=lambda z: (abs(z - around), z))
        self._thread = threading.Thread(
            target=self._run, args=(order, chunk_done, ended), name="series-load", daemon=True
        )
        self._thread.start()

    def cancel(self) -> None:
        """Stop the background load (after the slice being decoded) and wait for it."""
        self._cancelled.set()
        self.wait()

    def wait(self) -> None:
        """Block until the background load has ended (at once if none runs)."""
        if self._thread is not None:
            self._thread.join()

    def _run(self, order: list[int], chunk_done: ChunkDone, ended: Ended) -> None:
        try:
            for start in range(0, len(order), CHUNK_SLICES):
                chunk = order[start : start + CHUNK_SLICES]
                self.fill(chunk)
                if self._cancelled.is_set():
                    return
                chunk_done(chunk)
        except Exception as error:  # anything but a damaged file (decode covers those)
            self.error = f"stopped after {self.done} of {len(self.loaded)} slices: {checks.one_line(error)}"
            if not self._cancelled.is_set():
                ended(self.error)
            return
        if not self._cancelled.is_set():
            ended("")
