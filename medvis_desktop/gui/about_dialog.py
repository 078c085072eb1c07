"""Help > About medvis: the version, the device, and every bundled component with its licence text."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QTextCursor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

import medvis_desktop
from medvis_desktop.about import Component, licence_folders

COLUMNS = ("Component", "Version", "Licence", "Role")


class AboutDialog(QDialog):
    """Non-modal: it asks nothing, so it never blocks the window (nor a scripted run)."""

    def __init__(
        self, components: Sequence[Component], device: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("About medvis")
        self.components = tuple(components)
        title = QLabel(
            f"<b>medvis {medvis_desktop.__version__}</b>: why a CNN decided what it did on CT, MRI, "
            "mammograms and radiographs."
        )
        self.device = QLabel()
        self.set_device(device)
        self.table = QTableWidget(len(self.components), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        for row, component in enumerate(self.components):
            cells = (component.name, component.version, component.licence, component.role)
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.text = QPlainTextEdit(readOnly=True)
        # Licence texts are laid out for a fixed-width font (indented headings, ASCII tables).
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        folders = "; ".join(str(folder) for folder in licence_folders(self.components))
        self.folders = QLabel(f"Licence texts on this computer: {folders}")
        self.folders.setWordWrap(True)
        self.folders.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.text)
        layout = QVBoxLayout(self)
        for widget in (title, self.device, splitter, self.folders, buttons):
            layout.addWidget(widget)
        self.table.currentCellChanged.connect(self._show_licence)
        self.table.selectRow(0)
        self.resize(900, 700)

    def set_device(self, device: str | None) -> None:
        """Where TensorFlow computes ("GPU: …" or "CPU: …"); hidden while it is not known."""
        self.device.setText(f"TensorFlow runs on {device}" if device else "")
        self.device.setVisible(bool(device))

    def _show_licence(self, row: int) -> None:
        if 0 <= row < len(self.components):
            self.text.setPlainText(self.components[row].text)
            self.text.moveCursor(QTextCursor.MoveOperation.Start)
