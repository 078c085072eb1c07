"""The window's PACS side against a real Orthanc on the loopback (tests/dicomnet/conftest.py):
settings with Verify, query and retrieve with progress and cancel, the received-studies list
fed by our receiver, and the result saved and sent back as DICOM."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ParametricMapStorage, SecondaryCaptureImageStorage, SegmentationStorage
from PySide6.QtCore import QSettings, Qt

from medvis_desktop.dicomnet import LocalStore, Node, send
from medvis_desktop.gui.main_window import MainWindow
from medvis_desktop.gui.pacs_network import LOOPBACK, NetworkConfig, PacsNode, load_config
from medvis_desktop.gui.pacs_settings import RESULT, VERIFY
from tests.dicomnet import conftest as dicomnet
from tests.dicomnet.conftest import SLICES, Orthanc, free_port
from tests.export.ct_study import CTStudy

# The real Orthanc and the CT series it is fed, from the network engine's tests.
orthanc = dicomnet.orthanc
ct_series = dicomnet.ct_series
NETWORK_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def pushed(orthanc: Orthanc, ct_series: CTStudy) -> None:
    """The CT series is in Orthanc (C-STORE), as a scanner would have sent it."""
    assert all(status.ok for status in send(orthanc.node, ct_series.paths))


@pytest.fixture
def store_settings(settings: QSettings, tmp_path: Path) -> QSettings:
    """The test's own settings, with the local study store in the test's folder."""
    settings.setValue("dicom/store", str(tmp_path / "store"))
    return settings


def make_window(qtbot, settings: QSettings) -> MainWindow:
    window = MainWindow(settings, interactive=False)
    qtbot.addWidget(window)
    window.show()
    return window


@pytest.fixture
def window(qtbot, store_settings, orthanc: Orthanc):
    """A window (no TensorFlow) that knows the test Orthanc as node 'test'."""
    window = make_window(qtbot, store_settings)
    node = PacsNode("test", orthanc.node.ae_title, orthanc.node.host, orthanc.node.port)
    window.dicom.apply(NetworkConfig(nodes=(node,), store=window.dicom.config.store))
    yield window
    window.close()


def choose_series(qtbot, window: MainWindow, ct: CTStudy):
    """Query PACS: search by patient ID, expand the study, select the CT series."""
    dialog = window.show_query_pacs()
    dialog.patient_id.setText(ct.patient_id)
    assert dialog.search() is not None
    qtbot.waitUntil(lambda: dialog.search_task is None, timeout=NETWORK_TIMEOUT_MS)
    study = dialog.study_item(ct.study_uid)
    assert study.text(0) == ct.patient_name and study.text(2) == "20240311"
    study.setExpanded(True)  # as a click on the arrow does: the series are asked for
    qtbot.waitUntil(lambda: _has_series(dialog, ct.series_uid), timeout=NETWORK_TIMEOUT_MS)
    item = dialog.series_item(ct.series_uid)
    assert item.text(4) == "CT" and item.text(5) == str(SLICES)
    dialog.tree.setCurrentItem(item)
    assert dialog.retrieve_button.isEnabled()
    return dialog


def _has_series(dialog, series_uid: str) -> bool:
    try:
        dialog.series_item(series_uid)
    except KeyError:
        return False
    return True


def test_defaults_listen_on_nothing(qtbot, store_settings):
    window = make_window(qtbot, store_settings)
    config = window.dicom.config
    assert config.nodes == () and not config.receiver_enabled and config.receiver_host == LOOPBACK
    assert window.dicom.server is None
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&PACS")
    actions = {a.text().replace("&", ""): a for a in menu.actions() if a.text()}
    assert set(actions) == {
        "Query PACS…", "Received studies", "Save result as DICOM…", "Save de-identified result as DICOM…",
        "Send result to PACS…", "DICOM network…",
    }  # fmt: skip
    actions["Received studies"].trigger()
    assert window.received_dialog.isVisible()
    window.close()


def test_network_settings_verify_each_node_and_save(qtbot, store_settings, orthanc: Orthanc):
    window = make_window(qtbot, store_settings)
    dialog = window.show_network_settings()
    closed_port = free_port()  # nothing listens there
    dialog.add_node(PacsNode("test", "ORTHANC", "127.0.0.1", orthanc.node.port))
    dialog.add_node(PacsNode("down", "ORTHANC", "127.0.0.1", closed_port))
    qtbot.mouseClick(dialog.table.cellWidget(0, VERIFY), Qt.MouseButton.LeftButton)
    assert dialog.verify(1) is not None
    qtbot.waitUntil(
        lambda: all(dialog.verify_result(row) not in ("", "Verifying…") for row in (0, 1)),
        timeout=NETWORK_TIMEOUT_MS,
    )
    assert dialog.verify_result(0).startswith("OK, round trip"), dialog.verify_result(0)
    assert "connection refused" in dialog.verify_result(1), dialog.verify_result(1)
    assert dialog.table.item(1, RESULT).toolTip() == dialog.verify_result(1)  # the whole line
    # a wrong entry is named, and OK keeps the dialog open
    dialog.table.item(1, 3).setText("70000")
    dialog.accept()
    assert dialog.isVisible() and "Port 70000 is not valid" in dialog.message.text()
    dialog.table.item(1, 3).setText(str(closed_port))
    dialog.ae_title.setText("WORKSTATION1")
    dialog.accept()
    assert not dialog.isVisible()
    stored = load_config(store_settings)
    assert [(n.name, n.ae_title, n.port) for n in stored.nodes] == [
        ("test", "ORTHANC", orthanc.node.port),
        ("down", "ORTHANC", closed_port),
    ]
    assert stored.ae_title == "WORKSTATION1" and not stored.receiver_enabled
    assert window.dicom.server is None
    window.close()


def test_query_retrieve_and_open(qtbot, window: MainWindow, ct_series: CTStudy, pushed):
    dialog = choose_series(qtbot, window, ct_series)
    seen: list[int] = []
    dialog.progress.valueChanged.connect(seen.append)
    task = dialog.retrieve()
    assert task is not None and dialog.cancel_button.isEnabled() and not dialog.retrieve_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.retrieved is not None, timeout=NETWORK_TIMEOUT_MS)
    result = dialog.retrieved
    assert result.complete and len(result.files) == SLICES, dialog.status.text()
    assert result.folder.is_relative_to(window.dicom.store.root)
    assert (dialog.progress.value(), dialog.progress.maximum()) == (SLICES, SLICES)
    assert seen and seen[-1] == SLICES
    assert "Retrieved 8 images" in dialog.status.text()
    assert dialog.open_button.isEnabled()
    assert dialog.open_retrieved()
    assert window.volume.shape[0] == SLICES
    assert window.volume.dicom.series_instance_uid == ct_series.series_uid


class SlowStore(LocalStore):
    """A store on a slow disk (0.3 s an instance): time for the user to press Cancel."""

    def add_encoded(self, data: bytes, **uids: str) -> tuple[Path, bool]:
        time.sleep(0.3)
        return super().add_encoded(data, **uids)


def test_cancel_a_retrieve(qtbot, window: MainWindow, ct_series: CTStudy, pushed):
    window.dicom.store = SlowStore(window.dicom.store.root)
    dialog = choose_series(qtbot, window, ct_series)
    assert dialog.retrieve() is not None
    qtbot.waitUntil(lambda: dialog.progress.value() >= 1, timeout=NETWORK_TIMEOUT_MS)
    dialog.cancel()
    assert dialog.status.text() == "Cancelling…"
    qtbot.waitUntil(lambda: dialog.retrieved is not None, timeout=NETWORK_TIMEOUT_MS)
    result = dialog.retrieved
    assert result.cancelled and 1 <= len(result.files) < SLICES, result
    assert dialog.status.text().startswith("Cancelled:")
    leftovers = [p for p in window.dicom.store.root.rglob("*") if p.is_file() and p.suffix != ".dcm"]
    assert leftovers == []
    assert dialog.retrieve_button.isEnabled() and not dialog.cancel_button.isEnabled()


def test_a_pacs_that_is_down_is_one_line_and_the_window_goes_on(qtbot, window: MainWindow):
    down = PacsNode("down", "ORTHANC", "127.0.0.1", free_port())
    window.dicom.apply(NetworkConfig(nodes=(down,), store=window.dicom.config.store))
    dialog = window.show_query_pacs()
    assert dialog.node.currentText() == "down"
    dialog.search()
    qtbot.waitUntil(lambda: dialog.search_task is None, timeout=NETWORK_TIMEOUT_MS)
    assert "Cannot reach ORTHANC@127.0.0.1" in dialog.status.text()
    assert "connection refused" in dialog.status.text()
    assert dialog.search_button.isEnabled()


def test_c_move_needs_the_receiver(qtbot, window: MainWindow, ct_series: CTStudy, pushed):
    dialog = choose_series(qtbot, window, ct_series)
    dialog.method.setCurrentIndex(dialog.method.findData("move"))
    assert dialog.retrieve() is None
    assert "receiver, which is off" in dialog.status.text()


def test_retrieve_with_c_move_into_our_receiver(
    qtbot, window: MainWindow, orthanc: Orthanc, ct_series: CTStudy, pushed
):
    move = {"ae_title": dicomnet.OUR_AE, "receiver_port": orthanc.our_port, "retrieve_method": "move"}
    window.dicom.apply(replace(window.dicom.config, receiver_enabled=True, **move))
    assert window.dicom.receiver_running
    dialog = choose_series(qtbot, window, ct_series)
    assert dialog.method.currentData() == "move"
    assert dialog.retrieve() is not None
    qtbot.waitUntil(lambda: dialog.retrieved is not None, timeout=NETWORK_TIMEOUT_MS)
    assert dialog.retrieved.complete and len(dialog.retrieved.files) == SLICES, dialog.status.text()


def test_received_studies_shows_what_the_receiver_filed(qtbot, store_settings, ct_series: CTStudy):
    window = make_window(qtbot, store_settings)
    port = free_port()
    settings_dialog = window.show_network_settings()
    settings_dialog.receiver_enabled.setChecked(True)
    settings_dialog.receiver_port.setValue(port)
    settings_dialog.accept()
    assert window.dicom.server.address == (LOOPBACK, port)
    received = window.show_received_studies()
    assert received.tree.topLevelItemCount() == 0
    assert f"receiving as MEDVIS on 127.0.0.1:{port}" in received.status.text()

    statuses = send(Node("MEDVIS", "127.0.0.1", port), ct_series.paths)  # a modality sends us a study
    assert all(status.ok for status in statuses)
    qtbot.waitUntil(lambda: received.tree.topLevelItemCount() == 1, timeout=NETWORK_TIMEOUT_MS)
    study = received.tree.topLevelItem(0)
    assert (study.text(0), study.text(1), study.text(5)) == (ct_series.patient_name, "MV-0007", str(SLICES))
    assert received.open_item(received.series_item(ct_series.series_uid))
    assert window.volume.dicom.series_instance_uid == ct_series.series_uid
    window.close()
    assert window.dicom.server is None


# --- results as DICOM: a real Grad-CAM on the CT series --------------------------------------


def explained(qtbot, settings: QSettings, study: Path, model: Path) -> MainWindow:
    """A window that opened `study` and `model` and ran Grad-CAM over every slice."""
    window = make_window(qtbot, settings)
    window.start_backend()
    assert window.open_volume(study) and window.open_model(model)
    window.panel.select(method="grad_cam", layer="conv2", target=1)
    job_id = window.run()
    with qtbot.waitSignal(window.relay.finished, timeout=60_000, check_params_cb=lambda done: done == job_id):
        pass
    assert window.explanation.computed.all()
    return window


def series_in_orthanc(orthanc: Orthanc, study_uid: str) -> dict[str, tuple[str, int]]:
    """Series UID → (SOP class UID of its first instance, instance count), from the REST API."""
    found = {}
    for series_id in orthanc.get(f"/studies/{orthanc.study_id(study_uid)}")["Series"]:
        instances = orthanc.get(f"/series/{series_id}/instances")
        tags = orthanc.get(f"/instances/{instances[0]['ID']}/simplified-tags")
        found[tags["SeriesInstanceUID"]] = (tags["SOPClassUID"], len(instances))
    return found


def test_save_and_send_the_result_as_dicom(
    qtbot, store_settings, tmp_path: Path, orthanc: Orthanc, ct_series: CTStudy, pushed, tiny_model_path
):
    window = explained(qtbot, store_settings, ct_series.folder, tiny_model_path)
    out = tmp_path / "out"
    paths = window.save_result_dicom(out)
    assert sorted(p.name.split("_")[0] for p in paths) == ["PM", "SC", "SEG"], window.last_error
    assert sorted(out.iterdir()) == sorted(paths)  # no staging folder left
    objects = {pydicom.dcmread(p).SOPClassUID: pydicom.dcmread(p) for p in paths}
    assert set(objects) == {ParametricMapStorage, SegmentationStorage, SecondaryCaptureImageStorage}
    assert all(ds.StudyInstanceUID == ct_series.study_uid for ds in objects.values())
    assert objects[ParametricMapStorage].NumberOfFrames == SLICES
    assert objects[SecondaryCaptureImageStorage].BurnedInAnnotation == "YES"

    node = PacsNode("test", orthanc.node.ae_title, orthanc.node.host, orthanc.node.port)
    window.dicom.apply(NetworkConfig(nodes=(node,), store=window.dicom.config.store))
    dialog = window.send_result_to_pacs()
    assert dialog is not None and not dialog.note.isVisible()
    assert dialog.send() is not None
    qtbot.waitUntil(lambda: dialog.task is None, timeout=NETWORK_TIMEOUT_MS)
    assert [s.ok for s in dialog.statuses] == [True] * 3, [s.message for s in dialog.statuses]
    assert [dialog.report.item(row, 2).text() for row in range(3)] == ["stored"] * 3
    assert dialog.summary.text() == "test stored all 3 objects"
    sent = {ds.SeriesInstanceUID: ds.SOPClassUID for ds in map(pydicom.dcmread, dialog.files)}
    in_orthanc = series_in_orthanc(orthanc, ct_series.study_uid)
    assert in_orthanc[ct_series.series_uid][1] == SLICES  # the source is still there, beside them
    for series_uid, sop_class in sent.items():
        assert in_orthanc[series_uid] == (sop_class, 1)
    # sending again sends nothing twice
    assert dialog.send() is None and "stored every object already" in dialog.summary.text()
    staging = Path(dialog.staging.name)
    dialog.reject()
    assert not staging.exists()
    window.close()


def test_a_deidentified_save_carries_the_source_and_no_identity(
    qtbot, store_settings, tmp_path: Path, ct_series: CTStudy, tiny_model_path
):
    window = explained(qtbot, store_settings, ct_series.folder, tiny_model_path)
    out = tmp_path / "research"
    paths = window.save_result_dicom(out, deidentified=True, pseudonym="R-7")
    kinds = sorted(p.name.split("_")[0] for p in paths)
    assert kinds == ["CT"] * SLICES + ["PM", "SC", "SEG"], window.last_error
    assert sorted(out.iterdir()) == sorted(paths)  # no staging folder left
    originals = [ct_series.patient_name, ct_series.patient_id, ct_series.study_uid]
    originals += ct_series.sop_instance_uids
    for path in paths:
        raw = path.read_bytes()
        assert not [identity for identity in originals if identity.encode() in raw], path.name
    datasets = [pydicom.dcmread(p) for p in paths]
    assert {ds.PatientID for ds in datasets} == {"R-7"}
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert "burned-in" in window.statusBar().currentMessage()  # the SC's legend is in its pixels
    window.close()


def test_a_non_dicom_study_saves_only_the_secondary_capture(
    qtbot, store_settings, tmp_path: Path, ct_nifti: Path, tiny_model_path
):
    window = explained(qtbot, store_settings, ct_nifti, tiny_model_path)
    paths = window.save_result_dicom(tmp_path / "out")
    assert [p.name.split("_")[0] for p in paths] == ["SC"]
    assert "only the Secondary Capture" in window.statusBar().currentMessage()
    assert pydicom.dcmread(paths[0]).SOPClassUID == SecondaryCaptureImageStorage
    window.close()


def test_nothing_to_save_is_a_message_and_nothing_is_written(qtbot, store_settings, tmp_path: Path):
    window = make_window(qtbot, store_settings)
    assert window.save_result_dicom(tmp_path / "out") == []
    assert window.last_error.startswith("Save result as DICOM failed: Nothing to save yet")
    assert not (tmp_path / "out").exists()
    assert window.send_result_to_pacs() is None
    window.close()
