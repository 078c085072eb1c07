"""GUI speed: redraw rate while scrolling a 512×512 CT with the overlay and a reference outline
on, and launch times.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_scroll.py [--baseline DIR]
        [--launches N] [--no-scroll]

Prints the numbers, asserts nothing. Goals (issue #14): ≥ 200 frames per second while
scrolling, ≤ 0.6 s from launch to the window shown. Launch is measured in a fresh process
started the way `medvis --model M` starts (cli → gui.app): interpreter start to the window's
first paint, then to TensorFlow started and the model open (the layer tree and the method
panel filled).

--baseline DIR measures an older build side by side in the same run, rounds alternating: DIR
is a source tree of it, e.g. `mkdir DIR && git archive HEAD | tar -x -C DIR`. Its whole
package scrolls (each round in a fresh process) and launches. --no-scroll measures the
launches only; --launches N sets how many per build.
Launches read compiled bytecode, as an installed app does (pip compiles it): a first launch of
each build, not counted, writes it into a temporary folder, whatever PYTHONDONTWRITEBYTECODE says.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

HEAD_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
FRAMES = 300
ROUNDS = 5  # scroll rounds per build, alternating
LAUNCHES = 3  # launches per build, alternating, unless --launches says otherwise


class FirstPaint(QObject):
    """Notes the wall-clock time of the first paint of a main window (the app's own filter)."""

    def __init__(self) -> None:
        super().__init__()
        self.at: float | None = None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if self.at is None and event.type() == QEvent.Type.Paint and isinstance(watched, QMainWindow):
            self.at = time.time()
        return False


def launch(model: str, settings_file: str) -> None:
    """Child process: print the wall-clock times at which the window first painted and at which
    the app's start (TensorFlow, the model) was done, then quit once both happened."""
    from medvis_desktop.cli import build_parser
    from medvis_desktop.gui import app as gui_app

    qt_app = QApplication(sys.argv[:1])
    painted = FirstPaint()
    qt_app.installEventFilter(painted)
    ready: list[float] = []
    start = gui_app.Script.start

    def timed_start(script) -> None:
        start(script)
        ready.append(time.time())

    def quit_when_done() -> None:
        if ready and painted.at is not None:
            print(f"{painted.at:.3f} {ready[0]:.3f}")
            qt_app.quit()
        else:
            QTimer.singleShot(10, quit_when_done)

    gui_app.Script.start = timed_start
    QTimer.singleShot(10, quit_when_done)
    args = build_parser().parse_args(["--model", model])
    gui_app.run_gui(args, QSettings(settings_file, QSettings.Format.IniFormat))


def scroll_scene() -> tuple:
    """A 512×512 CT (the head CT doubled), a map on every slice and a reference ball to outline."""
    import numpy as np  # here: a launch child must load only what the app itself loads

    from medvis_desktop import imaging
    from medvis_desktop.explain.runner import Explanation
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
    zz = np.arange(z)[:, None, None]
    ball = (zz - z / 2) ** 2 * 16 + (yy - y / 2) ** 2 + (xx - 2 * x / 3) ** 2 < 60**2
    return volume, explanation, ball


def show_viewer(cls: type, scene: tuple):
    volume, explanation, ball = scene
    viewer = cls()
    viewer.resize(1000, 1000)
    viewer.show()
    viewer.set_volume(volume)
    viewer.set_explanation(explanation)
    viewer.set_reference(ball, "ball")
    return viewer


def scroll_fps(app: QApplication, viewer) -> tuple[float, float]:
    """Frames per second scrolling: painting the view, and rendering the whole viewer widget."""
    app.processEvents()
    z = viewer.volume.shape[0]
    view = viewer.views[0]
    started = time.perf_counter()
    for frame in range(FRAMES):
        viewer.set_slice(frame % z)
        view.viewport().repaint()  # paints now: image, overlay and outline
    fps = FRAMES / (time.perf_counter() - started)
    started = time.perf_counter()
    for frame in range(FRAMES // 5):
        viewer.set_slice(frame % z)
        viewer.grab()  # the whole viewer widget, slider and colour bar included
    return fps, (FRAMES // 5) / (time.perf_counter() - started)


def env_of(tree: Path | None, **extra: str) -> dict[str, str]:
    """This environment, importing the build at `tree` (None: this one) first."""
    env = dict(os.environ, **extra)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    return env


def launch_times(model: Path, folder: str, tree: Path | None) -> tuple[float, float]:
    env = env_of(tree, PYTHONPYCACHEPREFIX=str(Path(folder) / "bytecode"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    settings = Path(folder) / f"settings-{time.monotonic_ns()}.ini"
    started = time.time()
    timings = subprocess.run(
        [sys.executable, __file__, "--launch", str(model), str(settings)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.split()
    shown, ready = (float(value) - started for value in timings[-2:])
    return shown, ready


def medians(rows: list[tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(statistics.median(column) for column in zip(*rows, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="source tree of a build to compare")
    parser.add_argument("--launches", type=int, default=LAUNCHES, metavar="N", help="launches per build")
    parser.add_argument("--no-scroll", action="store_true", help="measure the launches only")
    parser.add_argument("--launch", nargs=2, metavar=("MODEL", "SETTINGS"), help=argparse.SUPPRESS)
    parser.add_argument("--scroll-round", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.launches < 1:
        parser.error("--launches must be at least 1 (--no-scroll measures the launches alone)")
    if args.launch:
        launch(*args.launch)
        return
    if args.scroll_round:
        scroll_round()
        return
    builds = {"this build": None}
    if args.baseline is not None:
        builds["baseline"] = args.baseline.resolve()
    if not args.no_scroll:
        scroll(builds)
    launches = {name: [] for name in builds}
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "bench.keras"
        subprocess.run([sys.executable, "-c", MAKE_MODEL, str(model)], check=True)
        for tree in builds.values():
            launch_times(model, folder, tree)  # compiles the bytecode
        for _ in range(args.launches):
            for name, tree in builds.items():
                launches[name].append(launch_times(model, folder, tree))
    print(f"launch, median of {args.launches} (s), each launch's time to the window painted in brackets:")
    for name, rows in launches.items():
        shown, ready = medians(rows)
        each = " ".join(f"{row[0]:.2f}" for row in rows)
        print(
            f"  {name:>10}: {shown:.2f} to the window painted [{each}],"
            f" {ready:.2f} to TensorFlow and the model"
        )


def scroll(builds: dict[str, Path | None]) -> None:
    """Print the scrolling frame rates of each build, rounds alternating, each round in a fresh
    process that imports the build's whole package."""
    scrolls = {name: [] for name in builds}
    for _ in range(ROUNDS):
        for name, tree in builds.items():
            command = [sys.executable, __file__, "--scroll-round"]
            run = subprocess.run(command, check=True, capture_output=True, text=True, env=env_of(tree))
            output = run.stdout.split()
            scrolls[name].append((float(output[-2]), float(output[-1])))
    print(f"scrolling 512×512 CT with overlay and outline, median of {ROUNDS} rounds (frames/s):")
    for name, rows in scrolls.items():
        fps, widget_fps = medians(rows)
        print(f"  {name:>10}: {fps:4.0f} view repaint, {widget_fps:4.0f} whole viewer widget")


def scroll_round() -> None:
    """Child process: one round of scrolling, after one not counted; prints both rates."""
    from medvis_desktop.gui.slice_viewer import SliceViewer

    app = QApplication(sys.argv[:1])
    viewer = show_viewer(SliceViewer, scroll_scene())
    scroll_fps(app, viewer)
    fps, widget_fps = scroll_fps(app, viewer)
    print(f"{fps:.1f} {widget_fps:.1f}")


MAKE_MODEL = """
import sys, keras
from keras import layers
inputs = keras.Input((128, 128, 1))
h = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
h = layers.MaxPooling2D(2)(h)
h = layers.Conv2D(32, 3, padding="same", activation="relu")(h)
h = layers.GlobalAveragePooling2D()(h)
model = keras.Model(inputs, layers.Dense(2, activation="softmax")(h))
model.save(sys.argv[1])
from medvis_desktop.models.card import default_card_for, write_card
write_card(default_card_for(model)[0], sys.argv[1])  # no dialog about assumed defaults
"""

if __name__ == "__main__":
    main()
