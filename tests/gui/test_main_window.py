"""The main window end to end: open, run on the worker, scroll, export, errors, settings."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QContextMenuEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu, QScrollArea

from medvis_desktop import imaging, models
from medvis_desktop.export import OverlayStyle
from medvis_desktop.gui.main_window import MainWindow
from medvis_desktop.models.card import ModelCard
from tests.gui.conftest import make_window, run_and_wait, when_modal


def test_run_shows_the_slice_on_screen_and_each_slices_map_while_scrolling(qtbot, window):
    window.viewer.set_slice(12)
    run_and_wait(qtbot, window, layer="conv2", target=1)

    explanation = window.explanation
    assert explanation.computed.all() and explanation.layer == "conv2" and explanation.target == 1
    for z in (12, 0, 39):
        window.viewer.set_slice(z)
        np.testing.assert_array_equal(window.viewer.views[0].overlay.image, explanation.maps[z])
    assert window.status["slice"].text() == "slice 40/40"
    assert window.status["device"].text().startswith(("CPU", "GPU"))
    assert "tiny.keras" in window.status["model"].text()
    assert window.panel.progress.value() == 40


def test_status_bar_shows_position_in_mm_and_values(window):
    window.explanation = None
    view = window.viewer.views[0]
    view.scene().sigMouseMoved.emit(view.image.mapToScene(QPointF(100.5, 120.5)))
    z = window.viewer.current_slice
    x, y, s = window.volume.index_to_patient(np.array([z, 120, 100]))
    text = window.status["position"].text()
    assert f"L {x:.1f}  P {y:.1f}  S {s:.1f} mm" in text
    assert f"{window.volume.voxels[z, 120, 100]:g}" in text


def metadata_bytes(path: Path) -> bytes:
    """What an exported file holds besides its compressed pixels, where a name could hide: a
    PNG's chunks other than IDAT, a NIfTI's header and extensions. (The compressed pixels hold
    any three bytes, "DOE" too, by chance.)"""
    data = path.read_bytes()
    if path.suffix == ".png":
        chunks, at = [], 8
        while at < len(data):
            (length,) = struct.unpack(">I", data[at : at + 4])
            if data[at + 4 : at + 8] != b"IDAT":
                chunks.append(data[at : at + 12 + length])
            at += 12 + length
        return b"".join(chunks)
    header = gzip.decompress(data)
    (voxel_offset,) = struct.unpack("<f", header[108:112])
    return header[: int(voxel_offset)]


def test_exports_have_provenance_and_no_patient_name(qtbot, window, tmp_path):
    window.volume.meta.update(PatientName="DOE^JANE", PatientID="PID-4711")
    run_and_wait(qtbot, window, "activation_maps", layer="conv2")
    qtbot.waitUntil(lambda: window.activations.mosaic is not None, timeout=30_000)

    outputs = [
        window.export_screenshot(tmp_path / "view.png"),
        window.export_triptych(tmp_path / "triptych.png"),
        window.export_heatmap(tmp_path / "heat.nii.gz"),
        window.export_activations(tmp_path / "maps.png"),
    ]
    for path in outputs:
        assert path.stat().st_size > 1000
        record = json.loads(path.with_name(path.name + ".provenance.json").read_text())
        assert record["outputs"] == [path.name]
        assert record["model_sha256"] and record["input_sha256"]
        assert "DOE" not in json.dumps(record)
        assert b"DOE" not in metadata_bytes(path) and b"PID-4711" not in metadata_bytes(path)
    assert record["layer"] == "conv2"
    assert not any("DOE" in line for line in window.legend())
    window.include_patient.setChecked(True)
    assert any("DOE^JANE" in line and "PID-4711" in line for line in window.legend())


def test_feature_map_mosaic_click_and_deconvolve(qtbot, window):
    run_and_wait(qtbot, window, "activation_maps", layer="conv1")
    qtbot.waitUntil(lambda: window.activations.mosaic is not None, timeout=30_000)
    view = window.activations
    assert view.mosaic.maps.shape[-1] == 6
    assert view.tiles.image.ndim == 2  # one image for every tile
    view.choose(view.tile_at(QPointF(64 + 1 + 3, 2)))  # second tile of the first row
    assert view.chosen == 1

    with qtbot.waitSignal(window.relay.finished, timeout=60_000):
        view.deconvolve.click()
    assert window.explanation.method == "deconvnet" and window.explanation.filter == 1
    assert window.viewer.projection.isVisible()


SMALL_SCREEN = (1280, 680)  # a 1080p laptop at 150 % scaling, less a task bar


def fits_a_small_screen(window: MainWindow) -> bool:
    hint = window.minimumSizeHint()
    return hint.width() <= SMALL_SCREEN[0] and hint.height() <= SMALL_SCREEN[1]


def test_the_window_fits_a_small_screen_before_and_after_a_study(qtbot, settings, ct_nifti, tiny_model_path):
    window = make_window(qtbot, settings)
    assert fits_a_small_screen(window)  # the start page
    assert window.open_volume(ct_nifti) and window.open_model(tiny_model_path)
    run_and_wait(qtbot, window, "activation_maps", layer="conv1")
    window.tabs.setCurrentIndex(1)  # the feature maps and their long caption
    qtbot.waitUntil(lambda: window.activations.mosaic is not None, timeout=30_000)
    assert len(window.activations.caption.text()) > 80
    assert fits_a_small_screen(window)
    window.resize(*SMALL_SCREEN)
    assert window.size().toTuple() == SMALL_SCREEN
    area = window.panel.parentWidget().parentWidget()  # the method panel scrolls up and down only
    assert isinstance(area, QScrollArea)
    qtbot.waitUntil(lambda: window.panel.width() <= area.viewport().width())
    window.close()


def test_a_failed_job_is_a_message_and_the_window_keeps_working(qtbot, window):
    assert not window.open_volume("/nonexistent/study.nii.gz")
    assert "Could not open study.nii.gz" in window.last_error
    good_card = window.card
    window.card = ModelCard(input_mode="2d", input_shape=(32, 32, 1))
    run_and_wait(qtbot, window)
    assert "does not fit" in window.panel.message.text()
    window.card = good_card
    run_and_wait(qtbot, window)
    assert window.explanation.computed.all()


def test_unsafe_model_needs_consent(qtbot, settings, tmp_path):
    inputs = keras.Input((16, 16, 1))
    h = layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    h = layers.Conv2D(2, 3, name="conv")(h)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(h))).save(path)
    window = make_window(qtbot, settings)
    assert not window.open_model(path)
    assert window.last_error.startswith("Refused to open lambda.keras")
    assert window.open_model(path, unsafe=True)
    window.close()


def test_settings_persist_in_the_given_store(qtbot, settings, ct_nifti):
    window = make_window(qtbot, settings)
    window.open_volume(ct_nifti)
    window.panel.set_style(OverlayStyle("inferno", opacity=0.7, threshold=0.35))
    window.close()
    again = make_window(qtbot, settings)
    assert again.panel.style == OverlayStyle("inferno", opacity=0.7, threshold=0.35)
    assert again.viewer.style == again.panel.style
    assert again.recent_menu.actions()[0].text() == str(ct_nifti)
    assert settings.value("folders/volume") == str(ct_nifti.parent)
    again.close()


def drag_and_drop(window: MainWindow, mime: QMimeData) -> bool:
    """Send what the window gets when files are dropped on it; True when it took them."""
    centre = window.rect().center()
    enter = QDragEnterEvent(
        centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(window, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(
        QPointF(centre),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, drop)
    return drop.isAccepted()


def files(*paths) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    return mime


def test_dropping_a_study_and_a_model_opens_them(qtbot, settings, ct_nifti, tiny_model_path):
    window = make_window(qtbot, settings)
    text = QMimeData()
    text.setText("not a file")
    assert not drag_and_drop(window, text)

    assert drag_and_drop(window, files(ct_nifti))
    assert window.volume is not None and window.volume.source == ct_nifti
    assert drag_and_drop(window, files(tiny_model_path))
    assert window.model is not None and window.model_path == tiny_model_path
    window.close()


@pytest.mark.parametrize("method", ["activation_maps", "deconvnet", "grad_cam"])
def test_layer_context_menu_runs_the_method_on_that_layer(qtbot, window, method):
    label = window._method_labels[method]
    tree = window.tree
    item = tree.findItems("conv1", Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchRecursive)[0]
    offered = []

    def choose(menu: QMenu) -> None:
        offered.extend(action.text() for action in menu.actions())
        chosen = next(action for action in menu.actions() if action.text() == f"{label} on conv1")
        menu.close()
        chosen.trigger()

    when_modal(QMenu, choose)
    with qtbot.waitSignal(
        window.relay.finished, timeout=60_000, check_params_cb=lambda done: done == window._job_id
    ):
        position = tree.visualItemRect(item).center()
        event = QContextMenuEvent(
            QContextMenuEvent.Reason.Mouse,
            position,
            tree.viewport().mapToGlobal(position),
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(tree.viewport(), event)

    assert len(offered) == len(window._method_labels)
    assert (window.explanation.method, window.explanation.layer) == (method, "conv1")
    assert window.panel.settings().layer == "conv1"


def test_screenshot_of_all_views_from_the_file_menu(qtbot, window, tmp_path):
    path = tmp_path / "all.png"

    def save_as(dialog: QFileDialog) -> None:
        dialog.selectFile(str(path))
        dialog.accept()

    window.settings.setValue("folders/export", str(tmp_path))
    actions = [action for menu in window.menuBar().findChildren(QMenu) for action in menu.actions()]
    screenshot = next(action for action in actions if action.text() == "Screenshot of all views…")
    when_modal(QFileDialog, save_as)
    screenshot.trigger()

    saved = Image.open(path)
    # Every section is 256 voxels of 0.957 mm wide: the row of three is 1,500 px by default.
    zoom = 1500 / (3 * 256 * 0.957)
    assert saved.info["dpi"] == pytest.approx((25.4 * zoom, 25.4 * zoom), rel=1e-3)
    figure = window.view_figure(all_views=True)
    assert saved.size == (figure.image.width(), figure.image.height())
    shot = np.asarray(saved.convert("L")).astype(int)
    for view in figure.views:
        assert view.width() == 500
        assert shot[view.top() : view.bottom(), view.left() : view.right()].std() > 20  # anatomy in each
    assert path.with_name("all.png.provenance.json").exists()


def test_loading_shows_a_wait_cursor_and_says_what_it_loads(
    qtbot, window, ct_nifti, tiny_model_path, monkeypatch
):
    seen = []

    def spying(load):
        def spy(*args, **kwargs):
            seen.append((QApplication.overrideCursor().shape(), window.statusBar().currentMessage()))
            return load(*args, **kwargs)

        return spy

    monkeypatch.setattr(imaging, "load", spying(imaging.load))
    monkeypatch.setattr(imaging, "load_isolated", spying(imaging.load_isolated))  # NIfTI: SimpleITK, isolated
    monkeypatch.setattr(models, "load_model", spying(models.load_model))
    assert window.open_volume(ct_nifti)
    assert window.open_model(tiny_model_path)

    assert seen == [
        (Qt.CursorShape.WaitCursor, "Opening head.nii.gz…"),
        (Qt.CursorShape.WaitCursor, "Opening the model tiny.keras…"),
    ]
    assert QApplication.overrideCursor() is None


def test_the_window_s_modules_load_no_tensorflow():
    """TensorFlow takes seconds to load: the window shows first and loads it afterwards
    (start_backend), so no module the window is built from may import it. The worker, which
    runs the methods, is imported only once TensorFlow is up; __main__ runs the app."""
    code = (
        "import pkgutil, importlib, sys, medvis_desktop.gui as gui\n"
        "for info in pkgutil.iter_modules(gui.__path__):\n"
        "    if info.name not in ('worker', '__main__'):\n"
        "        importlib.import_module('medvis_desktop.gui.' + info.name)\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
