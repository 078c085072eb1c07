"""The DICOM network engine against a real Orthanc PACS on the loopback: send, query,
retrieve (C-GET and C-MOVE), progress and cancel, and each failure as one clear sentence."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from medvis_desktop.dicomnet import (
    DicomNetError,
    LocalStore,
    Node,
    StorageServer,
    find_series,
    find_studies,
    raise_if_incomplete,
    retrieve_series,
    send,
    verify,
)
from medvis_desktop.errors import MedvisError
from tests.dicomnet.conftest import OUR_AE, SLICES, Orthanc, free_port
from tests.export.ct_study import CTStudy, write_ct_study


@pytest.fixture(scope="module")
def pushed(orthanc: Orthanc, ct_series: CTStudy):
    """The CT series sent to Orthanc with C-STORE, and the progress seen while sending."""
    calls: list[tuple[int, int]] = []
    statuses = send(orthanc.node, ct_series.paths, progress=lambda done, total: calls.append((done, total)))
    return statuses, calls


def originals(ct: CTStudy) -> dict[str, np.ndarray]:
    return {str(ds.SOPInstanceUID): ds.pixel_array for ds in map(pydicom.dcmread, ct.paths)}


def assert_same_pixels(files: list[Path], ct: CTStudy) -> None:
    expected = originals(ct)
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.SeriesInstanceUID == ct.series_uid
        assert ds.FrameOfReferenceUID == ct.frame_of_reference_uid
        np.testing.assert_array_equal(ds.pixel_array, expected[str(ds.SOPInstanceUID)])


def assert_whole_files_only(store: LocalStore) -> None:
    leftovers = [p for p in store.root.rglob("*") if p.is_file() and p.suffix != ".dcm"]
    assert leftovers == [], f"partial files left in the store: {leftovers}"
    for path in store.root.rglob("*.dcm"):
        pydicom.dcmread(path).pixel_array  # noqa: B018  (a truncated file fails here)


def test_send_pushes_the_series_into_orthanc(orthanc: Orthanc, ct_series: CTStudy, pushed):
    statuses, calls = pushed
    assert [s.ok for s in statuses] == [True] * SLICES, [s.message for s in statuses]
    assert {s.sop_instance_uid for s in statuses} == set(ct_series.sop_instance_uids)
    assert all(s.status == 0x0000 and s.message == "stored" for s in statuses)
    assert calls == [(i, SLICES) for i in range(1, SLICES + 1)]
    # what Orthanc's REST API says it holds
    study_id = orthanc.study_id(ct_series.study_uid)
    assert study_id is not None, "the study is not in Orthanc's /studies"
    assert orthanc.get(f"/studies/{study_id}")["PatientMainDicomTags"]["PatientID"] == "MV-0007"
    assert orthanc.series_instances(ct_series.series_uid) == sorted(ct_series.sop_instance_uids)


def test_verify_answers_with_a_round_trip(orthanc: Orthanc):
    seconds = verify(orthanc.node, timeout=5)
    assert 0 < seconds < 5


def test_find_studies_and_series(orthanc: Orthanc, ct_series: CTStudy, pushed, head_ct_block, tmp_path: Path):
    studies = find_studies(orthanc.node, patient_id="MV-0007")
    study = next(s for s in studies if s.study_uid == ct_series.study_uid)
    assert study.patient_name == "Doe^Jane"
    assert study.study_date == "20240311"
    assert study.description == "CT HEAD WITHOUT CONTRAST"
    assert study.accession_number == "ACC20240311"
    assert study.modalities == ("CT",)
    assert study.series_count >= 1
    assert study.instance_count >= SLICES
    # a filter that matches nothing, and a wildcard that matches
    assert find_studies(orthanc.node, patient_id="NOBODY-0000") == []
    assert ct_series.study_uid in {s.study_uid for s in find_studies(orthanc.node, patient_name="Doe*")}
    # past the limit the query is cancelled: a bare query must not bring a whole PACS back
    other = write_ct_study(head_ct_block[:1], tmp_path / "other")
    assert [s.ok for s in send(orthanc.node, other.paths)] == [True]
    assert len(find_studies(orthanc.node)) >= 2
    assert len(find_studies(orthanc.node, limit=1)) == 1
    series = find_series(orthanc.node, ct_series.study_uid)
    ours = next(s for s in series if s.series_uid == ct_series.series_uid)
    assert (ours.modality, ours.description, ours.series_number, ours.instance_count) == (
        "CT",
        "Head 2.5mm",
        3,
        SLICES,
    )


def test_retrieve_with_c_get(orthanc: Orthanc, ct_series: CTStudy, pushed, tmp_path: Path):
    store = LocalStore(tmp_path / "store")
    calls: list[tuple[int, int]] = []
    result = retrieve_series(
        orthanc.node,
        ct_series.study_uid,
        ct_series.series_uid,
        store,
        method="get",
        progress=lambda done, total: calls.append((done, total)),
    )
    assert (result.completed, result.failed, result.warning, result.cancelled) == (SLICES, 0, 0, False)
    assert result.complete
    assert len(result.files) == SLICES
    assert_same_pixels(result.files, ct_series)
    assert_whole_files_only(store)
    assert calls and calls[-1] == (SLICES, SLICES)
    assert all(total == SLICES for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    # the listing the window shows
    [study] = store.studies()
    assert (study.study_uid, study.patient_name, study.patient_id, study.study_date) == (
        ct_series.study_uid,
        "Doe^Jane",
        "MV-0007",
        "20240311",
    )
    assert study.description == "CT HEAD WITHOUT CONTRAST"
    [series] = study.series
    assert (series.series_uid, series.modality, series.instance_count) == (ct_series.series_uid, "CT", SLICES)
    assert series.folder == result.folder and series.folder.is_dir()


def test_retrieve_with_c_move_into_our_storage_server(
    orthanc: Orthanc, ct_series: CTStudy, pushed, tmp_path: Path
):
    store = LocalStore(tmp_path / "store")
    received: list[Path] = []
    calls: list[tuple[int, int]] = []
    with StorageServer(
        store, ae_title=OUR_AE, port=orthanc.our_port, on_stored=lambda p, _ds: received.append(p)
    ):
        result = retrieve_series(
            orthanc.node,
            ct_series.study_uid,
            ct_series.series_uid,
            store,
            method="move",
            move_destination=OUR_AE,
            progress=lambda done, total: calls.append((done, total)),
        )
    assert (result.completed, result.failed, result.cancelled) == (SLICES, 0, False)
    assert sorted(received) == sorted(result.files)
    assert len(result.files) == SLICES
    assert_same_pixels(result.files, ct_series)
    assert_whole_files_only(store)
    assert calls[-1] == (SLICES, SLICES)


def test_cancel_a_c_get_after_the_first_instance(
    orthanc: Orthanc, ct_series: CTStudy, pushed, tmp_path: Path
):
    store = LocalStore(tmp_path / "store")
    calls: list[tuple[int, int]] = []
    result = retrieve_series(
        orthanc.node,
        ct_series.study_uid,
        ct_series.series_uid,
        store,
        progress=lambda done, total: calls.append((done, total)),
        cancel=lambda: len(calls) >= 1,
    )
    assert result.cancelled and not result.complete
    assert 1 <= len(result.files) < SLICES, result
    assert_same_pixels(result.files, ct_series)
    assert_whole_files_only(store)
    # a second retrieve completes the series and leaves what was there untouched
    before = {p: p.stat().st_mtime_ns for p in result.files}
    again = retrieve_series(orthanc.node, ct_series.study_uid, ct_series.series_uid, store)
    assert again.complete and len(again.files) == SLICES
    assert {p: p.stat().st_mtime_ns for p in result.files} == before
    assert_same_pixels(again.files, ct_series)


def test_cancel_a_c_move_after_the_first_instance(
    orthanc: Orthanc, ct_series: CTStudy, pushed, tmp_path: Path
):
    """C-MOVE sub-operations run on Orthanc's own association to us and do not wait for our
    C-MOVE responses to be read: on the loopback all 8 may be done before the C-CANCEL lands.
    A receiver that takes 0.2 s per instance (a slow disk, a slow network) gives it time."""
    store = LocalStore(tmp_path / "store")
    calls: list[tuple[int, int]] = []

    def slow(_path: Path, _dataset: object) -> None:
        time.sleep(0.2)

    with StorageServer(store, ae_title=OUR_AE, port=orthanc.our_port, on_stored=slow):
        result = retrieve_series(
            orthanc.node,
            ct_series.study_uid,
            ct_series.series_uid,
            store,
            method="move",
            move_destination=OUR_AE,
            progress=lambda done, total: calls.append((done, total)),
            cancel=lambda: len(calls) >= 1,
        )
    assert result.cancelled
    assert 1 <= len(result.files) < SLICES, result
    assert_same_pixels(result.files, ct_series)
    assert_whole_files_only(store)


# --- failures: one clear sentence each -------------------------------------------------------


def test_a_pacs_that_is_down(orthanc: Orthanc):
    node = Node("ORTHANC", "127.0.0.1", free_port())  # nothing listens there
    with pytest.raises(
        DicomNetError, match=r"^Cannot reach ORTHANC@127\.0\.0\.1:\d+: connection refused"
    ) as error:
        verify(node, timeout=5)
    assert isinstance(error.value, MedvisError)
    assert "\n" not in str(error.value)


def test_an_association_rejected_for_a_wrong_called_ae(orthanc: Orthanc):
    node = Node("NOT-ORTHANC", orthanc.node.host, orthanc.node.port)
    with pytest.raises(DicomNetError) as error:
        verify(node, timeout=5)
    assert str(error.value) == (
        f"NOT-ORTHANC@127.0.0.1:{orthanc.node.port} rejected the association: "
        "it does not answer to the AE title 'NOT-ORTHANC'"
    )


def test_a_server_that_never_answers():
    with socket.socket() as listener:  # accepts TCP (the kernel completes the handshake), says nothing
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        node = Node("SILENT", "127.0.0.1", listener.getsockname()[1])
        started = time.monotonic()
        with pytest.raises(DicomNetError) as error:
            verify(node, timeout=1.5)
        elapsed = time.monotonic() - started
    assert str(error.value).startswith(f"{node} accepted the connection but did not answer within 1.5 s")
    assert 1.3 < elapsed < 6


def test_a_move_to_an_unknown_ae(orthanc: Orthanc, ct_series: CTStudy, pushed, tmp_path: Path):
    store = LocalStore(tmp_path / "store")
    with pytest.raises(DicomNetError) as error:
        retrieve_series(
            orthanc.node,
            ct_series.study_uid,
            ct_series.series_uid,
            store,
            method="move",
            move_destination="NOBODY",
        )
    message = str(error.value)
    assert message.startswith(f"{orthanc.node} refused C-MOVE of series {ct_series.series_uid}: 0x")
    assert "Failure" in message
    assert message.endswith(
        f"; does {orthanc.node.ae_title} know the destination AE 'NOBODY' (host and port)?"
    )
    assert "\n" not in message
    assert store.studies() == []


def unknown_sop_class_file(ct: CTStudy, folder: Path) -> Path:
    """A CT slice relabelled with a private SOP class no PACS has a context for."""
    ds = pydicom.dcmread(ct.paths[0])
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.826.0.1.3680043.8.498.77777"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    path = folder / "private.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_send_half_accepted(orthanc: Orthanc, head_ct_block, tmp_path: Path):
    ct = write_ct_study(head_ct_block[:2], tmp_path / "ct")
    odd = unknown_sop_class_file(ct, tmp_path)
    files = [ct.paths[0], odd, ct.paths[1]]
    statuses = send(orthanc.node, files)
    assert [s.ok for s in statuses] == [True, False, True]
    assert statuses[1].status is None
    assert statuses[1].message == f"not sent: {orthanc.node} does not accept 1.2.826.0.1.3680043.8.498.77777"
    with pytest.raises(DicomNetError) as error:
        raise_if_incomplete(orthanc.node, statuses)
    assert str(error.value) == (
        f"{orthanc.node} accepted 2 of 3 instances; 1 not stored, first private.dcm: "
        f"not sent: {orthanc.node} does not accept 1.2.826.0.1.3680043.8.498.77777"
    )
    assert error.value.statuses == statuses
    assert orthanc.series_instances(ct.series_uid) == sorted(ct.sop_instance_uids)
    # the caller resends only the failures: the accepted ones are not sent again
    retry = send(orthanc.node, [s.path for s in statuses if not s.ok])
    assert [(s.path, s.ok) for s in retry] == [(odd, False)]
    assert orthanc.series_instances(ct.series_uid) == sorted(ct.sop_instance_uids)
