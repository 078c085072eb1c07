""" "Save result as DICOM…" and "Send result to PACS…": the explanation on screen as Parametric
Map, Segmentation and Secondary Capture (export.writer.write_dicom_results, the same objects
`medvis explain --dicom-out` writes), saved whole or not at all, or sent with C-STORE off the
GUI thread with one line per instance."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medvis_desktop.dicomnet import DicomNetError, SendStatus, send
from medvis_desktop.dicomnet.association import sop_class_name
from medvis_desktop.errors import MedvisError
from medvis_desktop.export.atomic import ExportError, failure_reason, make_folder
from medvis_desktop.export.deidentify import deidentify_with_source
from medvis_desktop.export.writer import dicom_results_missing, write_dicom_results
from medvis_desktop.gui.pacs_network import DicomNetwork, NetworkTask
from medvis_desktop.gui.pacs_settings import FAILED_COLOUR, OK_COLOUR

if TYPE_CHECKING:
    from medvis_desktop.gui.main_window import MainWindow

REPORT_COLUMNS = ("Object", "File", "Result")


def save_results(
    window: MainWindow, folder: Path | str, *, deidentified: bool = False, pseudonym: str | None = None
) -> tuple[list[Path], str | None]:
    """Write the window's explanation as DICOM into `folder`: (the files, the note of what this
    study cannot have, or None). Written in a hidden folder inside `folder` and moved in only
    when all are written, so an error leaves nothing behind. `deidentified`: the study's source
    instances and the results, de-identified together (export.deidentify), with the warnings
    about burned-in text in the note."""
    if window.explanation is None or window.volume is None:
        raise MedvisError("Nothing to save yet: run a method on a study first")
    folder = make_folder(folder, source=window.volume.source)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".medvis-", dir=folder))
    except OSError as error:
        reason = failure_reason(folder, error)
        raise ExportError(f"Could not save the results in {folder}: {reason}") from None
    moved: list[Path] = []
    notes = [dicom_results_missing(window.volume)]
    try:
        z = window.viewer.cursor[0]
        staged = write_dicom_results(
            window.volume, window.explanation, window.triptych_figure(), z, window.provenance(), staging
        )
        if deidentified:
            done = deidentify_with_source(
                window.volume, staged, staging / "deidentified", patient_pseudonym=pseudonym
            )
            staged = list(done.paths)
            notes += done.warnings
        for path in staged:
            moved.append(folder / path.name)
            os.replace(path, moved[-1])
    except BaseException:
        for path in moved:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return moved, " ".join(note for note in notes if note) or None


class SendDialog(QDialog):
    """Writes the result once (into a temporary folder it owns) and sends it to the chosen node;
    sending again sends only what that node has not stored yet."""

    def __init__(self, network: DicomNetwork, window: MainWindow, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Send result to PACS")
        self.network = network
        self.staging = tempfile.TemporaryDirectory(prefix="medvis-send-")
        self.files, note = save_results(window, self.staging.name)
        self.stored: dict[str, set[Path]] = {}  # node name → files it accepted
        self.task: NetworkTask | None = None
        self.statuses: list[SendStatus] = []
        self._closing = False

        self.node = QComboBox()
        self.node.addItems([entry.name for entry in network.config.nodes])
        self.send_button = QPushButton("Send")
        self.send_button.clicked.connect(self.send)
        self.send_button.setEnabled(self.node.count() > 0)
        form = QFormLayout()
        form.addRow("PACS node", self.node)
        self.note = QLabel(note or "")
        self.note.setWordWrap(True)
        self.note.setVisible(note is not None)
        self.progress = QProgressBar(maximum=len(self.files))
        self.progress.setFormat("%v / %m")
        self.report = QTableWidget(len(self.files), len(REPORT_COLUMNS))
        self.report.setHorizontalHeaderLabels(REPORT_COLUMNS)
        self.report.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, path in enumerate(self.files):
            sop_class = pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID
            for column, text in enumerate((sop_class_name(sop_class), path.name, "not sent")):
                self.report.setItem(row, column, QTableWidgetItem(text))
        self.report.resizeColumnsToContents()
        self.summary = QLabel(
            "No PACS node: add one in DICOM network settings" if not self.node.count() else ""
        )
        self.summary.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(self.report)
        layout.addWidget(self.progress)
        layout.addWidget(self.summary)
        layout.addWidget(self.send_button)
        layout.addWidget(buttons)
        self.resize(760, 320)

    def send(self) -> NetworkTask | None:
        """C-STORE to the chosen node, off the GUI thread; what it already stored is not sent again."""
        name = self.node.currentText()
        try:
            node = self.network.node(name)
        except DicomNetError as error:
            self.summary.setText(str(error))
            return None
        files = [path for path in self.files if path not in self.stored.get(name, set())]
        if not files:
            self.summary.setText(f"{name} has stored every object already")
            return None
        calling_ae = self.network.config.ae_title
        self.send_button.setEnabled(False)
        self.progress.setRange(0, len(files))
        self.progress.setValue(0)
        self.summary.setText(f"Sending {len(files)} objects to {node}…")
        self.task = NetworkTask(
            lambda task: send(node, files, progress=task.report, calling_ae=calling_ae), tag=name
        )
        self.task.progress.connect(self.progress.setValue)
        self.task.done.connect(self._sent)
        return self.task.start_now()

    def _sent(self, task: NetworkTask) -> None:
        self.task = None
        self.send_button.setEnabled(True)
        if self._closing:
            self.staging.cleanup()
            return
        if task.error is not None:
            self.summary.setText(f"Nothing sent: {task.error}")
            return
        self.statuses = task.result
        accepted = self.stored.setdefault(task.tag, set())
        for status in self.statuses:
            row = self.files.index(status.path)
            item = self.report.item(row, 2)
            item.setText(status.message if status.ok else f"failed: {status.message}")
            item.setForeground(OK_COLOUR if status.ok else FAILED_COLOUR)
            if status.ok:
                accepted.add(status.path)
        failed = sum(not status.ok for status in self.statuses)
        self.summary.setText(
            f"{task.tag} stored all {len(self.files)} objects"
            if len(accepted) == len(self.files)
            else f"{failed} of {len(self.statuses)} objects not stored: Send again tries only those"
        )
        self.report.resizeColumnsToContents()

    def done(self, result: int) -> None:
        """Closing removes the temporary files, once a send under way has ended."""
        self._closing = True
        if self.task is None:
            self.staging.cleanup()
        super().done(result)
