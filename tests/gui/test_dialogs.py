"""The questions an interactive window asks: the model card, the series, consent to run code.

The dialogs are modal: `when_modal` answers each one from the event loop that `exec()` runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QInputDialog, QMessageBox, QWidget

from medvis_desktop import imaging
from medvis_desktop.gui.card_dialog import CardDialog
from medvis_desktop.gui.main_window import MainWindow
from medvis_desktop.gui.series_dialog import SeriesDialog
from medvis_desktop.models.card import Intensity, ModelCard, card_path, read_card, write_card
from tests.gui.conftest import INPUT_SIDE, when_modal
from tests.imaging.dicom_factory import SeriesSpec, write_series
from tests.models.conftest import LAMBDA_MARKER_ENV

LAMBDA_MODEL = Path(__file__).resolve().parents[1] / "models" / "fixtures" / "with_lambda.h5"


def interactive_window(qtbot, settings) -> MainWindow:
    """A window that asks (no TensorFlow worker: nothing here runs a method)."""
    window = MainWindow(settings, interactive=True)
    qtbot.addWidget(window)
    window.show()
    return window


def answer_in_turn(kind: type[QWidget], answers: list[Callable[[QWidget], None]]) -> None:
    """Answer the next modal `kind` dialogs with `answers`, one each, in order."""

    def handle(dialog: QWidget) -> None:
        answers.pop(0)(dialog)
        if answers:
            when_modal(kind, handle)

    when_modal(kind, handle)


def test_card_dialog_returns_the_edited_card(qtbot, tiny_card):
    dialog = CardDialog(tiny_card, ["No model card found"])
    qtbot.addWidget(dialog)
    dialog.input_mode.setCurrentText("2.5d")
    dialog.kind.setCurrentText("window")
    dialog.center.setValue(300)
    dialog.width.setValue(1500)
    dialog.class_names.setPlainText("healthy\n  bleed \n\n")
    save = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Save)
    qtbot.mouseClick(save, Qt.MouseButton.LeftButton)

    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.card() == replace(
        tiny_card,
        input_mode="2.5d",
        intensity=Intensity("window", center=300, width=1500),
        class_names=["healthy", "bleed"],
    )
    assert "No model card found" in dialog.note.text()


def test_the_card_is_asked_for_until_it_fits_then_saved_beside_the_model(
    qtbot, settings, tiny_model_path, tmp_path
):
    path = tmp_path / "tiny.keras"
    shutil.copy(tiny_model_path, path)
    notes = []

    def three_names(dialog: CardDialog) -> None:
        notes.append(dialog.note.text())
        dialog.class_names.setPlainText("normal\nlesion\nartefact")
        dialog.accept()

    def brain_window(dialog: CardDialog) -> None:
        notes.append(dialog.note.text())
        dialog.kind.setCurrentText("window")
        dialog.center.setValue(40)
        dialog.width.setValue(80)
        dialog.class_names.setPlainText("normal\nlesion")
        dialog.accept()

    def give_up(dialog: CardDialog) -> None:
        notes.append(dialog.note.text())
        dialog.reject()

    window = interactive_window(qtbot, settings)
    answer_in_turn(CardDialog, [three_names, give_up])
    assert not window.open_model(path)
    assert "No model card found" in notes[0]
    assert "3 class names for 2 model outputs" in notes[1]
    assert window.model is None and not card_path(path).exists()

    answer_in_turn(CardDialog, [three_names, brain_window])
    assert window.open_model(path)
    expected = ModelCard(
        input_mode="2d",
        input_shape=(INPUT_SIDE, INPUT_SIDE, 1),
        intensity=Intensity("window", center=40, width=80),
        class_names=["normal", "lesion"],
    )
    assert "3 class names for 2 model outputs" in notes[3]
    assert read_card(path) == expected and window.card == expected
    assert window.model_path == path


def test_a_series_over_the_memory_budget_offers_the_slices_that_fit(
    qtbot, settings, head_ct_block, tmp_path, monkeypatch
):
    folder = tmp_path / "ct"
    write_series(head_ct_block[:12], folder)
    whole = imaging.load(folder)
    slice_mb = whole.voxels[0].nbytes / imaging.checks.MB
    monkeypatch.setenv(imaging.MEMORY_BUDGET_ENV, str(5.5 * slice_mb))  # 5 of the 12 slices fit
    asked = []

    def from_slice(first: int | None):
        def answer(dialog: QInputDialog) -> None:
            asked.append((dialog.labelText(), dialog.intValue(), dialog.intMinimum(), dialog.intMaximum()))
            if first is None:
                dialog.reject()
            else:
                dialog.setIntValue(first)
                dialog.accept()

        return answer

    window = interactive_window(qtbot, settings)
    when_modal(QInputDialog, from_slice(None))
    assert not window.open_volume(folder)
    assert window.volume is None and "5 of its 12 slices fit" in window.last_error

    when_modal(QInputDialog, from_slice(3))
    assert window.open_volume(folder)
    np.testing.assert_array_equal(window.volume.voxels, whole.voxels[2:7])
    # Offered: 5 slices starting anywhere from 1 to 8, the middle ones first.
    assert [a[1:] for a in asked] == [(4, 1, 8), (4, 1, 8)]
    assert "Open 5 slices, from slice:" in asked[0][0] and "memory budget" in asked[0][0]

    scripted = MainWindow(settings, interactive=False)
    qtbot.addWidget(scripted)
    assert not scripted.open_volume(folder)  # nobody to ask: refused, saying why
    assert "5 of its 12 slices fit" in scripted.last_error


def test_opening_a_series_folder_reads_each_header_once(
    qtbot, settings, head_ct_block, tmp_path, monkeypatch
):
    """The one read lists the series, tells whether they need the isolated reader and places
    the slices: a 1,000-slice series spends seconds on each pass (benchmarks/open_series.py)."""
    from collections import Counter

    from medvis_desktop.imaging import dicom_scan

    folder = tmp_path / "ct"
    files = write_series(head_ct_block[:6], folder)
    reads = Counter()
    real = dicom_scan.read_header

    def counted(path, *args, **kwargs):
        reads[Path(path).name] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(dicom_scan, "read_header", counted)
    window = interactive_window(qtbot, settings)
    assert window.open_volume(folder), window.last_error
    assert window.volume.shape[0] == 6
    assert reads == Counter({path.name: 1 for path in files})


def test_a_folder_with_two_series_asks_which_one(qtbot, settings, head_ct_block, tmp_path):
    study = tmp_path / "study"
    thin = SeriesSpec(series_description="Head 1.5mm")
    thick = SeriesSpec(series_description="Head 6mm", slice_step=6.0, slice_thickness=6.0)
    # One subfolder each, as PACS exports do (the writer's file names would collide).
    write_series(head_ct_block, study / "1", thin, study_uid="1.2.3")
    write_series(head_ct_block[::4], study / "2", thick, study_uid="1.2.3")
    listed = []

    def choose_thick(dialog: SeriesDialog) -> None:
        table = dialog.table
        listed.extend(
            (table.item(row, 0).text(), table.item(row, 2).text()) for row in range(table.rowCount())
        )
        listed.append(dialog.series[table.currentRow()].description)  # preselected
        table.selectRow(next(r for r in range(table.rowCount()) if table.item(r, 0).text() == "Head 6mm"))
        dialog.accept()

    window = interactive_window(qtbot, settings)
    when_modal(SeriesDialog, choose_thick)
    assert window.open_volume(study)

    assert sorted(listed[:2]) == [("Head 1.5mm", "40"), ("Head 6mm", "10")]
    assert listed[2] == "Head 1.5mm"  # the largest
    assert window.volume.shape[0] == 10
    np.testing.assert_allclose(window.volume.spacing[0], 6.0)


def test_a_model_with_code_runs_nothing_unless_the_user_agrees(qtbot, settings, tmp_path, monkeypatch):
    marker = tmp_path / "lambda_ran"
    monkeypatch.setenv(LAMBDA_MARKER_ENV, str(marker))
    path = tmp_path / "with_lambda.h5"
    shutil.copy(LAMBDA_MODEL, path)
    write_card(ModelCard(input_mode="2d", input_shape=(16, 16, 1), class_names=["a", "b"]), path)
    questions = []

    def answer(button: QMessageBox.StandardButton) -> Callable[[QMessageBox], None]:
        def click(box: QMessageBox) -> None:
            questions.append(box.text())
            box.button(button).click()

        return click

    window = interactive_window(qtbot, settings)
    when_modal(QMessageBox, answer(QMessageBox.StandardButton.Cancel))
    assert not window.open_model(path)
    assert "Lambda layer" in questions[0] and "Open it anyway?" in questions[0]
    assert window.model is None and not marker.exists()
    refusal = window.findChild(QMessageBox)  # shown without blocking
    assert refusal.text() == "Refused to open with_lambda.h5"
    refusal.accept()

    when_modal(QMessageBox, answer(QMessageBox.StandardButton.Open))
    assert window.open_model(path)
    assert window.model is not None and window.model_path == path
    assert len(questions) == 2
