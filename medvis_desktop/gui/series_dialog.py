"""Choose one series when a DICOM folder holds several."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from medvis_desktop.imaging import SeriesInfo

COLUMNS = ("Description", "Modality", "Images", "Size", "Series UID")


class SeriesDialog(QDialog):
    """A table of the folder's series; the largest is preselected (usually the diagnostic one)."""

    def __init__(self, series: list[SeriesInfo], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a series")
        self.series = series
        self.table = QTableWidget(len(series), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, info in enumerate(series):
            cells = (
                info.description,
                info.modality,
                str(info.image_count),
                f"{info.rows}×{info.columns}",
                info.uid,
            )
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.selectRow(max(range(len(series)), key=lambda k: series[k].image_count))
        self.table.doubleClicked.connect(self.accept)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(720, 320)

    def chosen_uid(self) -> str:
        return self.series[self.table.currentRow()].uid
