"""Start the GUI: `medvis` without a subcommand (options in cli.py), or scripted with --screenshot.

A scripted run opens the study and the model, runs the method, saves the screenshot (at the
user's figure size unless --figure-size or --smooth say otherwise) once the result for the
chosen slice is on screen and exits: 0 on success, 1 with the reason on stderr when something
fails, 2 when nothing happened within TIMEOUT_S.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QSettings, QSize, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from medvis_desktop.gui.main_window import MainWindow
from medvis_desktop.package_data import resource

if TYPE_CHECKING:
    from medvis_desktop.gui.figure import FigureOptions

TIMEOUT_S = 300
# Start anyway this long after show() if the window never paints (shown minimised, say).
START_FALLBACK_MS = 1000
FIRST_DEMO = "ct"
FIRST_SIZE = QSize(1400, 900)  # a first launch's window, made smaller to fit a smaller screen
SCREEN_SHARE = 0.9  # of the screen's free area, leaving room for the window's frame
EXIT_FAILED, EXIT_TIMEOUT = 1, 2


def settings_store() -> QSettings:
    """The user's settings (tests pass their own QSettings to MainWindow instead)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "medvis", "medvis_desktop")


def scripted_settings(folder: Path) -> QSettings:
    """A copy of the user's settings in `folder`: a scripted run (--screenshot) draws with the
    user's overlay style and writes nothing back, neither recent files nor window geometry."""
    user = settings_store()
    user.sync()
    copy = folder / "settings.ini"
    if Path(user.fileName()).is_file():
        shutil.copyfile(user.fileName(), copy)
    return QSettings(str(copy), QSettings.Format.IniFormat)


class Script(QObject):
    """Drives the window through what the command line asked, one step per event-loop turn."""

    def __init__(self, window: MainWindow, args: argparse.Namespace) -> None:
        super().__init__(window)
        self.window = window
        self.args = args
        self.exit_code = 0
        self.scripted = args.screenshot is not None
        self._saved = False
        self._started = False
        if self.scripted:
            window.error_reported.connect(self.fail)
            window.result_shown.connect(self._result_shown)
            QTimer.singleShot(TIMEOUT_S * 1000, self._timed_out)

    def start_when_painted(self) -> None:
        """Build the window's views (pyqtgraph, half a second) on the event-loop turn after its
        first paint, then run `start` on a later turn, once they are laid out and painted. A
        zero-delay timer after show() fired before the window was even exposed: TensorFlow then
        loaded on this thread (seconds) while the window stayed blank."""
        self.window.installEventFilter(self)
        QTimer.singleShot(START_FALLBACK_MS, self._start_once)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.window and event.type() == QEvent.Type.Paint:
            self.window.removeEventFilter(self)
            QTimer.singleShot(0, self._start_once)
        return False

    def _start_once(self) -> None:
        if not self._started:
            self._started = True
            self.window.build_views()
            QTimer.singleShot(0, self.start)

    def start(self) -> None:
        from medvis_desktop.imaging import isolated

        window, args = self.window, self.args
        isolated.start_children()  # its imports run on another core while TensorFlow loads
        window.start_backend()
        demo = args.demo
        if demo is None and not (args.open or args.model or window.recent_paths()):
            demo = FIRST_DEMO  # a first start: show what the tool is for
        if demo is not None and not window.open_demo(demo):
            return
        if args.open and not window.open_volume(args.open):
            return
        if args.model and not window.open_model(args.model, unsafe=args.unsafe):
            return
        if args.slice is not None:
            window.viewer.set_slice(args.slice)
        method = args.method or ("grad_cam" if demo or (self.scripted and args.model) else None)
        if method is None:
            if self.scripted:
                self._save()
            return
        window.panel.select(method=method, layer=args.layer, target=self._target())
        if args.layer is not None and window.panel.settings().layer != args.layer:
            self.window.report_error("Unknown layer", f"{method} cannot use layer '{args.layer}'")
            return
        window.run()

    def _target(self) -> int | None:
        target = self.args.target
        if target is None or self.window.card is None:
            return None
        if target.isdigit():
            return int(target)
        names = self.window.card.class_names
        if target not in names:
            self.window.report_error("Unknown class", f"'{target}' is not one of: {', '.join(names)}")
            return None
        return names.index(target)

    def _result_shown(self, explanation: object) -> None:
        if not self._saved and explanation.computed[self.window.viewer.cursor[0]]:
            self._saved = True
            QTimer.singleShot(0, self._save)  # after the view has taken the new maps

    def _figure_options(self) -> FigureOptions:
        """The window's figure options (the user's settings), as far as the command line does
        not say otherwise (--figure-size, --smooth)."""
        from medvis_desktop.gui.figure import FigureOptions  # pyqtgraph: a window may start without it

        chosen = self.window.figure_options()
        size = self.args.figure_size
        return FigureOptions(chosen.long_side if size is None else size, chosen.smooth or self.args.smooth)

    def _save(self) -> None:
        try:
            path = self.window.export_screenshot(self.args.screenshot, options=self._figure_options())
        except Exception as error:
            self.fail(f"Could not save the screenshot: {error}")
            return
        print(Path(path).resolve())
        self._finish(0)

    def fail(self, message: str) -> None:
        print(f"medvis: {message}", file=sys.stderr)
        self._finish(EXIT_FAILED)

    def _timed_out(self) -> None:
        print(f"medvis: no result within {TIMEOUT_S} s", file=sys.stderr)
        self._finish(EXIT_TIMEOUT)

    def _finish(self, code: int) -> None:
        if self.exit_code == 0:
            self.exit_code = code
        self.window.close()
        QApplication.instance().exit(self.exit_code)


def run_gui(args: argparse.Namespace, settings: QSettings | None = None) -> int:
    """Show the window with what `args` asks; returns the process exit code."""
    if settings is None and args.screenshot is not None:
        with tempfile.TemporaryDirectory(prefix="medvis-script-") as folder:
            return _run_gui(args, scripted_settings(Path(folder)))
    return _run_gui(args, settings or settings_store())


def first_size(available: QSize) -> QSize:
    """FIRST_SIZE, or less on a screen where it would not fit with the window's frame."""
    room = available * SCREEN_SHARE
    return FIRST_SIZE.boundedTo(QSize(int(room.width()), int(room.height())))


def _run_gui(args: argparse.Namespace, settings: QSettings) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("medvis")
    app.setApplicationName("medvis_desktop")
    app.setDesktopFileName("medvis")  # Wayland and task bars match the window to medvis.desktop
    app.setWindowIcon(QIcon(str(resource("icons", "medvis.svg"))))
    window = MainWindow(settings, interactive=args.screenshot is None)
    if window.geometry().width() < 400:  # no size saved from an earlier session
        window.resize(first_size(window.screen().availableSize()))
    script = Script(window, args)
    script.start_when_painted()
    window.show()
    code = app.exec()
    return script.exit_code or code
