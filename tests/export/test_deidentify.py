"""De-identified export: the basic profile applied to a real CT series and the PM, SEG and SC
medvis wrote from it, in one go, with one UID map.

Real files only: a CT series written by pydicom (every CT module filled, plus the identifying
attributes a hospital's files carry: private tags, other patient IDs, request attributes, staff
names, a reference to an image outside the set), loaded by medvis, and the results written by
dicom_results; and a real ultrasound file from pydicom's test data. Each output is read back and
scanned element by element, sequences included; the validator (dciodvfy) must find no error in
an output that it did not find in the input.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UID, CTImageStorage, generate_uid

from medvis_desktop import imaging
from medvis_desktop.export import dicom_results
from medvis_desktop.export.deidentify import (
    DeidentificationError,
    action_for,
    deidentify,
    iod_types,
    resolve,
)
from medvis_desktop.export.provenance import Provenance
from tests.export.ct_study import CTStudy, write_ct_study

PSEUDONYM = "RESEARCH-042"
LOCALIZER_UID = generate_uid()  # an image outside the set, referenced by every slice
# What identifies the patient, the visit or the hospital in the source files.
IDENTIFYING_TEXT = ("Doe^", "Jane", "MV-0007", "MV-OLD-7", "19610423", "ACC20240311", "Test Hospital",
                    "Smith^John", "MEDVIS-TEST", "20240311", "Nurse^Ratched", "Main Street", "RP-99",
                    "SN-0001", "Head 2.5mm", "CT HEAD WITHOUT CONTRAST")
PIXEL_KEYWORDS = {"PixelData", "FloatPixelData", "DoubleFloatPixelData"}


def identify_like_a_hospital(path: Path) -> None:
    """What real files carry besides the CT modules: private tags with identity in them, other
    patient IDs, request attributes, staff names, free text, a reference to an image not exported."""
    ds = pydicom.dcmread(path)
    block = ds.private_block(0x0009, "MEDVIS TEST PRIVATE", create=True)
    block.add_new(0x01, "LO", "Doe^Jane MV-0007")
    block.add_new(0x02, "DA", "19610423")
    other = Dataset()
    other.PatientID, other.IssuerOfPatientID, other.TypeOfPatientID = "MV-OLD-7", "MEDVIS-TEST", "TEXT"
    ds.OtherPatientIDsSequence = [other]
    request = Dataset()
    request.RequestedProcedureID, request.AccessionNumber = "RP-99", "ACC20240311"
    request.ScheduledProcedureStepID = "SPS-1"
    ds.RequestAttributesSequence = [request]
    ds.OperatorsName = "Nurse^Ratched"
    ds.PerformingPhysicianName = "Smith^John"
    ds.InstitutionAddress = "1 Main Street"
    ds.ImageComments = "Patient Doe^Jane MV-0007, seen 20240311"
    localizer = Dataset()
    localizer.ReferencedSOPClassUID, localizer.ReferencedSOPInstanceUID = CTImageStorage, LOCALIZER_UID
    ds.ReferencedImageSequence = [localizer]
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture(scope="module")
def ct(tmp_path_factory, head_ct_hu) -> CTStudy:
    hu = np.clip(head_ct_hu[50:55, 96:160, 96:160], -1024, 3071).astype(np.int16)
    study = write_ct_study(hu, tmp_path_factory.mktemp("ct"))
    for path in study.paths:
        identify_like_a_hospital(path)
    return study


@pytest.fixture(scope="module")
def results(ct, tmp_path_factory) -> dict[str, Path]:
    """A Parametric Map, a SEG, an SC with a legend drawn in and one without, from the CT."""
    volume = imaging.load(ct.folder)
    heat = ((volume.voxels.astype(np.float32) + 1024) / 2000).astype(np.float32)
    record = Provenance.for_run("grad_cam", model_path=None, input_path=ct.folder, layer="conv2", target=1)
    record.model_sha256 = "cd" * 32
    folder = tmp_path_factory.mktemp("results")
    rgb = np.random.default_rng(8).integers(0, 256, (40, 120, 3), dtype=np.uint8)
    return {
        "pm": dicom_results.save(
            dicom_results.parametric_map(volume, heat, record, class_name="lesion"), folder),
        "seg": dicom_results.save(
            dicom_results.segmentation(volume, {"lesion": heat}, record, threshold=0.6), folder),
        "sc_legend": dicom_results.save(dicom_results.secondary_capture(
            rgb, volume, burned_in_annotation=True, description="Grad-CAM triptych", provenance=record,
            slices=[3]), folder),
        "sc_plain": dicom_results.save(dicom_results.secondary_capture(
            rgb, volume, burned_in_annotation=False, description="Grad-CAM view", slices=[1]), folder),
    }


@pytest.fixture(scope="module")
def inputs(ct, results) -> list[Path]:
    return [*ct.paths, *results.values()]


@pytest.fixture(scope="module")
def done(inputs, tmp_path_factory):
    return deidentify(inputs, tmp_path_factory.mktemp("deidentified"), patient_pseudonym=PSEUDONYM)


@pytest.fixture(scope="module")
def written(done) -> dict[Path, Dataset]:
    """Input path → the de-identified dataset read back from disk."""
    return {item.source: pydicom.dcmread(item.path) for item in done.files}


def elements(dataset: Dataset, path: str = "") -> Iterator[tuple[str, pydicom.DataElement]]:
    """Every element at every depth, the File Meta Information too."""
    if getattr(dataset, "file_meta", None) is not None:
        yield from elements(dataset.file_meta, "meta.")
    for element in dataset:
        here = f"{path}{element.keyword or element.tag}"
        yield here, element
        if element.VR == "SQ":
            for number, item in enumerate(element.value or ()):
                yield from elements(item, f"{here}[{number}].")


def text(element: pydicom.DataElement) -> str:
    value = element.value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return "\\".join(str(v) for v in value) if isinstance(value, pydicom.multival.MultiValue) else str(value)


def instance_uids(paths: list[Path]) -> set[str]:
    """Every UID value in the files that is not a registered one (SOP classes, transfer syntaxes,
    coding schemes), nor the implementation's."""
    found = set()
    for path in paths:
        for where, element in elements(pydicom.dcmread(path)):
            if element.VR == "UI" and element.value and "ImplementationClassUID" not in where:
                for value in element.value if isinstance(element.value, list) else [element.value]:
                    if UID(value).name == str(value):  # not a registered UID
                        found.add(str(value))
    return found


def frame_sources(dataset: Dataset) -> list[str]:
    return [frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
            for frame in dataset.PerFrameFunctionalGroupsSequence]


def validator_errors(path: Path) -> set[str]:
    if shutil.which("dciodvfy") is None:
        pytest.fail("dciodvfy is missing: the set-up installs it (Debian package dicom3tools)")
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    return {line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")}


def test_the_table_is_the_basic_profile_and_choices_follow_the_iod():
    assert action_for(Tag("PatientName")) == "Z" and action_for(Tag("PatientBirthDate")) == "Z"
    assert action_for(Tag("StudyInstanceUID")) == "U" and action_for(Tag("ReferencedSOPInstanceUID")) == "U"
    assert action_for(Tag("InstitutionName")) == "X/Z/D" and action_for(Tag("SeriesDescription")) == "X"
    assert action_for(Tag("SourceImageSequence")) == "X/Z/U*" and action_for(Tag("ContentDate")) == "Z/D"
    assert action_for(Tag(0x6002, 0x3000)) == "X"  # overlay data, a repeating group
    assert action_for(Tag(0x5004, 0x0010)) == "X"  # curves
    assert action_for(Tag("Modality")) is None and action_for(Tag("SOPClassUID")) is None  # kept
    # Device Serial Number: Type 1 in a Parametric Map (Enhanced General Equipment), 3 in a CT image.
    pm, ct_image = iod_types(pydicom.uid.ParametricMapStorage), iod_types(CTImageStorage)
    assert resolve("X/Z/D", pm[("DeviceSerialNumber",)]) == "D"
    assert resolve("X/Z/D", ct_image.get(("DeviceSerialNumber",), 0)) == "X"
    assert resolve("Z/D", ct_image[("PatientID",)]) == "Z"


def test_no_identity_and_no_original_uid_remains_anywhere(inputs, done, written):
    assert len(done.files) == len(inputs) and all(p.exists() for p in done.paths)
    originals = instance_uids(inputs)
    assert LOCALIZER_UID in originals and len(originals) > len(inputs)
    assert set(done.uid_map) >= originals
    hostname = socket.gethostname()
    for item in done.files:
        assert not any(uid in item.path.name for uid in originals)
        dataset = written[item.source]
        for where, element in elements(dataset):
            assert not element.tag.is_private, f"{item.path.name}: private {where}"
            if element.keyword in PIXEL_KEYWORDS:
                continue
            value = text(element)
            leaked = [s for s in IDENTIFYING_TEXT if s in value] + [u for u in originals if u in value]
            assert not leaked, f"{item.path.name} {where} = {value[:80]!r} keeps {leaked}"
            if element.VR in ("DA", "DT") and value:
                assert value.startswith("19000101"), f"{item.path.name} {where} keeps the date {value}"
            assert not (hostname and value == hostname), f"{item.path.name} {where} names this workstation"
        assert dataset.PatientName == PSEUDONYM and dataset.PatientID == PSEUDONYM
        for keyword in ("PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate",
                        "ReferringPhysicianName"):
            assert dataset.get(keyword) in ("", None), f"{item.path.name} {keyword}"
        removed = ("InstitutionName", "StationName", "OtherPatientIDsSequence", "RequestAttributesSequence",
                   "SeriesDescription", "StudyDescription", "ImageComments", "DerivationDescription",
                   "PatientAge", "InstanceCreationDate", "SeriesDate", "AcquisitionDate")
        for keyword in removed:
            assert keyword not in dataset, f"{item.path.name} {keyword}"


def test_every_output_says_how_it_was_deidentified(done, written):
    for dataset in written.values():
        assert dataset.PatientIdentityRemoved == "YES"
        assert "Basic Application Confidentiality Profile" in dataset.DeidentificationMethod[0]
        (code,) = dataset.DeidentificationMethodCodeSequence
        assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
            "113100", "DCM", "Basic Application Confidentiality Profile")
        assert dataset.LongitudinalTemporalInformationModified == "REMOVED"
        assert dataset.file_meta.MediaStorageSOPInstanceUID == dataset.SOPInstanceUID


def test_references_resolve_within_the_deidentified_set(ct, results, done, written):
    slices = [written[path] for path in ct.paths]  # slice order
    new_instances = [ds.SOPInstanceUID for ds in slices]
    assert new_instances == [done.uid_map[uid] for uid in ct.sop_instance_uids]
    study, series, frame = done.uid_map[ct.study_uid], done.uid_map[ct.series_uid], done.uid_map[
        ct.frame_of_reference_uid]
    assert {ds.SeriesInstanceUID for ds in slices} == {series}
    derived = {name: written[path] for name, path in results.items()}
    for dataset in [*slices, *derived.values()]:
        assert dataset.StudyInstanceUID == study
    for name in ("pm", "seg"):
        dataset = derived[name]
        assert dataset.FrameOfReferenceUID == frame and dataset.SeriesInstanceUID != series
        sources = frame_sources(dataset)
        assert sorted(sources) == sorted(new_instances)
        (referenced,) = dataset.ReferencedSeriesSequence
        assert referenced.SeriesInstanceUID == series
        assert {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence} <= set(
            new_instances)
        # Each frame still lies on the slice it references.
        for item, uid in zip(dataset.PerFrameFunctionalGroupsSequence, sources, strict=True):
            position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
            source = slices[new_instances.index(uid)]
            np.testing.assert_allclose(position, source.ImagePositionPatient, atol=1e-4)
    assert derived["sc_legend"].SourceImageSequence[0].ReferencedSOPInstanceUID == new_instances[3]
    assert derived["sc_plain"].SourceImageSequence[0].ReferencedSOPInstanceUID == new_instances[1]
    # The slices' reference to an image outside the set is kept, under its new UID.
    assert {ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID for ds in slices} == {
        done.uid_map[LOCALIZER_UID]}
    # highdicom reads the de-identified SEG back as a SEG of the de-identified series.
    item = next(f for f in done.files if f.source == results["seg"])
    seg = hd.seg.segread(item.path)
    assert seg.number_of_segments == 1 and seg.get_source_image_uids()[0][1] == series


def test_pixel_data_is_unchanged(inputs, written):
    for path in inputs:
        before, after = pydicom.dcmread(path), written[path]
        keyword = next(k for k in PIXEL_KEYWORDS if k in before)
        assert after[keyword].value == before[keyword].value, path.name
        np.testing.assert_array_equal(after.pixel_array, before.pixel_array)


def test_the_validator_finds_no_new_error(inputs, done):
    for item in done.files:
        new = validator_errors(item.path) - validator_errors(item.source)
        assert not new, f"{item.path.name} (from {item.source.name}):\n" + "\n".join(sorted(new))


def test_burned_in_text_is_flagged(ct, results, done, tmp_path):
    flagged = {item.source for item in done.burned_in}
    assert flagged == {results["sc_legend"]}  # the legend; the plain SC says NO, the CT says NO
    (warning,) = done.warnings
    assert "Burned In Annotation is YES" in warning and "not checked" in warning
    # A real ultrasound file that does not state it: flagged for its modality; a CT that says YES too.
    from pydicom.data import get_testdata_file

    ultrasound = Path(get_testdata_file("US1_UNCR.dcm"))
    stated = pydicom.dcmread(ct.paths[0])
    stated.BurnedInAnnotation = "YES"
    other = deidentify([ultrasound, stated], tmp_path)
    reasons = {item.sop_class_uid: item.burned_in for item in other.files}
    assert "modality US" in reasons[pydicom.uid.UltrasoundImageStorage]
    assert reasons[CTImageStorage] == "Burned In Annotation is YES"
    assert len(other.warnings) == 2
    us = pydicom.dcmread(other.files[0].path)
    assert us.PatientName == "" and us.PatientIdentityRemoved == "YES"
    assert not any(element.tag.is_private for _, element in elements(us))
    assert not validator_errors(other.files[0].path) - validator_errors(ultrasound)


def test_datasets_in_memory_are_not_modified_and_the_map_is_one_per_call(ct, tmp_path):
    original = pydicom.dcmread(ct.paths[0])
    kept = original.PatientName, original.SOPInstanceUID
    first = deidentify([original], tmp_path / "a")
    second = deidentify([original], tmp_path / "b")
    assert (original.PatientName, original.SOPInstanceUID) == kept
    assert first.uid_map[original.SOPInstanceUID] != second.uid_map[original.SOPInstanceUID]
    assert pydicom.dcmread(first.paths[0]).PatientName == ""


def test_what_cannot_be_done_is_refused(ct, tmp_path):
    from pydicom.data import get_testdata_file

    with pytest.raises(DeidentificationError, match="patient's own"):
        deidentify(ct.paths[:1], tmp_path, patient_pseudonym="MV-0007")
    with pytest.raises(DeidentificationError, match="2 patients"):
        deidentify([ct.paths[0], Path(get_testdata_file("US1_UNCR.dcm"))], tmp_path, patient_pseudonym="P1")
    with pytest.raises(DeidentificationError, match="twice"):
        deidentify([ct.paths[0], ct.paths[0]], tmp_path)
    (tmp_path / "not.dcm").write_text("not DICOM")
    with pytest.raises(DeidentificationError, match="not a readable DICOM file"):
        deidentify([tmp_path / "not.dcm"], tmp_path)
