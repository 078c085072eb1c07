"""Choose what of a DICOM folder to open: one series when it holds several, a range of slices
when the series is over the memory budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QInputDialog,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:  # imaging.dicom imports pydicom, which the window's start must not wait for
    from medvis_desktop.imaging import SeriesInfo, TooLargeError

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


def ask_slice_range(parent: QWidget, error: TooLargeError) -> tuple[int, int] | None:
    """A series over the memory budget: as many of its slices as fit (error.fitting ≥ 1), from
    the slice the user picks (the middle ones by default); None when the user declines."""
    count = error.fitting
    last_start = error.slices - count + 1
    first, accepted = QInputDialog.getInt(
        parent, "Study too large", f"{error}.\n\nOpen {count:,} slices, from slice:",
        (last_start + 1) // 2, 1, last_start,
    )  # fmt: skip
    return (first - 1, first - 1 + count) if accepted else None
