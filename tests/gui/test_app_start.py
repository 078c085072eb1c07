"""The app's start: the window is on screen before pyqtgraph's views are built, and they are
built and painted before TensorFlow loads (issue #14)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QSize
from PySide6.QtWidgets import QMainWindow, QWidget

from medvis_desktop.cli import build_parser
from medvis_desktop.gui import app as gui_app
from medvis_desktop.gui.main_window import MainWindow
from medvis_desktop.gui.slice_viewer import SliceViewer


class PaintSpy(QObject):
    """Every widget painted, in order, and the slice viewers the first main window painted
    held at that moment."""

    def __init__(self) -> None:
        super().__init__()
        self.painted: list[QObject] = []
        self.viewers_at_first_paint: int | None = None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and isinstance(watched, QWidget):
            self.painted.append(watched)
            if self.viewers_at_first_paint is None and isinstance(watched, QMainWindow):
                self.viewers_at_first_paint = len(watched.findChildren(SliceViewer))
        return False


def start_app(
    qtbot, qapp, settings, monkeypatch, look: Callable[[MainWindow, PaintSpy], object]
) -> tuple[PaintSpy, object]:
    """Show a window as the app does, its start (which loads TensorFlow first thing) replaced
    by `look` at the window and what was painted so far; returns the spy and what `look` saw,
    once the start has come, and come only once."""
    spy = PaintSpy()
    started = []
    monkeypatch.setattr(gui_app.Script, "start", lambda script: started.append(look(script.window, spy)))
    window = MainWindow(settings)
    qtbot.addWidget(window)
    script = gui_app.Script(window, build_parser().parse_args([]))
    qapp.installEventFilter(spy)
    try:
        script.start_when_painted()
        window.show()
        qtbot.waitUntil(lambda: bool(started), timeout=5000)
    finally:
        qapp.removeEventFilter(spy)
    qtbot.wait(gui_app.START_FALLBACK_MS + 100)  # the fallback timer, too, starts nothing twice
    assert len(started) == 1
    return spy, started[0]


def test_the_start_loading_tensorflow_waits_for_the_windows_first_paint(qtbot, qapp, settings, monkeypatch):
    _, painted = start_app(qtbot, qapp, settings, monkeypatch, lambda window, spy: window in spy.painted)
    assert painted


def test_the_views_are_built_after_the_first_paint_and_painted_before_the_start(
    qtbot, qapp, settings, monkeypatch
):
    spy, track_painted = start_app(
        qtbot, qapp, settings, monkeypatch, lambda window, spy: window.track in spy.painted
    )
    assert spy.viewers_at_first_paint == 0
    assert track_painted


def test_building_the_views_after_the_first_paint_does_not_resize_the_window(qtbot, settings):
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.resize(1400, 900)  # the first start's size (app.run_gui)
    window.show()
    qtbot.waitExposed(window)
    shown = window.size()
    window.build_views()
    qtbot.wait(50)
    assert window.size() == shown


def test_a_window_builds_its_views_once_when_first_used(qtbot, settings):
    window = MainWindow(settings)
    qtbot.addWidget(window)
    assert window.findChildren(SliceViewer) == [] and window.tabs.count() == 1
    assert window.view_menu.isEmpty()
    viewer = window.viewer
    assert window.findChildren(SliceViewer) == [viewer] and window.viewer is viewer
    assert window.tabs.widget(1) is window.activations
    assert window.track_dock.widget() is window.track and window.quality_dock.isAncestorOf(window.quality)
    assert not window.view_menu.isEmpty()
    exports = window.export_menu.actions()
    figure_size = exports.index(window.include_patient) - 1  # the submenu, right above this option
    assert exports[figure_size].text() == "Figure size"


def test_a_first_launch_fits_the_screen():
    """1400 × 900 where there is room; on a 1366 × 768 laptop (less its task bar) or a 1080p
    screen at 150 % (1280 × 720), 90 % of the free area, so the frame fits too."""
    assert gui_app.first_size(QSize(1920, 1040)) == QSize(1400, 900)
    assert gui_app.first_size(QSize(1366, 728)) == QSize(1229, 655)
    assert gui_app.first_size(QSize(1280, 680)) == QSize(1152, 612)
