"""`medvis send|query|retrieve` and `medvis explain --dicom-out` against a real Orthanc PACS.

The round trip a hospital user makes: a real CT series goes into the PACS, is found and
retrieved, explained by a real Keras model, and its Parametric Map, Segmentation and Secondary
Capture go back into the same study, as Orthanc's REST API shows. Every command runs as the
installed `medvis` script, in a subprocess.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.uid import (
    CTImageStorage,
    ParametricMapStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)

from medvis_desktop import cli, imaging
from medvis_desktop.dicomnet import DEFAULT_AE
from medvis_desktop.export.writer import DEFAULT_SEG_FRACTION
from tests import test_cli_explain
from tests.dicomnet import conftest as dicomnet
from tests.dicomnet.conftest import OUR_AE, Orthanc, free_port
from tests.dicomnet.test_orthanc import unknown_sop_class_file
from tests.export.ct_study import CTStudy, write_ct_study
from tests.export.test_dicom_results import VALIDATOR_DEFECT, dciodvfy, frame_sources
from tests.test_cli import run

# Fixtures shared with other modules: the Orthanc of tests/dicomnet (started for this module
# too) and the tiny two-class Keras model with its card (128 × 128 input, brain window).
orthanc = dicomnet.orthanc
model_path = test_cli_explain.model_path

SLICES = 6
CLASSES = {  # what each result series must hold in Orthanc: SOP class, instances
    "PM": (ParametricMapStorage, 1),
    "SEG": (SegmentationStorage, 1),
    "SC": (SecondaryCaptureImageStorage, 1),
}


@pytest.fixture(scope="module")
def ct(tmp_path_factory, head_ct_block) -> CTStudy:
    """Six real head CT slices (256 × 256) as a scanner writes them, a study of their own."""
    return write_ct_study(head_ct_block[10 : 10 + SLICES], tmp_path_factory.mktemp("ct"))


@pytest.fixture(scope="module")
def pushed(orthanc: Orthanc, ct: CTStudy) -> subprocess.CompletedProcess:
    return run("send", str(ct.folder), "--to", str(orthanc.node))


@pytest.fixture(scope="module")
def retrieved(orthanc: Orthanc, ct: CTStudy, pushed, tmp_path_factory) -> subprocess.CompletedProcess:
    store = tmp_path_factory.mktemp("store")
    return run(
        "retrieve", "--pacs", str(orthanc.node), "--study", ct.study_uid, "--series", ct.series_uid,
        "--store", str(store),
    )  # fmt: skip


@pytest.fixture(scope="module")
def explained(
    retrieved, model_path: Path, tmp_path_factory
) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """Grad-CAM of every retrieved slice; (the run, the --out folder, the --dicom-out folder)."""
    series = Path(retrieved.stdout.strip().splitlines()[-1])
    out, dicom_out = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("dicom")
    result = run(
        "explain", "--model", str(model_path), "--input", str(series), "--method", "grad_cam",
        "--out", str(out), "--dicom-out", str(dicom_out),
    )  # fmt: skip
    return result, out, dicom_out


@pytest.fixture(scope="module")
def sent_back(orthanc: Orthanc, explained) -> subprocess.CompletedProcess:
    return run("send", str(explained[2]), "--to", str(orthanc.node))


def result_file(folder: Path, kind: str) -> Path:
    [path] = folder.glob(f"{kind}_*.dcm")
    return path


def study_in_orthanc(orthanc: Orthanc, study_uid: str) -> dict[str, dict]:
    """Series UID → {'classes': SOP classes of its instances, 'count', 'study': their Study UIDs,
    'ids': Orthanc instance IDs}, for every series Orthanc files under this study."""
    study_id = orthanc.study_id(study_uid)
    assert study_id is not None, f"study {study_uid} is not in Orthanc"
    found = {}
    for series in orthanc.get(f"/studies/{study_id}/series"):
        tags = [orthanc.get(f"/instances/{i}/simplified-tags") for i in series["Instances"]]
        found[series["MainDicomTags"]["SeriesInstanceUID"]] = {
            "classes": {t["SOPClassUID"] for t in tags},
            "count": len(tags),
            "study": {t["StudyInstanceUID"] for t in tags},
            "ids": series["Instances"],
        }
    return found


def from_orthanc(orthanc: Orthanc, instance_id: str) -> pydicom.Dataset:
    """An instance as Orthanc stored it (its /file)."""
    import urllib.request

    with urllib.request.urlopen(f"{orthanc.http}/instances/{instance_id}/file", timeout=10) as answer:
        return pydicom.dcmread(io.BytesIO(answer.read()))


# --- the round trip ----------------------------------------------------------------------------


def test_send_pushes_the_ct_series_into_orthanc(orthanc: Orthanc, ct: CTStudy, pushed):
    assert pushed.returncode == 0, pushed.stderr
    lines = pushed.stdout.strip().splitlines()
    assert len(lines) == SLICES + 1
    assert all(line.startswith("OK 0x0000  ") and line.endswith("  stored") for line in lines[:-1])
    assert {Path(line.split()[2]) for line in lines[:-1]} == set(ct.paths)
    assert lines[-1] == f"{orthanc.node} stored all {SLICES} instance(s)"
    assert f"{SLICES}/{SLICES}" in pushed.stderr  # the progress bar
    assert orthanc.series_instances(ct.series_uid) == sorted(ct.sop_instance_uids)


def test_query_finds_the_study_then_its_series(orthanc: Orthanc, ct: CTStudy, pushed):
    studies = run(
        "query", "--pacs", str(orthanc.node), "--patient-id", "MV-0007", "--date", "20240301-",
        "--modality", "CT",
    )  # fmt: skip
    assert studies.returncode == 0, studies.stderr
    [line] = [line for line in studies.stdout.splitlines() if ct.study_uid in line]
    assert line.split()[:5] == [ct.study_uid, "20240311", "MV-0007", "Doe^Jane", "CT"]
    assert "CT HEAD WITHOUT CONTRAST" in line
    nothing = run("query", "--pacs", str(orthanc.node), "--patient-id", "NOBODY-0000")
    assert nothing.returncode == 0 and nothing.stdout.splitlines() == ["0 study(ies)"]
    series = run("query", "--pacs", str(orthanc.node), "--study", ct.study_uid)
    assert series.returncode == 0, series.stderr
    assert series.stdout.splitlines()[0] == f"1 series in study {ct.study_uid}"
    assert series.stdout.splitlines()[1].split() == [ct.series_uid, "CT", "#3", str(SLICES), "images",
                                                     "Head", "2.5mm"]  # fmt: skip


def test_retrieve_gets_the_series_into_the_store_with_c_get(ct: CTStudy, retrieved):
    assert retrieved.returncode == 0, retrieved.stderr
    counts, folder = retrieved.stdout.strip().splitlines()
    assert counts == f"{SLICES} instance(s) retrieved, 0 failed, 0 with warnings"
    assert f"{SLICES}/{SLICES}" in retrieved.stderr
    files = sorted(Path(folder).glob("*.dcm"))
    assert sorted(str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files) == sorted(
        ct.sop_instance_uids
    )
    assert Path(folder).parent.name == ct.study_uid and Path(folder).name == ct.series_uid


def test_retrieve_with_c_move_to_our_storage_server(orthanc: Orthanc, ct: CTStudy, pushed, tmp_path):
    result = run(
        "retrieve", "--pacs", str(orthanc.node), "--study", ct.study_uid, "--series", ct.series_uid,
        "--store", str(tmp_path), "--move-to", OUR_AE, "--port", str(orthanc.our_port),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{SLICES} instance(s) retrieved, 0 failed, 0 with warnings"
    assert len(list(Path(result.stdout.splitlines()[1]).glob("*.dcm"))) == SLICES


def test_explain_writes_the_dicom_results_with_their_provenance(explained):
    result, _, dicom_out = explained
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in dicom_out.iterdir())
    assert len(names) == 6, names  # three objects, each with its provenance record
    for kind, iod in (("PM", "ParametricMap"), ("SEG", "Segmentation"), ("SC", "SCImage")):
        path = result_file(dicom_out, kind)
        assert str(path) in result.stdout.splitlines()
        assert (dicom_out / (path.name + ".provenance.json")).exists()
        dciodvfy(path, iod, forgiven=VALIDATOR_DEFECT if kind == "PM" else ())
    assert "need a DICOM study" not in result.stdout


def test_the_results_go_back_into_the_same_study(orthanc: Orthanc, ct: CTStudy, explained, sent_back):
    assert sent_back.returncode == 0, sent_back.stderr
    lines = sent_back.stdout.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("OK 0x0000") for line in lines[:3])
    assert lines[-1] == f"{orthanc.node} stored all 3 instance(s)"
    assert "skipped 3 file(s) that are not DICOM" in sent_back.stderr  # the provenance records
    series = study_in_orthanc(orthanc, ct.study_uid)
    assert len(series) == 4
    assert series[ct.series_uid]["classes"] == {CTImageStorage} and series[ct.series_uid]["count"] == SLICES
    dicom_out = explained[2]
    for kind, (sop_class, count) in CLASSES.items():
        written = pydicom.dcmread(result_file(dicom_out, kind), stop_before_pixels=True)
        held = series[written.SeriesInstanceUID]
        assert held["classes"] == {sop_class} and held["count"] == count, kind
        assert held["study"] == {ct.study_uid}


def test_the_parametric_map_in_orthanc_lies_on_the_source_slices_with_the_nifti_values(
    orthanc: Orthanc, ct: CTStudy, explained, sent_back
):
    _, out, dicom_out = explained
    series = study_in_orthanc(orthanc, ct.study_uid)
    uid = pydicom.dcmread(result_file(dicom_out, "PM"), stop_before_pixels=True).SeriesInstanceUID
    pm = from_orthanc(orthanc, series[uid]["ids"][0])
    assert pm.NumberOfFrames == SLICES
    nifti = sitk.ReadImage(str(out / "grad_cam_conv2.nii.gz"))
    voxels = sitk.GetArrayFromImage(nifti)
    assert voxels.max() > 0
    seen = []
    for frame, source, values in zip(pm.PerFrameFunctionalGroupsSequence, frame_sources(pm), pm.pixel_array,
                                     strict=True):  # fmt: skip
        z = ct.sop_instance_uids.index(source)
        corner = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(corner, ct.positions[z], atol=1e-4)
        assert nifti.TransformPhysicalPointToIndex(corner) == (0, 0, z)
        np.testing.assert_array_equal(values, voxels[z])
        seen.append(z)
    assert sorted(seen) == list(range(SLICES))


def test_the_segmentation_is_the_map_above_half_its_maximum(orthanc: Orthanc, ct: CTStudy, explained,
                                                             sent_back):  # fmt: skip
    _, out, dicom_out = explained
    series = study_in_orthanc(orthanc, ct.study_uid)
    uid = pydicom.dcmread(result_file(dicom_out, "SEG"), stop_before_pixels=True).SeriesInstanceUID
    seg = from_orthanc(orthanc, series[uid]["ids"][0])
    voxels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "grad_cam_conv2.nii.gz")))
    above = voxels > DEFAULT_SEG_FRACTION * voxels.max()
    assert seg.NumberOfFrames == SLICES and above.any() and not above.all()
    for source, mask in zip(frame_sources(seg), seg.pixel_array, strict=True):
        np.testing.assert_array_equal(mask.astype(bool), above[ct.sop_instance_uids.index(source)])
    assert seg.SegmentSequence[0].SegmentLabel.endswith(": lesion")


def test_the_secondary_capture_is_the_triptych_with_its_legend(orthanc: Orthanc, ct: CTStudy, explained,
                                                                sent_back):  # fmt: skip
    _, out, dicom_out = explained
    series = study_in_orthanc(orthanc, ct.study_uid)
    uid = pydicom.dcmread(result_file(dicom_out, "SC"), stop_before_pixels=True).SeriesInstanceUID
    sc = from_orthanc(orthanc, series[uid]["ids"][0])
    [png] = out.glob("grad_cam_conv2_slice*.png")
    np.testing.assert_array_equal(sc.pixel_array, np.asarray(Image.open(png).convert("RGB")))
    assert sc.BurnedInAnnotation == "YES" and sc.PatientID == ct.patient_id
    z = int(png.stem[-3:])
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == ct.sop_instance_uids[z]


def test_explain_of_a_non_dicom_study_writes_the_secondary_capture_only(model_path, ct: CTStudy, tmp_path):
    nifti = tmp_path / "ct.nii.gz"
    imaging.save(imaging.load(ct.folder), nifti)
    result = run(
        "explain", "--model", str(model_path), "--input", str(nifti), "--method", "grad_cam",
        "--slices", "2:4", "--out", str(tmp_path / "out"), "--dicom-out", str(tmp_path / "dicom"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [p.name[:3] for p in (tmp_path / "dicom").glob("*.dcm")] == ["SC_"]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("The Parametric Map and the Segmentation need a DICOM study; only the Secondary")
    sc = pydicom.dcmread(result_file(tmp_path / "dicom", "SC"))
    assert "not read from DICOM" in sc.ImageComments and sc.BurnedInAnnotation == "YES"


def test_a_deidentified_export_keeps_its_references_and_no_identity(model_path, ct: CTStudy, tmp_path):
    dicom_out = tmp_path / "research"
    result = run(
        "explain", "--model", str(model_path), "--input", str(ct.folder), "--method", "grad_cam",
        "--slices", "1:4", "--out", str(tmp_path / "out"), "--dicom-out", str(dicom_out),
        "--deidentify", "--pseudonym", "RESEARCH-042",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = sorted(dicom_out.iterdir())
    kinds = sorted(path.name.split("_")[0] for path in files)
    assert kinds == ["CT"] * SLICES + ["PM", "SC", "SEG"], kinds  # the whole series, the three results
    assert "burned-in" in result.stderr.lower()  # the SC's legend is drawn into its pixels
    originals = {ct.study_uid, ct.series_uid, ct.frame_of_reference_uid, *ct.sop_instance_uids}
    for path in files:
        raw = path.read_bytes()
        for identity in (ct.patient_name, ct.patient_id, "19610423", "ACC20240311", *originals):
            assert identity.encode() not in raw, (path.name, identity)
    datasets = {path.name.split("_")[0]: pydicom.dcmread(path) for path in files}
    cts = [pydicom.dcmread(path) for path in files if path.name.startswith("CT_")]
    ct_uids = {str(ds.SOPInstanceUID) for ds in cts}
    for ds in [*cts, *datasets.values()]:
        assert ds.PatientID == "RESEARCH-042" and ds.PatientIdentityRemoved == "YES"
        assert ds.StudyInstanceUID == cts[0].StudyInstanceUID
    assert set(frame_sources(datasets["PM"])) <= ct_uids and len(frame_sources(datasets["PM"])) == 3
    assert datasets["PM"].FrameOfReferenceUID == cts[0].FrameOfReferenceUID


def test_deidentify_without_dicom_out_is_one_line(model_path, ct: CTStudy, tmp_path):
    result = run(
        "explain", "--model", str(model_path), "--input", str(ct.folder), "--method", "grad_cam",
        "--out", str(tmp_path / "out"), "--deidentify",
    )  # fmt: skip
    assert result.returncode == 1
    expected = "medvis: --deidentify applies to the DICOM results: give --dicom-out DIR too"
    assert result.stderr.strip() == expected


# --- failures: one line and exit 1 --------------------------------------------------------------


def test_send_with_a_refused_instance_lists_it_and_exits_1(orthanc: Orthanc, ct: CTStudy, pushed, tmp_path):
    odd = unknown_sop_class_file(ct, tmp_path)
    result = run("send", str(ct.paths[0]), str(odd), "--to", str(orthanc.node))
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("OK 0x0000  ") and lines[1].startswith(f"FAILED  {odd}  not sent: ")
    assert result.stderr.strip().splitlines()[-1] == (
        f"medvis: {orthanc.node} accepted 1 of 2 instances; 1 not stored, first private.dcm: "
        f"not sent: {orthanc.node} does not accept 1.2.826.0.1.3680043.8.498.77777"
    )


def test_send_to_a_port_where_nothing_listens(ct: CTStudy):
    port = free_port()
    result = run("send", str(ct.folder), "--to", f"ORTHANC@127.0.0.1:{port}", "--timeout", "5")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"medvis: Cannot reach ORTHANC@127.0.0.1:{port}: connection refused "
        "(is the PACS running, and are host and port right?)"
    ]


def test_query_to_a_wrong_ae_title(orthanc: Orthanc):
    node = f"NOT-ORTHANC@127.0.0.1:{orthanc.node.port}"
    result = run("query", "--pacs", node, "--patient-id", "MV-0007")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"medvis: {node} rejected the association: it does not answer to the AE title 'NOT-ORTHANC'"
    ]


def test_bad_arguments_are_one_line(tmp_path):
    bad_node = run("query", "--pacs", "ORTHANC:4242")
    assert bad_node.returncode == 1
    assert bad_node.stderr.strip().splitlines() == [
        "medvis: 'ORTHANC:4242' is not a DICOM node: write AE@host:port, e.g. PACS@10.0.0.5:104"
    ]
    bad_date = run("query", "--pacs", "ORTHANC@127.0.0.1:4242", "--date", "2024-03-11")
    assert bad_date.returncode == 1 and "--date takes YYYYMMDD" in bad_date.stderr
    half_move = run("retrieve", "--pacs", "P@127.0.0.1:4242", "--study", "1.2", "--series", "1.2.3",
                    "--store", str(tmp_path), "--move-to", "MEDVIS")  # fmt: skip
    assert half_move.returncode == 1 and "--move-to and --port go together" in half_move.stderr
    empty = run("send", str(tmp_path), "--to", "P@127.0.0.1:4242")
    assert empty.returncode == 1 and f"No DICOM file in {tmp_path}" in empty.stderr


# --- what the network commands load ---------------------------------------------------------------


def test_network_commands_load_neither_tensorflow_nor_qt(tmp_path):
    port = free_port()
    pacs = f"P@127.0.0.1:{port}"
    script = (
        "import sys\nfrom medvis_desktop.cli import main\n"
        f"codes = [main(['query', '--pacs', '{pacs}']), main(['send', '{tmp_path}', '--to', '{pacs}']),\n"
        f"         main(['retrieve', '--pacs', '{pacs}', '--study', '1.2', '--series', '1.2.3',"
        f" '--store', '{tmp_path / 'store'}'])]\n"
        "print(codes, 'tensorflow' in sys.modules, 'keras' in sys.modules, 'PySide6' in sys.modules)"
    )
    (tmp_path / "x.dcm").write_bytes(b"not DICOM")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert loaded.stdout.splitlines()[-1] == "[1, 1, 1] False False False", loaded.stderr


def test_the_parsers_defaults_are_the_engines():
    assert cli.CALLING_AE == DEFAULT_AE
    assert cli.SEG_FRACTION == DEFAULT_SEG_FRACTION
