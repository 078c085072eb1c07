""" "Received studies": the local store's studies and their series, re-read whenever the
receiver files something new or a retrieve ends; double-click a series to open it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLabel, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from medvis_desktop.dicomnet import DicomNetError, StoredSeries, StoredStudy
from medvis_desktop.gui.pacs_network import DicomNetwork

COLUMNS = ("Patient", "Patient ID", "Date", "Description", "Modality", "Images")
DATA = Qt.ItemDataRole.UserRole


class ReceivedStudiesDialog(QDialog):
    """Non-modal list of the local study store; `open_series(folder)` opens a series."""

    def __init__(
        self, network: DicomNetwork, open_series: Callable[[Path], bool], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Received studies")
        self.network = network
        self.open_series = open_series
        self.studies: list[StoredStudy] = []
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        self.status = QLabel()
        self.status.setWordWrap(True)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree)
        layout.addWidget(self.status)
        layout.addWidget(refresh)
        self.resize(800, 400)
        network.store_changed.connect(self.refresh)
        network.config_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the store (one header per series)."""
        try:
            self.studies = self.network.store.studies()
        except DicomNetError as error:
            self.status.setText(str(error))
            return
        except OSError as error:
            self.status.setText(f"Cannot read the local study store {self.network.config.store}: {error}")
            return
        self.tree.clear()
        for study in self.studies:
            item = QTreeWidgetItem(
                [
                    study.patient_name,
                    study.patient_id,
                    study.study_date,
                    study.description,
                    "",
                    str(sum(s.instance_count for s in study.series)),
                ]
            )
            item.setData(0, DATA, study)
            for series in study.series:
                number = "" if series.series_number is None else f"#{series.series_number} "
                child = QTreeWidgetItem(
                    ["", "", "", number + series.description, series.modality, str(series.instance_count)]
                )
                child.setData(0, DATA, series)
                item.addChild(child)
            self.tree.addTopLevelItem(item)
            item.setExpanded(True)
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)
        receiver = self.network.server
        listening = (
            f"receiving as {receiver.ae_title} on {receiver.address[0]}:{receiver.port}"
            if receiver is not None
            else "the receiver is off (DICOM network settings)"
        )
        self.status.setText(f"{len(self.studies)} studies in {self.network.store.root}; {listening}")

    def series_item(self, series_uid: str) -> QTreeWidgetItem:
        for index in range(self.tree.topLevelItemCount()):
            study = self.tree.topLevelItem(index)
            for k in range(study.childCount()):
                if study.child(k).data(0, DATA).series_uid == series_uid:
                    return study.child(k)
        raise KeyError(series_uid)

    def open_item(self, item: QTreeWidgetItem) -> bool:
        """Open a series item, or a study's largest series."""
        data: StoredStudy | StoredSeries = item.data(0, DATA)
        if isinstance(data, StoredStudy):
            if not data.series:
                return False
            data = max(data.series, key=lambda s: s.instance_count)
        return self.open_series(data.folder)

    def _double_clicked(self, item: QTreeWidgetItem) -> None:
        self.open_item(item)
