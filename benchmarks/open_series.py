"""Opening a 1,000-slice 512×512 CT series in the window, to its first slice on screen (#14).

The series (1,000 files, 500 MB) is written from the real head CT as benchmarks/load_memory.py
writes it. Timed in one process, offscreen: reading every header (imaging.list_series), loading
the volume (imaging.load), and MainWindow.open_volume until the view has painted the first
slice. The issue's goal is 2 s to the first slices, the rest loading in the background; today
the window reads the whole series first.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/open_series.py [--slices 1000]
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load_memory import write_large_series

from medvis_desktop import imaging


def timed(what: str, run) -> float:
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    print(f"  {what:44s} {seconds:6.2f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=1000)
    args = parser.parse_args()
    app = QApplication(sys.argv[:1])
    from medvis_desktop.gui.main_window import MainWindow

    with tempfile.TemporaryDirectory() as folder:
        write_large_series(args.slices, Path(folder))
        timed("every header (imaging.list_series)", lambda: imaging.list_series(folder))
        timed("the volume (imaging.load)", lambda: imaging.load(folder))
        settings = QSettings(str(Path(folder) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings, interactive=False)
        window.resize(1200, 800)
        window.show()
        app.processEvents()

        def open_and_paint() -> None:
            assert window.open_volume(folder), window.last_error
            window.viewer.views[0].viewport().repaint()

        seconds = timed("open in the window, first slice painted", open_and_paint)
        print(f"first slice on screen after {seconds:.2f} s (goal: 2 s)")
        window.close()


if __name__ == "__main__":
    main()
