"""The local study store: layout by UID, whole files only, idempotent, a listing for the window."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest

from medvis_desktop.dicomnet import LocalStore
from medvis_desktop.dicomnet.store import safe_name
from tests.export.ct_study import CTStudy, write_ct_study


@pytest.fixture(scope="module")
def ct(head_ct_block, tmp_path_factory) -> CTStudy:
    return write_ct_study(head_ct_block[:3], tmp_path_factory.mktemp("ct"))


def test_files_are_laid_out_by_study_series_and_instance(ct: CTStudy, tmp_path: Path):
    store = LocalStore(tmp_path / "store")
    for path in ct.paths:
        filed, new = store.import_file(path)
        assert new
        ds = pydicom.dcmread(path)
        assert filed == tmp_path / "store" / ct.study_uid / ct.series_uid / f"{ds.SOPInstanceUID}.dcm"
        assert filed.read_bytes() == path.read_bytes()
    assert store.series_files(ct.study_uid, ct.series_uid) == sorted(
        tmp_path / "store" / ct.study_uid / ct.series_uid / f"{uid}.dcm" for uid in ct.sop_instance_uids
    )


def test_a_duplicate_instance_is_not_written_again(ct: CTStudy, tmp_path: Path):
    store = LocalStore(tmp_path)
    path, new = store.import_file(ct.paths[0])
    stamp = path.stat().st_mtime_ns, path.stat().st_ino
    again, new_again = store.add_dataset(pydicom.dcmread(ct.paths[0]))
    assert (again, new, new_again) == (path, True, False)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == stamp
    assert len(list(tmp_path.rglob("*"))) == 3  # study folder, series folder, one file


def test_hostile_uids_never_leave_the_store(tmp_path: Path):
    store = LocalStore(tmp_path / "store")
    path, _ = store.add_encoded(b"DICM", study_uid="../../etc", series_uid="/abs", sop_instance_uid="1.2..3")
    assert path.resolve().is_relative_to((tmp_path / "store").resolve())
    for part in path.relative_to(tmp_path / "store").parts:
        assert part.startswith("x") and "/" not in part and ".." not in part
    assert safe_name("1.2.840.10008.5.1.4.1.1.2") == "1.2.840.10008.5.1.4.1.1.2"
    assert safe_name("1." + "2" * 70) != "1." + "2" * 70  # longer than a UID may be
    assert safe_name("../x") == safe_name("../x")  # stable


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path):
    store = LocalStore(tmp_path)
    with pytest.raises(TypeError):
        store.add_encoded("not bytes", study_uid="1.2", series_uid="1.3", sop_instance_uid="1.4")  # type: ignore[arg-type]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_listing_of_received_studies(ct: CTStudy, head_ct_block, tmp_path: Path):
    store = LocalStore(tmp_path / "store")
    for path in ct.paths:
        store.import_file(path)
    other = write_ct_study(head_ct_block[:1], tmp_path / "other")
    ds = pydicom.dcmread(other.paths[0])
    ds.StudyDate, ds.PatientName, ds.SeriesNumber = "20250102", "Roe^Richard", 7
    store.add_dataset(ds)
    # debris a crash could leave, and a file that is not DICOM: neither hides a series
    series_folder = store.series_folder(ct.study_uid, ct.series_uid)
    (series_folder / ".x.dcm.1234.part").write_bytes(b"half")
    (series_folder / "0000-broken.dcm").write_bytes(b"not dicom")

    newest, older = store.studies()
    assert (newest.study_uid, newest.patient_name, newest.study_date) == (
        other.study_uid,
        "Roe^Richard",
        "20250102",
    )
    assert (older.study_uid, older.patient_name, older.patient_id, older.study_date) == (
        ct.study_uid,
        "Doe^Jane",
        "MV-0007",
        "20240311",
    )
    assert older.description == "CT HEAD WITHOUT CONTRAST"
    assert older.folder == tmp_path / "store" / ct.study_uid
    [series] = older.series
    assert (series.series_uid, series.modality, series.description, series.series_number) == (
        ct.series_uid,
        "CT",
        "Head 2.5mm",
        3,
    )
    assert series.folder == series_folder
    assert series.instance_count == 4  # three slices and the broken file; the .part is not counted


def test_an_empty_store_lists_nothing(tmp_path: Path):
    store = LocalStore(tmp_path / "new")
    assert store.studies() == []
    os.makedirs(tmp_path / "new" / "1.2" / "1.3")
    assert store.studies() == []
