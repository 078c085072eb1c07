"""Help > About medvis on a real window with TensorFlow started: components, licence texts, device."""

from __future__ import annotations

from importlib.metadata import version

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction

from medvis_desktop import about
from medvis_desktop.gui.about_dialog import AboutDialog
from medvis_desktop.gui.main_window import MainWindow
from medvis_desktop.package_data import resource


def about_action(window: MainWindow) -> QAction:
    (help_menu,) = (a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    (action,) = (a for a in help_menu.actions() if a.text().replace("&", "") == "About medvis…")
    return action


def test_help_about_lists_the_components_and_shows_the_licence_of_the_selected_one(qtbot, settings):
    window = MainWindow(settings, interactive=False)
    qtbot.addWidget(window)
    window.show()
    window.start_backend()
    device = window.status["device"].text()
    assert device.startswith(("CPU: ", "GPU: "))

    about_action(window).trigger()  # would hang here if the dialog were modal
    (dialog,) = window.findChildren(AboutDialog)
    qtbot.waitUntil(dialog.isVisible)
    assert dialog.windowTitle() == "About medvis"
    assert dialog.device.isVisible()
    assert device in dialog.device.text()

    table = dialog.table
    names = [table.item(row, 0).text() for row in range(table.rowCount())]
    assert names == [component.name for component in about.components()]
    roles = [table.item(row, 3).text() for row in range(table.rowCount())]
    assert roles.count("demo data") == len(list(resource("demo").glob("*.json")))
    assert {"medvis", "Python", "TensorFlow", "PySide6-Essentials", "h5py"} <= set(names)

    row = names.index("PySide6-Essentials")
    assert table.item(row, 2).text() == "LGPL-3.0-only OR GPL-2.0-only OR GPL-3.0-only"
    cell = table.visualItemRect(table.item(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=cell.center())
    assert table.currentRow() == row
    shown = dialog.text.toPlainText()
    assert dialog.text.isReadOnly()
    # The wheel ships no licence file: the dialog says so, then shows the system's LGPL-3 text.
    assert shown.startswith(f"No licence file found: PySide6-Essentials {version('PySide6-Essentials')}")
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in shown
    assert "site-packages" in dialog.folders.text()
    assert str(resource("demo")) in dialog.folders.text()

    about_action(window).trigger()  # asked again: the same dialog, raised
    assert window.findChildren(AboutDialog) == [dialog]
    window.close()
    assert not window.relay.worker_thread.isRunning()


def test_before_tensorflow_starts_the_device_is_not_claimed(qtbot, settings):
    window = MainWindow(settings, interactive=False)
    qtbot.addWidget(window)
    window.show()
    dialog = window.show_about()
    assert window.status["device"].text() == "TensorFlow: starting…"
    assert not dialog.device.isVisible()
    assert dialog.text.toPlainText() == about.components()[0].text  # the first row is selected
