"""The window's PACS menu: DICOM network settings, Query PACS, Received studies, Save result as
DICOM (also de-identified) and Send result to PACS. A mixin of MainWindow, which owns the
DICOM state (`dicom`), the study, the explanation and the error reporting it uses."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QDialog, QFileDialog, QInputDialog, QMessageBox

from medvis_desktop.errors import MedvisError


class PacsMenu:
    """The PACS actions of MainWindow (see there for the attributes they use)."""

    def _add_pacs_menu(self) -> None:
        pacs_menu = self.menuBar().addMenu("&PACS")
        pacs_menu.addAction("&Query PACS…", self.show_query_pacs)
        pacs_menu.addAction("&Received studies", self.show_received_studies)
        pacs_menu.addSeparator()
        pacs_menu.addAction("&Save result as DICOM…", self.save_result_dicom)
        pacs_menu.addAction(
            "Save &de-identified result as DICOM…", lambda: self.save_result_dicom(deidentified=True)
        )
        pacs_menu.addAction("Se&nd result to PACS…", self.send_result_to_pacs)
        pacs_menu.addSeparator()
        pacs_menu.addAction("DICOM &network…", self.show_network_settings)

    def show_network_settings(self) -> QDialog:
        """PACS nodes with Verify, our AE title and the receiver; OK saves and applies them."""
        from medvis_desktop.gui.pacs_settings import NetworkDialog

        dialog = NetworkDialog(self.dicom, self)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    def show_query_pacs(self) -> QDialog:
        """Find studies on a node, retrieve a series into the local store, open it."""
        from medvis_desktop.gui.pacs_query import QueryDialog

        if self.query_dialog is None:
            self.query_dialog = QueryDialog(self.dicom, self.open_volume, self)
        self._present(self.query_dialog)
        return self.query_dialog

    def show_received_studies(self) -> QDialog:
        """The local store's studies, kept up to date; double-click a series to open it."""
        from medvis_desktop.gui.pacs_received import ReceivedStudiesDialog

        if self.received_dialog is None:
            self.received_dialog = ReceivedStudiesDialog(self.dicom, self.open_volume, self)
        self._present(self.received_dialog)
        return self.received_dialog

    def save_result_dicom(
        self, folder: Path | str | None = None, *, deidentified: bool = False, pseudonym: str | None = None
    ) -> list[Path]:
        """Parametric Map, Segmentation and Secondary Capture of the explanation into a folder
        (asked for when not given): all of them or, on an error, none. `deidentified`: for
        research, with the study's own instances, all through the DICOM basic confidentiality
        profile (the pseudonym, asked for when not given, becomes Patient Name and ID)."""
        from medvis_desktop.gui.pacs_results import save_results

        if folder is None:
            start = self.settings.value("folders/export", str(Path.home()))
            folder = QFileDialog.getExistingDirectory(self, "Save result as DICOM into", start)
            if not folder:
                return []
            if deidentified and pseudonym is None:
                pseudonym, accepted = QInputDialog.getText(
                    self, "De-identified DICOM", "Pseudonym for Patient Name and ID (may be empty):"
                )
                if not accepted:
                    return []
        try:
            paths, note = save_results(self, folder, deidentified=deidentified, pseudonym=pseudonym or None)
        except (MedvisError, OSError, ValueError) as error:
            self.report_error("Save result as DICOM failed", str(error))
            return []
        self.settings.setValue("folders/export", str(folder))
        self.statusBar().showMessage(f"Saved {len(paths)} DICOM objects in {folder}. {note or ''}", 20000)
        if note and self.interactive:
            box = QMessageBox(QMessageBox.Icon.Information, "medvis", "Saved as DICOM", parent=self)
            box.setInformativeText(note)
            box.open()
        return paths

    def send_result_to_pacs(self) -> QDialog | None:
        """The result as DICOM, sent with C-STORE to a chosen node, one line per object."""
        from medvis_desktop.gui.pacs_results import SendDialog

        try:
            dialog = SendDialog(self.dicom, self, self)
        except (MedvisError, OSError, ValueError) as error:
            self.report_error("Send result to PACS failed", str(error))
            return None
        self._present(dialog)
        return dialog

    @staticmethod
    def _present(dialog: QDialog) -> None:
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
