""" "Query PACS…": find studies on a node (C-FIND), expand a study's series, retrieve one series
(C-GET, or C-MOVE to our receiver) into the local store with progress and Cancel, then open it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medvis_desktop.dicomnet import (
    DicomNetError,
    Node,
    RetrieveResult,
    SeriesInfo,
    StudyInfo,
    find_series,
    find_studies,
    retrieve_series,
)
from medvis_desktop.gui.pacs_network import DicomNetwork, NetworkTask
from medvis_desktop.gui.pacs_settings import RETRIEVE_METHODS

COLUMNS = ("Patient", "Patient ID", "Date", "Description", "Modality", "Series / images")
MODALITIES = ("", "CT", "MR", "PT", "CR", "DX", "MG", "US", "NM", "XA")
DATA = Qt.ItemDataRole.UserRole
STUDY_LIMIT = 500  # past this many answers the query is cancelled: the filters need narrowing


class QueryDialog(QDialog):
    """Non-modal; `open_series(folder)` is called when the user opens a retrieved series."""

    def __init__(
        self, network: DicomNetwork, open_series: Callable[[Path], bool], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Query PACS")
        self.network = network
        self.open_series = open_series
        self.search_task: NetworkTask | None = None
        self.retrieve_task: NetworkTask | None = None
        self.retrieved: RetrieveResult | None = None
        self.source: Node | None = None  # the node the listed studies came from

        self.node = QComboBox()
        self.patient_id = QLineEdit()
        self.patient_name = QLineEdit(placeholderText="Doe* (wildcards * and ?)")
        self.study_date = QLineEdit(placeholderText="YYYYMMDD or YYYYMMDD-YYYYMMDD")
        self.modality = QComboBox(editable=True)
        self.modality.addItems(MODALITIES)
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.search)
        form = QFormLayout()
        form.addRow("PACS node", self.node)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Patient name", self.patient_name)
        form.addRow("Study date", self.study_date)
        form.addRow("Modality", self.modality)
        form.addRow(self.search_button)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.itemExpanded.connect(self._expanded)
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.tree.itemDoubleClicked.connect(self._double_clicked)

        self.method = QComboBox()
        for key, label in RETRIEVE_METHODS.items():
            self.method.addItem(label, key)
        self.retrieve_button = QPushButton("Retrieve series")
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button = QPushButton("Open in viewer")
        self.open_button.clicked.connect(self.open_retrieved)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        actions = QHBoxLayout()
        for widget in (
            self.method,
            self.retrieve_button,
            self.progress,
            self.cancel_button,
            self.open_button,
        ):
            actions.addWidget(widget)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.tree)
        layout.addLayout(actions)
        layout.addWidget(self.status)
        self.resize(900, 600)
        network.config_changed.connect(self.reload_settings)
        self.reload_settings()

    def reload_settings(self) -> None:
        """Nodes and the default retrieve method from the network settings."""
        current = self.node.currentText()
        self.node.clear()
        self.node.addItems([entry.name for entry in self.network.config.nodes])
        if current:
            self.node.setCurrentText(current)
        self.method.setCurrentIndex(max(0, self.method.findData(self.network.config.retrieve_method)))
        self._update_buttons()

    # --- C-FIND --------------------------------------------------------------------------

    def search(self) -> NetworkTask | None:
        """The studies matching the filters, off the GUI thread."""
        try:
            node = self.network.node(self.node.currentText())
        except DicomNetError as error:
            return self._fail(str(error))
        filters = {
            "patient_id": self.patient_id.text().strip(),
            "patient_name": self.patient_name.text().strip(),
            "study_date": self.study_date.text().strip(),
            "modality": self.modality.currentText().strip(),
        }
        calling_ae = self.network.config.ae_title
        self.tree.clear()
        self.source = node
        self.status.setText(f"Searching {node}…")
        self.search_button.setEnabled(False)
        self.search_task = NetworkTask(
            lambda _task: find_studies(node, limit=STUDY_LIMIT, calling_ae=calling_ae, **filters)
        )
        self.search_task.done.connect(self._found)
        return self.search_task.start_now()

    def _found(self, task: NetworkTask) -> None:
        self.search_task = None
        self._update_buttons()
        if task.error is not None:
            self._fail(task.error)
            return
        studies: list[StudyInfo] = task.result
        for study in studies:
            counts = f"{_count(study.series_count)} / {_count(study.instance_count)}"
            item = QTreeWidgetItem(
                [
                    study.patient_name,
                    study.patient_id,
                    study.study_date,
                    study.description,
                    "\\".join(study.modalities),
                    counts,
                ]
            )
            item.setData(0, DATA, study)
            item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
            self.tree.addTopLevelItem(item)
        text = f"{len(studies)} studies" + (": expand one to see its series" if studies else "")
        if len(studies) >= STUDY_LIMIT:
            text = f"The first {STUDY_LIMIT} studies only: narrow the filters to see the others"
        self.status.setText(text)
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)

    def study_item(self, study_uid: str) -> QTreeWidgetItem:
        for index in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(index)
            if item.data(0, DATA).study_uid == study_uid:
                return item
        raise KeyError(study_uid)

    def _expanded(self, item: QTreeWidgetItem) -> None:
        if item.parent() is None and item.childCount() == 0:
            self.load_series(item)

    def load_series(self, item: QTreeWidgetItem) -> NetworkTask | None:
        """The series of a study item, listed under it once the PACS answers."""
        node = self.source
        if node is None:
            return self._fail("Search first")
        study: StudyInfo = item.data(0, DATA)
        calling_ae = self.network.config.ae_title
        placeholder = QTreeWidgetItem(["loading series…"])
        item.addChild(placeholder)
        task = NetworkTask(
            lambda _task: find_series(node, study.study_uid, calling_ae=calling_ae), study.study_uid
        )
        task.done.connect(self._series_found)
        return task.start_now()

    def _series_found(self, task: NetworkTask) -> None:
        try:
            item = self.study_item(task.tag)
        except KeyError:  # a new search replaced the list
            return
        item.takeChildren()
        if task.error is not None:
            item.setExpanded(False)
            self._fail(task.error)
            return
        series: list[SeriesInfo] = task.result
        for info in series:
            number = "" if info.series_number is None else f"#{info.series_number} "
            child = QTreeWidgetItem(
                ["", "", "", number + info.description, info.modality, _count(info.instance_count)]
            )
            child.setData(0, DATA, info)
            item.addChild(child)
        item.setExpanded(True)

    def series_item(self, series_uid: str) -> QTreeWidgetItem:
        for index in range(self.tree.topLevelItemCount()):
            study = self.tree.topLevelItem(index)
            for k in range(study.childCount()):
                info = study.child(k).data(0, DATA)
                if isinstance(info, SeriesInfo) and info.series_uid == series_uid:
                    return study.child(k)
        raise KeyError(series_uid)

    def selected_series(self) -> SeriesInfo | None:
        item = self.tree.currentItem()
        info = None if item is None else item.data(0, DATA)
        return info if isinstance(info, SeriesInfo) else None

    # --- C-GET / C-MOVE ------------------------------------------------------------------

    def retrieve(self) -> NetworkTask | None:
        """Bring the selected series into the local store, off the GUI thread, with progress."""
        series = self.selected_series()
        if series is None:
            return self._fail("Choose a series first (expand a study)")
        if self.retrieve_task is not None:
            return self._fail("A retrieve is under way: wait for it or cancel it")
        node = self.source
        if node is None:
            return self._fail("Search first")
        method = self.method.currentData()
        try:
            config, store = self.network.config, self.network.store
        except DicomNetError as error:
            return self._fail(str(error))
        if method == "move" and not self.network.receiver_running:
            return self._fail(
                "C-MOVE sends the series to this workstation's receiver, which is off: turn it on in "
                f"DICOM network settings, and tell {node.ae_title} our AE title {config.ae_title}, "
                "host and port; or retrieve with C-GET"
            )

        def call(task: NetworkTask) -> RetrieveResult:
            return retrieve_series(
                node, series.study_uid, series.series_uid, store, method=method,
                move_destination=config.ae_title if method == "move" else None,
                progress=task.report, cancel=task.is_cancelled, calling_ae=config.ae_title,
            )  # fmt: skip

        self.retrieved = None
        self.progress.setRange(0, max(series.instance_count or 0, 1))
        self.progress.setValue(0)
        self.status.setText(f"Retrieving {series.description or series.series_uid} from {node}…")
        self.retrieve_task = NetworkTask(call)
        self.retrieve_task.progress.connect(self._progress)
        self.retrieve_task.done.connect(self._retrieved)
        self.retrieve_task.start_now()
        self._update_buttons()
        return self.retrieve_task

    def cancel(self) -> None:
        """Ask the PACS to stop (C-CANCEL); what has arrived stays in the store, whole files only."""
        if self.retrieve_task is not None:
            self.retrieve_task.cancel()
            self.status.setText("Cancelling…")
            self.cancel_button.setEnabled(False)

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _retrieved(self, task: NetworkTask) -> None:
        self.retrieve_task = None
        self.network.store_changed.emit()
        if task.error is not None:
            self._fail(task.error)
        else:
            result: RetrieveResult = task.result
            self.retrieved = result
            count = len(result.files)
            if result.cancelled:
                self.status.setText(f"Cancelled: {count} images of the series are in the local store")
            elif result.failed:
                self.status.setText(f"{count} images retrieved, {result.failed} failed ({result.status})")
            else:
                self.status.setText(f"Retrieved {count} images into {result.folder}")
        self._update_buttons()

    def open_retrieved(self) -> bool:
        """Open the retrieved series (what arrived of it, after a cancel) in the viewer."""
        if self.retrieved is None or not self.retrieved.files:
            return False
        return self.open_series(self.retrieved.folder)

    def _double_clicked(self, item: QTreeWidgetItem) -> None:
        if isinstance(item.data(0, DATA), SeriesInfo):
            self.retrieve()

    def _update_buttons(self) -> None:
        running = self.retrieve_task is not None
        self.search_button.setEnabled(self.node.count() > 0 and self.search_task is None)
        self.retrieve_button.setEnabled(not running and self.selected_series() is not None)
        self.cancel_button.setEnabled(running)
        self.open_button.setEnabled(not running and self.retrieved is not None and bool(self.retrieved.files))

    def _fail(self, message: str) -> None:
        self.status.setText(message)
        return None


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)
