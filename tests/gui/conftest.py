"""Real widgets offscreen, real tiny Keras models, real CT slices; never the user's settings."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QApplication, QWidget

from medvis_desktop import imaging
from medvis_desktop.gui.main_window import MainWindow
from medvis_desktop.gui.slice_viewer import PlaneView, SliceViewer
from medvis_desktop.imaging import Volume
from tests.conftest import tiny_classifier

HEAD_SPACING = (1.5, 0.957, 0.957)
INPUT_SIDE = 64
MODAL_POLL_MS = 20
MODAL_POLLS = 500  # ten seconds


def when_modal(kind: type[QWidget], handle: Callable[[QWidget], None]) -> None:
    """Call `handle` on the next modal dialog or popup menu of type `kind` once `exec()` shows
    it (and blocks the test).

    `handle` must close the dialog and should only record what it sees: an assertion failing
    inside it would leave the dialog open and the test waiting for ever.
    """

    def poll(left: int) -> None:
        widget = QApplication.activeModalWidget() or QApplication.activePopupWidget()
        if isinstance(widget, kind) and widget.isVisible():
            handle(widget)
        elif left:
            QTimer.singleShot(MODAL_POLL_MS, lambda: poll(left - 1))

    QTimer.singleShot(0, lambda: poll(MODAL_POLLS))


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    """A settings file of the test's own (MainWindow takes its QSettings as an argument)."""
    return QSettings(str(tmp_path / "medvis.ini"), QSettings.Format.IniFormat)


@pytest.fixture(scope="session")
def ct_volume(head_ct_block: np.ndarray) -> Volume:
    """40 real head CT slices (HU) with the study's spacing and a patient name to keep out."""
    return Volume(
        voxels=head_ct_block,
        spacing=HEAD_SPACING,
        modality="CT",
        meta={"PatientName": "DOE^JANE", "PatientID": "PID-4711"},
    )


@pytest.fixture(scope="session")
def ct_nifti(ct_volume: Volume, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("study") / "head.nii.gz"
    imaging.save(ct_volume, path)
    return path


@pytest.fixture(scope="session")
def tiny_model():
    return tiny_classifier(INPUT_SIDE)


@pytest.fixture(scope="session")
def tiny_model_path(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    tiny_model.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_card():
    from medvis_desktop.models.card import ModelCard

    return ModelCard(
        input_mode="2d", input_shape=(INPUT_SIDE, INPUT_SIDE, 1), class_names=["normal", "lesion"]
    )


def xvfb_medvis(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`medvis ARGS` in a real X window on a virtual screen, with settings of its own."""
    assert shutil.which("xvfb-run"), "xvfb-run is missing: `make test` installs the Debian package xvfb"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("QT_QPA_PLATFORM", None)  # a real X window this time
    command = ["xvfb-run", "-a", sys.executable, "-m", "medvis_desktop.gui", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=280, env=env)


def screen_samples(shot: Path, volume: Volume, step: int = 4):
    """Every `step`-th voxel (rows, columns) of an axial screenshot at the default figure size
    and the RGB pixel it lands on."""
    from medvis_desktop.gui.figure import FigureOptions, place
    from medvis_desktop.gui.slice_viewer import Section

    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    transform = Section.through(0).transform(volume)
    width_mm, height_mm = volume.shape[2] * volume.spacing[2], volume.shape[1] * volume.spacing[1]
    [view] = place([(width_mm, height_mm)], min(volume.spacing[1:]), FigureOptions()).views
    rows, columns = (
        grid.ravel() for grid in np.mgrid[0 : volume.shape[1] : step, 0 : volume.shape[2] : step]
    )
    # Where each sampled voxel's centre lands in the screenshot (mm on screen → PNG pixels).
    centres = np.array([transform.map(c + 0.5, r + 0.5) for r, c in zip(rows, columns, strict=True)])
    pixels = image[
        (view.top() + centres[:, 1] * view.height() / height_mm).astype(int),
        (view.left() + centres[:, 0] * view.width() / width_mm).astype(int),
    ]
    return rows, columns, pixels


def painted_outline(view: PlaneView) -> np.ndarray:
    """RGBA (H, W, 4) of what a view's outline paints over its section, one painted pixel per
    section pixel: placed by the items' own transforms, as the screen places it."""
    height, width = view.image.image.shape[:2]
    picture = QImage(width, height, QImage.Format.Format_ARGB32)
    picture.fill(0)
    if view.outline.isVisible():
        painter = QPainter(picture)
        painter.setTransform(view.outline.transform() * view.image.transform().inverted()[0])
        view.outline.paint(painter)
        painter.end()
    bgra = np.frombuffer(picture.constBits(), np.uint8).reshape(height, width, 4)
    return bgra[..., [2, 1, 0, 3]].copy()


def shown_viewer(qtbot, width: int, height: int) -> SliceViewer:
    """A slice viewer on its own, shown at this size (the tests' fixtures give it a study)."""
    viewer = SliceViewer()
    qtbot.addWidget(viewer)
    viewer.resize(width, height)
    viewer.show()
    return viewer


def make_window(qtbot, settings) -> MainWindow:
    window = MainWindow(settings, interactive=False)
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    window.start_backend()
    return window


@pytest.fixture
def window(qtbot, settings, ct_nifti, tiny_model_path):
    window = make_window(qtbot, settings)
    assert window.open_volume(ct_nifti)
    assert window.open_model(tiny_model_path)
    yield window
    window.close()
    assert not window.relay.worker_thread.isRunning()


def run_and_wait(qtbot, window: MainWindow, method: str = "grad_cam", **choices) -> None:
    window.panel.select(method=method, **choices)
    job_id = window.run()
    assert job_id is not None
    with qtbot.waitSignal(window.relay.finished, timeout=60_000, check_params_cb=lambda done: done == job_id):
        pass
