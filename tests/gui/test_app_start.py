"""The app's start: the window is on screen before TensorFlow loads (issue #14)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QMainWindow

from medvis_desktop.cli import build_parser
from medvis_desktop.gui import app as gui_app
from medvis_desktop.gui.main_window import MainWindow


class PaintSpy(QObject):
    """Every main window painted, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.painted: list[QObject] = []

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and isinstance(watched, QMainWindow):
            self.painted.append(watched)
        return False


def test_the_start_loading_tensorflow_waits_for_the_windows_first_paint(qtbot, qapp, settings, monkeypatch):
    spy = PaintSpy()
    starts = []
    # The real start loads TensorFlow first thing; this one notes whether the window had painted.
    monkeypatch.setattr(gui_app.Script, "start", lambda script: starts.append(script.window in spy.painted))
    window = MainWindow(settings)
    qtbot.addWidget(window)
    script = gui_app.Script(window, build_parser().parse_args([]))
    qapp.installEventFilter(spy)
    try:
        script.start_when_painted()
        window.show()
        qtbot.waitUntil(lambda: bool(starts), timeout=5000)
    finally:
        qapp.removeEventFilter(spy)
    qtbot.wait(gui_app.START_FALLBACK_MS + 100)  # the fallback timer, too, starts nothing twice
    assert starts == [True]
