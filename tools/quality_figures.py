"""The README's pictures of the Quality dock: the real window on the CT demo, measured, and the
Compare methods row.

    .venv/bin/python tools/quality_figures.py [OUT_DIR] [--slice Z]      (default: docs/)

Qt draws offscreen unless QT_QPA_PLATFORM says otherwise; in a real X window on a virtual screen
(`QT_QPA_PLATFORM=xcb xvfb-run -a .venv/bin/python tools/quality_figures.py`) the pictures are
the same. A run takes about a minute, longer on a busy machine.

As `medvis --demo ct` does, the window opens the demo head CT and its model and explains the
whole study with Grad-CAM; then, as a user would, it opens the demo's true lesion mask with
File › Open reference mask, stays on a lesion slice of the block the model never saw, runs
Quality › Measure and saves the window with the dock showing the deletion and insertion curves
(quality_panel.png). Compare methods then runs four methods on the same slice and its row is
saved as the dock's Export picture draws it (compare_methods.png). Every step is one of the
window's own methods, each job awaited in a Qt event loop. The window gets a settings file of
its own in a temporary folder: the user's settings are never read (their overlay style, dock
layout or DICOM receiver would change the pictures) nor written.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["QT_SCALE_FACTOR"] = "1.25"  # the same pictures on any screen, 1.25 × crisper than 96 dpi

from PIL import Image
from PySide6.QtCore import QBuffer, QByteArray, QEventLoop, QIODevice, QObject, QSettings, Qt, QTimer, Slot
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QDockWidget

from medvis_desktop.demo import data, studies
from medvis_desktop.demo.cases import CASES, lesion_slices, load_case
from medvis_desktop.gui.main_window import MainWindow

REPO = Path(__file__).resolve().parents[1]
DEMO = "ct"
# Logical pixels (× QT_SCALE_FACTOR on the picture). The window with its layer tree is at least
# 1371 × 974 and its text would shrink to 7 px in a README 900 px wide; without the tree it is
# at least 985 × 974, about this.
WINDOW_SIZE = (1000, 1000)
MEASURE_DOCK_HEIGHT = 370  # the Quality dock: the curves' plot gets what the minimum sizes leave
# The Quality dock, floating, for the Compare row: less than its minimum, so it takes that (1348 × 601
# with four methods); a taller row would only lengthen the colour bars, the maps' width limits them.
COMPARE_DOCK_SIZE = (1300, 400)
COMPARED = ["grad_cam", "layer_cam", "integrated_gradients", "occlusion"]
TIMEOUT_S = 1800  # a busy two-core machine explains the study in minutes
SETTLE_MS = 500  # for the last result's layout and pyqtgraph's repaint before a picture
MAX_BYTES = 400_000


class JobWaiter(QObject):
    """Runs a Qt event loop until a job of the window's relay has finished or failed."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.finished: set[int] = set()
        self.errors: list[str] = []
        self.loop = QEventLoop(self)
        self.timer = QTimer(self, singleShot=True)
        self.timer.timeout.connect(self.loop.quit)
        self.waiting: int | None = None
        window.relay.finished.connect(self._finished)
        window.error_reported.connect(self._failed)

    @Slot(int)
    def _finished(self, job_id: int) -> None:
        self.finished.add(job_id)
        if job_id == self.waiting:
            self.loop.quit()

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.errors.append(message)
        self.loop.quit()

    def wait(self, job_id: int | None, what: str) -> None:
        if job_id is None or self.errors:
            raise SystemExit(f"{what}: {self.errors or self.window.last_error}")
        self.waiting = job_id
        if job_id not in self.finished:
            print(f"{what}…", flush=True)
            self.timer.start(TIMEOUT_S * 1000)
            self.loop.exec()
            self.timer.stop()
        self.waiting = None
        if self.errors:
            raise SystemExit(f"{what} failed: {self.errors[-1]}")
        if job_id not in self.finished:
            raise SystemExit(f"{what}: not done within {TIMEOUT_S} s")


def settle(milliseconds: int = SETTLE_MS) -> None:
    """Let posted events (layouts, repaints) run for a moment."""
    loop = QEventLoop()
    QTimer.singleShot(milliseconds, loop.quit)
    loop.exec()


def lesion_slice(chosen: int | None) -> int:
    """The slice to measure: `chosen`, else the demo's first slice, which crosses lesions in the
    held-out block."""
    _volume, mask, _model, case = load_case(DEMO)
    z = case.first_slice if chosen is None else chosen
    if z not in lesion_slices(mask) or z not in data.CT_HELD_OUT:
        raise SystemExit(f"Slice {z} is not a lesion slice of the held-out block {data.CT_HELD_OUT}")
    return z


def save_png(image: QImage, path: Path) -> Path:
    """The picture as an optimised PNG: full colour when small enough, else 256 colours."""
    encoded = QByteArray()
    buffer = QBuffer(encoded)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise SystemExit(f"Qt could not encode {path.name}")
    picture = Image.open(io.BytesIO(encoded.data())).convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:
        picture.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            path, optimize=True
        )
    print(f"{path}  {picture.width}×{picture.height}  {path.stat().st_size // 1000} kB")
    return path


def make_figures(out: Path, chosen: int | None) -> None:
    z = lesion_slice(chosen)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="medvis-figures-") as folder:
        settings = QSettings(str(Path(folder) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings, interactive=False)
        window.resize(*WINDOW_SIZE)
        window.show()
        app.processEvents()
        try:
            window.start_backend()
            _draw(window, JobWaiter(window), z, out)
        finally:
            window.close()  # stops the worker thread


def _draw(window: MainWindow, waiter: JobWaiter, z: int, out: Path) -> None:
    if not window.open_demo(DEMO):
        raise SystemExit(window.last_error)
    window.viewer.set_slice(z)
    waiter.wait(window.run(), "Grad-CAM over the whole study")
    if not window.open_reference(studies.study_files(CASES[DEMO].study)[1]):
        raise SystemExit(window.last_error)

    # The layer tree closed, as a user may: the window's other parts then get enough room at a
    # size where the text stays legible once the README shows the picture 900 px wide.
    window.findChild(QDockWidget, "Model layers").close()
    settle()
    window.resize(*WINDOW_SIZE)
    window.resizeDocks([window.quality_dock], [MEASURE_DOCK_HEIGHT], Qt.Orientation.Vertical)
    waiter.wait(window.measure(), f"Measure on slice {z + 1}")
    window.statusBar().clearMessage()  # gone in 15 s anyway; cut short by the status labels
    settle()
    save_png(window.grab().toImage(), out / "quality_panel.png")

    window.show_compare()
    window.quality.compare.choose(COMPARED)
    window.quality_dock.setFloating(True)  # as its title bar's button does: sized for the row
    window.quality_dock.resize(*COMPARE_DOCK_SIZE)
    waiter.wait(window.compare_methods(COMPARED), "Compare methods")
    settle()
    save_png(window.quality.compare.picture(), out / "compare_methods.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path, default=REPO / "docs", help="folder for the PNGs")
    parser.add_argument("--slice", type=int, help="slice to measure, from 0 (default: the demo's own)")
    args = parser.parse_args(argv)
    make_figures(args.out, args.slice)


if __name__ == "__main__":
    main()
