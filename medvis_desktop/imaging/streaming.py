"""A DICOM series decoded slice by slice into its Volume, so that a viewer shows the first
slices of a 1,000-slice series while the rest load (issue #14). No Qt.

The headers are read once (dicom.scan, which the caller may already have made to list the
series); they fix the slice order, the geometry and the voxel type, so the Volume is allocated
once, filled with the lowest value a slice can hold (black in any window) and its geometry set
before any pixel is decoded. `fill` decodes given slices (those around the one shown first);
`load_rest` decodes the others on a background thread, nearest those first, calling back after
each chunk. A slice whose file cannot be decoded stays black and is named in the Volume's
warnings: its neighbours keep their places.

Uncompressed pixels are decoded here, by Python and NumPy. Compressed ones go through native
decoders that a damaged file can crash: they are decoded in child processes straight into
voxels shared with them (isolated_slices.py), a crash costing the slice being decoded. Both
kinds take the same path here; only the source of the (slice, why) pairs differs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from pathlib import Path

import numpy as np

from medvis_desktop.imaging import checks, dicom
from medvis_desktop.imaging.isolated_slices import IsolatedSlices, SharedVoxels

# Slices decoded between two callbacks: a view refresh every few tenths of a second.
CHUNK_SLICES = 32

ChunkDone = Callable[[list[int]], None]
Ended = Callable[[str], None]


class _InProcess:
    """Decodes slices in this process (uncompressed pixels: no native decoder involved)."""

    def __init__(
        self,
        plan: dicom.SeriesPlan,
        voxels: np.ndarray,
        inverted: float | None,
        decoder: dicom.Decoder | None,
    ) -> None:
        self._plan, self._voxels, self._inverted, self._decoder = plan, voxels, inverted, decoder

    def slices(self, order: list[int]) -> Iterator[tuple[int, str]]:
        series, frames = self._plan.series, self._plan.frames
        for z in order:
            yield z, dicom.decode_into(self._voxels[z], frames[z], series, self._inverted, self._decoder)

    def stop(self) -> None:
        """Nothing to end: the load stops after the slice being decoded."""


class SeriesLoad:
    """One series being decoded into `volume`; `loaded[z]` says whether slice z is done.

    `decoder` replaces dicom.decode (a module-level function, as a child imports it again):
    tests plant decoders that fail, or crash their process, through it.
    """

    def __init__(
        self, plan: dicom.SeriesPlan, path: Path, budget: int, *, decoder: dicom.Decoder | None = None
    ) -> None:
        dicom.check_size(plan, path, budget)
        series = plan.series
        shape = (len(plan.frames), series.rows, series.columns)
        black = dicom.lowest_value(plan)
        inverted = dicom.monochrome1_total(series.header, plan.frames[0].rescale)
        self._shared: SharedVoxels | None = None
        if series.compressed:
            self._shared = SharedVoxels(shape, plan.dtype)
            voxels = self._shared.array
            voxels[...] = black
            self._decoder: _InProcess | IsolatedSlices = IsolatedSlices(
                plan, self._shared, black, inverted, budget, decoder
            )
        else:
            voxels = np.full(shape, black, plan.dtype)
            self._decoder = _InProcess(plan, voxels, inverted, decoder)
        self.volume = dicom.volume_of(series, plan.frames, voxels, list(plan.warnings), path)
        if inverted is not None:
            dicom.invert_windows(self.volume, inverted)
        self.loaded = np.zeros(len(plan.frames), dtype=bool)
        self.damaged: list[int] = []  # slices left black, named in the volume's warnings
        self.error = ""  # why the background load stopped, if it did
        self._frames = plan.frames
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
        for _ in self._decode(slices):
            pass

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
        """Stop the background load (after the slice being decoded; a child decoding at once)
        and wait for it; the shared memory of a compressed series goes with its volume."""
        self._cancelled.set()
        self._decoder.stop()
        self.wait()
        self._release()

    def wait(self) -> None:
        """Block until the background load has ended (at once if none runs)."""
        if self._thread is not None:
            self._thread.join()

    def _decode(self, slices: Iterable[int]) -> Iterator[int]:
        """Decode the slices not loaded yet, yielding each once it is in (black if damaged);
        stops at `cancel`."""
        order = [z for z in dict.fromkeys(slices) if not self.loaded[z]]
        if self._cancelled.is_set() or not order:
            return
        with closing(self._decoder.slices(order)) as decoded:
            for z, why in decoded:
                if why:
                    self.damaged.append(z)
                    name = self._frames[z].path.name
                    self.volume.warnings.append(f"Damaged file: slice {z + 1} ({name}) is left black: {why}")
                self.loaded[z] = True
                yield z
                if self._cancelled.is_set():
                    return
        if self.complete:
            self._release()

    def _release(self) -> None:
        """No child will map the shared voxels again: give up their file (the array stays)."""
        if self._shared is not None:
            self._shared.close()

    def _run(self, order: list[int], chunk_done: ChunkDone, ended: Ended) -> None:
        chunk: list[int] = []
        try:
            for z in self._decode(order):
                chunk.append(z)
                if len(chunk) == CHUNK_SLICES and not self._cancelled.is_set():
                    chunk_done(chunk)
                    chunk = []
            if chunk and not self._cancelled.is_set():
                chunk_done(chunk)
        except Exception as error:  # anything but a damaged file (decode covers those)
            self.error = f"stopped after {self.done} of {len(self.loaded)} slices: {checks.one_line(error)}"
            if not self._cancelled.is_set():
                ended(self.error)
            return
        if not self._cancelled.is_set():
            ended("")
