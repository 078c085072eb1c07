""" "DICOM network…": the PACS node list with a Verify (C-ECHO) per node, this workstation's AE
title and its receiver. Saved in QSettings through DicomNetwork.apply on OK."""

from __future__ import annotations

import itertools
from dataclasses import replace

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medvis_desktop.dicomnet import DicomNetError, verify
from medvis_desktop.dicomnet.node import check_ae_title
from medvis_desktop.gui.pacs_network import DicomNetwork, NetworkConfig, NetworkTask, PacsNode

COLUMNS = ("Name", "AE title", "Host", "Port", "TLS", "CA file", "Certificate", "Key", "", "Verify result")
NAME, AE, HOST, PORT, TLS, CA, CERT, KEY, VERIFY, RESULT = range(len(COLUMNS))
RETRIEVE_METHODS = {"get": "C-GET (nothing listens)", "move": "C-MOVE (to this workstation's receiver)"}
OK_COLOUR, FAILED_COLOUR = QColor(0, 128, 0), QColor(192, 0, 0)
_row_ids = itertools.count(1)


class NetworkDialog(QDialog):
    """Edits a NetworkConfig; OK applies it (saves it, restarts the receiver) or says what is wrong."""

    def __init__(self, network: DicomNetwork, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("DICOM network")
        self.network = network
        config = network.config
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        for entry in config.nodes:
            self.add_node(entry)
        add, remove = QPushButton("Add node"), QPushButton("Remove node")
        add.clicked.connect(self._add_empty)
        remove.clicked.connect(self.remove_selected)
        node_buttons = QHBoxLayout()
        node_buttons.addWidget(add)
        node_buttons.addWidget(remove)
        node_buttons.addStretch()

        self.ae_title = QLineEdit(config.ae_title)
        self.receiver_enabled = QCheckBox("Receive studies (Storage SCP)")
        self.receiver_enabled.setChecked(config.receiver_enabled)
        self.receiver_host = QLineEdit(config.receiver_host)
        self.receiver_host.setToolTip("127.0.0.1 accepts this computer only; 0.0.0.0 every network")
        self.receiver_port = QSpinBox(minimum=1, maximum=65535, value=config.receiver_port)
        self.retrieve_method = QComboBox()
        for key, label in RETRIEVE_METHODS.items():
            self.retrieve_method.addItem(label, key)
        self.retrieve_method.setCurrentIndex(max(0, self.retrieve_method.findData(config.retrieve_method)))
        form = QFormLayout()
        form.addRow("This workstation's AE title", self.ae_title)
        form.addRow(self.receiver_enabled)
        form.addRow("Listen on address", self.receiver_host)
        form.addRow("Listen on port", self.receiver_port)
        form.addRow("Retrieve with", self.retrieve_method)
        form.addRow("Local study store", QLabel(config.store))

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c00000")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("PACS nodes"))
        layout.addWidget(self.table)
        layout.addLayout(node_buttons)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self.resize(1000, 420)

    # --- the node table ------------------------------------------------------------------

    def add_node(self, entry: PacsNode) -> int:
        """Append a row for `entry`; returns its row."""
        row = self.table.rowCount()
        self.table.insertRow(row)
        texts = {NAME: entry.name, AE: entry.ae_title, HOST: entry.host, PORT: str(entry.port),
                 CA: entry.ca_file, CERT: entry.cert_file, KEY: entry.key_file, RESULT: ""}  # fmt: skip
        for column, text in texts.items():
            self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.item(row, NAME).setData(Qt.ItemDataRole.UserRole, next(_row_ids))
        self.table.item(row, RESULT).setFlags(Qt.ItemFlag.ItemIsEnabled)
        tls = QTableWidgetItem()
        tls.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
        tls.setCheckState(Qt.CheckState.Checked if entry.tls else Qt.CheckState.Unchecked)
        self.table.setItem(row, TLS, tls)
        button = QPushButton("Verify")
        button.clicked.connect(self._verify_clicked)
        self.table.setCellWidget(row, VERIFY, button)
        self.table.resizeColumnsToContents()
        return row

    def _add_empty(self) -> None:
        self.table.editItem(self.table.item(self.add_node(PacsNode("PACS", "PACS", "127.0.0.1", 104)), NAME))

    def remove_selected(self) -> None:
        for row in sorted({index.row() for index in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(row)

    def node_entry(self, row: int) -> PacsNode:
        """The row as a PacsNode (not yet checked)."""
        text = {
            column: self.table.item(row, column).text().strip()
            for column in (NAME, AE, HOST, PORT, CA, CERT, KEY)
        }
        try:
            port = int(text[PORT])
        except ValueError:
            raise DicomNetError(f"Node '{text[NAME]}': port {text[PORT]!r} is not a number") from None
        return PacsNode(
            name=text[NAME],
            ae_title=text[AE],
            host=text[HOST],
            port=port,
            tls=self.table.item(row, TLS).checkState() == Qt.CheckState.Checked,
            ca_file=text[CA],
            cert_file=text[CERT],
            key_file=text[KEY],
        )

    # --- Verify --------------------------------------------------------------------------

    def verify(self, row: int) -> NetworkTask | None:
        """C-ECHO the node of `row` off the GUI thread; the result column shows how it went."""
        result = self.table.item(row, RESULT)
        try:
            node = self.node_entry(row).node()
            calling_ae = check_ae_title(self.ae_title.text())
        except DicomNetError as error:
            self._show_result(result, str(error), ok=False)
            return None
        self._show_result(result, "Verifying…", ok=True)
        row_id = self.table.item(row, NAME).data(Qt.ItemDataRole.UserRole)
        task = NetworkTask(lambda _task: verify(node, calling_ae=calling_ae), tag=row_id)
        task.done.connect(self._verified)
        return task.start_now()

    def verify_result(self, row: int) -> str:
        return self.table.item(row, RESULT).text()

    def _verify_clicked(self) -> None:
        for row in range(self.table.rowCount()):
            if self.table.cellWidget(row, VERIFY) is self.sender():
                self.verify(row)

    def _verified(self, task: NetworkTask) -> None:
        for row in range(self.table.rowCount()):  # the row may have moved or gone meanwhile
            if self.table.item(row, NAME).data(Qt.ItemDataRole.UserRole) == task.tag:
                item = self.table.item(row, RESULT)
                if task.error is None:
                    self._show_result(item, f"OK, round trip {task.result * 1000:.0f} ms", ok=True)
                else:
                    self._show_result(item, task.error, ok=False)

    @staticmethod
    def _show_result(item: QTableWidgetItem, text: str, *, ok: bool) -> None:
        item.setText(text)
        item.setToolTip(text)
        item.setForeground(OK_COLOUR if ok else FAILED_COLOUR)

    # --- OK ------------------------------------------------------------------------------

    def config(self) -> NetworkConfig:
        """The edited settings, checked: a DicomNetError names the first thing that is wrong."""
        nodes = tuple(self.node_entry(row) for row in range(self.table.rowCount()))
        names = [entry.name for entry in nodes]
        for entry in nodes:
            if not entry.name:
                raise DicomNetError("Every node needs a name")
            if names.count(entry.name) > 1:
                raise DicomNetError(f"Two nodes are named '{entry.name}'")
            entry.node()
        host = self.receiver_host.text().strip()
        if not host:
            raise DicomNetError("The receiver needs an address to listen on (127.0.0.1: this computer only)")
        return replace(
            self.network.config,
            nodes=nodes,
            ae_title=check_ae_title(self.ae_title.text()),
            receiver_enabled=self.receiver_enabled.isChecked(),
            receiver_host=host,
            receiver_port=self.receiver_port.value(),
            retrieve_method=self.retrieve_method.currentData(),
        )

    def accept(self) -> None:
        try:
            self.network.apply(self.config())
        except DicomNetError as error:
            self.message.setText(str(error))
            return
        super().accept()
