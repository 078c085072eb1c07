"""Opening a 1,000-slice 512×512 CT series in the window: first slices on screen, then the whole
study loaded in the background (#14), next to the old path that read the whole series first.

The series (1,000 files, 500 MB) is written from the real head CT as benchmarks/load_memory.py
writes it, then measured once uncompressed and once compressed (RLE Lossless by default, or
--syntax jpegls; the same voxels, compressed by pydicom). Timed in one process, offscreen:
- the old path: every header (imaging.list_series), then the whole volume (imaging.load; for
  the compressed series imaging.load_isolated, the whole series decoded in one child process);
- the window: MainWindow.open_volume until the view has painted the first slice, then until
  the background load has put in the last one;
- the parts of the first: the headers read once (imaging.scan_dicom, one part per core; and
  for comparison all by this process alone, as before: medians of 3 alternating rounds), the
  volume allocated (imaging.open_series), the first slices decoded;
- the peak of Python and NumPy allocations (tracemalloc) while the series streams into its
  volume, then again with the slice viewer showing it as it comes (as the window does: the
  background's chunks drawn on the main thread), against the voxel bytes. A compressed series'
  voxels are shared with its decoding children, outside tracemalloc's sight: their bytes are
  added, and the children's own peak (resident, not shared with them) is sampled from /proc.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/open_series.py [--slices 1000]
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import argparse
import queue
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
from pydicom import uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load_memory import write_large_series

from medvis_desktop import imaging
from medvis_desktop.imaging import dicom_scan

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication
# Qt and the window's modules are imported in the functions that use them: child processes
# import this script again as their main module, and the app's own main module is light.

POLL_S = 0.01
HEADER_ROUNDS = 3  # the header pass timed alone and shared out, alternating
SYNTAXES = {"rle": uid.RLELossless, "jpegls": uid.JPEGLSLossless}


def timed(what: str, run) -> float:
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    print(f"  {what:52s} {seconds:6.2f} s")
    return seconds


def open_in_window(app: QApplication, folder: str) -> tuple[float, float]:
    """Seconds to the first slice painted, and to the whole study loaded."""
    from PySide6.QtCore import QSettings

    from medvis_desktop.gui.main_window import MainWindow

    settings = QSettings(str(Path(folder) / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings, interactive=False)
    window.resize(1200, 800)
    window.show()
    app.processEvents()
    started = time.perf_counter()
    assert window.open_volume(folder), window.last_error
    window.viewer.views[0].viewport().repaint()
    first = time.perf_counter() - started
    while window._series_load is not None:  # the event loop delivers the background's chunks
        app.processEvents()
        time.sleep(POLL_S)
    whole = time.perf_counter() - started
    assert not window._load_error, window._load_error
    window.close()
    return first, whole


def compress(folder: Path, syntax: str) -> None:
    started = time.perf_counter()
    files = sorted(path for path in folder.iterdir() if path.name.startswith("IM"))
    for path in files:
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(path)
    print(f"compressed {len(files)} files ({syntax.name}) in {time.perf_counter() - started:.1f} s")


def private_bytes(pid: int) -> int:
    """A process's resident memory that is its own (anonymous: not the files, not the shared voxels)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields.get("RssAnon", "0 kB").split()[0]) * 1024


class ChildPeak:
    """Samples the decoding child of a load (whichever is running) for its private memory."""

    def __init__(self, load: imaging.SeriesLoad) -> None:
        self.peak, self._load, self._stop = 0, load, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(POLL_S):
            process = getattr(self._load._decoder, "_process", None)
            if process is not None and process.pid is not None:
                self.peak = max(self.peak, private_bytes(process.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def stream_peak(app: QApplication, folder: str, shown: bool) -> tuple[int, int, int]:
    """Peak bytes allocated while the series streams into its volume (and, if `shown`, into a
    slice viewer showing it as the window does; shared voxels counted whole), its voxel bytes,
    and the decoding children's peak private memory. The headers are read before tracing:
    tracemalloc would slow their Python threefold."""
    from medvis_desktop.gui.slice_viewer import SliceViewer
    from medvis_desktop.gui.study_loader import FIRST_SLICES

    found = imaging.scan_dicom(folder)
    tracemalloc.start()
    load = imaging.open_series(folder, found)
    children = ChildPeak(load)
    chunks: queue.SimpleQueue[list[int] | None] = queue.SimpleQueue()
    viewer = SliceViewer() if shown else None
    if viewer is not None:
        viewer.resize(800, 600)
        viewer.show()
        middle = load.volume.shape[0] // 2
        load.fill(range(middle - FIRST_SLICES // 2, middle + FIRST_SLICES // 2))
        viewer.set_volume(load.volume)
        app.processEvents()
    load.load_rest(load.volume.shape[0] // 2, chunks.put, lambda error: chunks.put(None))
    while (chunk := chunks.get()) is not None:
        if viewer is not None:
            viewer.refresh_slices(chunk)
            app.processEvents()
    load.wait()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if viewer is not None:
        viewer.close()
    voxel_bytes = load.volume.voxels.nbytes
    shared = voxel_bytes if load._shared is not None else 0
    return peak + shared, voxel_bytes, children.stop()


def first_slice_parts(folder: str, slices: int) -> None:
    """The core's share of the time to the first slice; the rest is the window's."""
    from medvis_desktop.gui.study_loader import FIRST_SLICES

    print("parts of the time to the first slice:")
    shared_from = dicom_scan.PARALLEL_FROM
    laps: dict[str, list[float]] = {"alone": [], "shared": []}
    for _ in range(HEADER_ROUNDS):
        for way, parallel_from in (("alone", slices + 1), ("shared", shared_from)):
            dicom_scan.PARALLEL_FROM = parallel_from
            started = time.perf_counter()
            found = imaging.scan_dicom(folder)
            laps[way].append(time.perf_counter() - started)
    alone, shared = (statistics.median(laps[way]) for way in ("alone", "shared"))
    print(f"  {'every header, read by this process alone':52s} {alone:6.2f} s")
    print(f"  {'every header, one reader per core (scan_dicom)':52s} {shared:6.2f} s")
    lap = time.perf_counter()
    load = imaging.open_series(folder, found)
    started, lap = lap, time.perf_counter()
    print(f"  {'the volume allocated (imaging.open_series)':52s} {lap - started:6.2f} s")
    load.fill(range(slices // 2, slices // 2 + FIRST_SLICES))
    started, lap = lap, time.perf_counter()
    print(f"  {f'{FIRST_SLICES} slices decoded (SeriesLoad.fill)':52s} {lap - started:6.2f} s")


def measure(
    app: QApplication, folder: str, slices: int, read_whole: Callable[[str], object]
) -> tuple[float, float]:
    """One series through both paths; the old path's seconds to the first slice and the window's."""
    print("old path, the whole series read before anything is shown:")
    old = timed("every header (imaging.list_series)", lambda: imaging.list_series(folder))
    old += timed(f"the volume ({read_whole.__name__})", lambda: read_whole(folder))
    print(f"  {'in all':52s} {old:6.2f} s")
    print("the window, streaming:")
    first, whole = open_in_window(app, folder)
    print(f"  {'open_volume, first slice painted':52s} {first:6.2f} s   (goal: 2 s)")
    print(f"  {'the whole study loaded in the background':52s} {whole:6.2f} s")
    first_slice_parts(folder, slices)
    print("peak allocations, against the voxel bytes (goal: 1.2×):")
    for what, shown in (("the series streaming into its volume", False), ("… shown by the viewer", True)):
        peak, voxel_bytes, children = stream_peak(app, folder, shown)
        print(f"  {what:52s} {peak / 2**20:6.0f} MiB = {peak / voxel_bytes:.2f}×")
        if children:
            print(f"  {'  decoding child, private (mostly its interpreter)':52s} {children / 2**20:6.0f} MiB")
    return old, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=1000)
    parser.add_argument("--syntax", choices=sorted(SYNTAXES), default="rle")
    args = parser.parse_args()
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])

    with tempfile.TemporaryDirectory() as folder:
        write_large_series(args.slices, Path(folder))
        print("== uncompressed ==")
        plain = measure(app, folder, args.slices, imaging.load)
        compress(Path(folder), SYNTAXES[args.syntax])
        print(f"== compressed ({args.syntax}) ==")
        packed = measure(app, folder, args.slices, imaging.load_isolated)
    print("side by side, seconds to the first slice on screen (old path / streaming):")
    for what, (old, first) in (("uncompressed", plain), (f"compressed ({args.syntax})", packed)):
        print(f"  {what:24s} {old:6.2f} / {first:5.2f} s = {old / first:5.1f}× sooner")


if __name__ == "__main__":
    main()
