"""GUI speed: redraw rate while scrolling a 512×512 CT with the overlay on, and launch times.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_scroll.py

Prints the numbers, asserts nothing. Goal: ≥ 60 frames per second while scrolling. Launch is
measured in a fresh process: interpreter start to window shown, then to TensorFlow started
and a small model open (the layer tree and the method panel filled).
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

HEAD_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
FRAMES = 300


def launch(model: str, settings_file: str) -> None:
    """Child process: print the wall-clock times at which the window shows and the model is ready."""
    from medvis_desktop.gui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    window = MainWindow(QSettings(settings_file, QSettings.Format.IniFormat), interactive=False)
    window.show()
    app.processEvents()
    shown = time.time()
    window.start_backend()
    window.open_model(model)
    app.processEvents()
    ready = time.time()
    print(f"{shown:.3f} {ready:.3f}")
    window.close()


def scroll_fps(app: QApplication) -> tuple[float, float]:
    """Frames per second scrolling a 512×512 CT (the head CT doubled) with a full overlay."""
    from medvis_desktop import imaging
    from medvis_desktop.explain.runner import Explanation
    from medvis_desktop.gui.slice_viewer import SliceViewer
    from medvis_desktop.models.card import ModelCard

    head = imaging.load(HEAD_CT)
    voxels = head.voxels[20:84].repeat(2, axis=1).repeat(2, axis=2)
    volume = imaging.Volume(
        voxels, spacing=(head.spacing[0], head.spacing[1] / 2, head.spacing[2] / 2), modality="CT"
    )
    z, y, x = voxels.shape
    yy, xx = np.mgrid[0:y, 0:x]
    maps = np.stack([np.exp(-((yy - y / 2 - 3 * k) ** 2 + (xx - x / 3) ** 2) / 8000.0) for k in range(z)])
    card = ModelCard(input_mode="2d", input_shape=(64, 64, 1))
    explanation = Explanation(
        "grad_cam", "conv", 0, None, maps.astype(np.float32), np.zeros((z, 1)), np.ones(z, bool), card
    )
    viewer = SliceViewer()
    viewer.resize(1000, 1000)
    viewer.show()
    viewer.set_volume(volume)
    viewer.set_explanation(explanation)
    app.processEvents()
    view = viewer.views[0]
    started = time.perf_counter()
    for frame in range(FRAMES):
        viewer.set_slice(frame % z)
        view.viewport().repaint()  # paints now: image and overlay through pyqtgraph's lookup tables
    fps = FRAMES / (time.perf_counter() - started)
    started = time.perf_counter()
    for frame in range(FRAMES // 5):
        viewer.set_slice(frame % z)
        viewer.grab()  # the whole viewer widget, slider and colour bar included
    return fps, (FRAMES // 5) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--launch", nargs=2, metavar=("MODEL", "SETTINGS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.launch:
        launch(*args.launch)
        return
    app = QApplication(sys.argv[:1])
    fps, widget_fps = scroll_fps(app)
    print(f"scrolling 512×512 CT with overlay: {fps:.0f} frames/s (view repaint)")
    print(f"same, rendering the whole viewer widget: {widget_fps:.0f} frames/s")
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "bench.keras"
        subprocess.run([sys.executable, "-c", MAKE_MODEL, str(model)], check=True)
        started = time.time()
        timings = subprocess.run(
            [sys.executable, __file__, "--launch", str(model), str(Path(folder) / "settings.ini")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
    shown, ready = (float(value) - started for value in timings[-2:])
    print(f"launch to window shown: {shown:.2f} s; to TensorFlow started and model ready: {ready:.2f} s")


MAKE_MODEL = """
import sys, keras
from keras import layers
inputs = keras.Input((128, 128, 1))
h = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
h = layers.MaxPooling2D(2)(h)
h = layers.Conv2D(32, 3, padding="same", activation="relu")(h)
h = layers.GlobalAveragePooling2D()(h)
keras.Model(inputs, layers.Dense(2, activation="softmax")(h)).save(sys.argv[1])
"""

if __name__ == "__main__":
    main()
