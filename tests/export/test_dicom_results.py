"""DICOM results read back as another program would: pydicom/highdicom, SimpleITK and dciodvfy.

A real CT series (head CT pixels, every CT module filled) is written, loaded through
medvis_desktop.imaging, and each result is written to disk, read back and checked against the
source files themselves: positions, references, patient/study identity, values voxel by voxel,
and the standard's validator (dciodvfy, Debian dicom3tools) with no error.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medvis_desktop import export, imaging
from medvis_desktop.export import dicom_results
from medvis_desktop.export.dicom_results import DicomResultError
from medvis_desktop.export.provenance import Provenance, sha256_of
from tests.export.ct_study import CTStudy, write_ct_study

UNCOMPUTED = 2  # the slice the synthetic maps leave NaN, as the runner leaves slices it skipped
# dicom3tools 1.00~20220618 (the Debian package) checks Minimum/Maximum Stored Value Mapped, two
# FD attributes of the Stored Value Color Range Macro, against string enumerated values; the
# standard defines none and dicom3tools' current source has no such check. Only these two lines
# are forgiven, and only for a Parametric Map that carries a palette.
VALIDATOR_DEFECT = (
    "Error - Non-string attribute while verifying string enumerated value for attribute "
    "<Minimum Stored Value Mappe>",
    "Error - Non-string attribute while verifying string enumerated value for attribute "
    "<Maximum Stored Value Mapped>",
)


def dciodvfy(path: Path, iod: str, forgiven: tuple[str, ...] = ()) -> list[str]:
    """Run the validator; fail unless it checked `path` as `iod` and found no error. Warnings
    are printed (pytest -s shows them)."""
    if shutil.which("dciodvfy") is None:
        pytest.fail("dciodvfy is missing: the set-up installs it (Debian package dicom3tools)")
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    lines = (result.stdout + result.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error") and line not in forgiven]
    warnings = [line for line in lines if line.startswith("Warning")]
    print(f"dciodvfy {path.name}: {len(warnings)} warning(s)", *warnings, sep="\n  ")
    assert not errors, f"dciodvfy {path.name}:\n" + "\n".join(errors)
    assert iod in lines, f"dciodvfy did not recognise {path.name} as {iod}: {lines[:3]}"
    return lines


@pytest.fixture(scope="module")
def ct(tmp_path_factory, head_ct_hu) -> CTStudy:
    """Six real axial slices, 64 × 64 around the brain, rotated 12° in plane."""
    hu = np.clip(head_ct_hu[50:56, 96:160, 96:160], -1024, 3071).astype(np.int16)
    return write_ct_study(hu, tmp_path_factory.mktemp("ct"))


@pytest.fixture(scope="module")
def volume(ct) -> imaging.Volume:
    return imaging.load(ct.folder)


@pytest.fixture(scope="module")
def heat(volume) -> np.ndarray:
    """A map we can check voxel by voxel, NaN on one slice (not computed)."""
    z, _, x = np.indices(volume.shape)
    values = (volume.voxels.astype(np.float32) + 1024.0) / 1000.0 + 0.01 * z + 0.001 * x
    values[UNCOMPUTED] = np.nan
    return values.astype(np.float32)


@pytest.fixture(scope="module")
def provenance(ct) -> Provenance:
    record = Provenance.for_run(
        "grad_cam", model_path=None, input_path=ct.folder, layer="conv2", target=1,
        parameters={"mode": "feature_map", "batch_size": 8}, method_label="Grad-CAM",
    )
    record.model_sha256 = "ab" * 32
    return record


def frame_sources(dataset: pydicom.Dataset) -> list[str]:
    """The SOP Instance UID each frame was derived from, in frame order."""
    return [
        frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        for frame in dataset.PerFrameFunctionalGroupsSequence
    ]


def assert_same_patient_and_study(dataset: pydicom.Dataset, ct: CTStudy) -> None:
    source = pydicom.dcmread(ct.paths[0], stop_before_pixels=True)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                    "StudyID", "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName"):
        assert dataset.get(keyword) == source.get(keyword), keyword
    assert dataset.SeriesInstanceUID != source.SeriesInstanceUID


def test_the_source_series_is_valid_dicom(ct):
    for path in ct.paths[:2]:
        dciodvfy(path, "CTImage")


def test_a_dicom_volume_keeps_its_source_instances_in_slice_order(ct, volume, tmp_path):
    source = volume.dicom
    assert source is not None
    assert [s.sop_instance_uid for s in source.slices] == ct.sop_instance_uids
    assert [s.position for s in source.slices] == ct.positions
    assert (source.study_instance_uid, source.series_instance_uid, source.frame_of_reference_uid) == (
        ct.study_uid, ct.series_uid, ct.frame_of_reference_uid
    )
    assert all(s.frame_number is None for s in source.slices)
    header = source.patient_study
    assert header.PatientID == ct.patient_id and "PixelData" not in header and "KVP" not in header
    np.testing.assert_allclose(volume.index_to_patient(np.array([5, 0, 0])), ct.positions[5], atol=1e-6)
    imaging.save(volume, tmp_path / "ct.nii.gz")
    assert imaging.load(tmp_path / "ct.nii.gz").dicom is None


def test_parametric_map_frames_lie_on_the_computed_source_slices(ct, volume, heat, provenance, tmp_path):
    pm = dicom_results.parametric_map(volume, heat, provenance, class_name="lesion")
    path = dicom_results.save(pm, tmp_path)
    dciodvfy(path, "ParametricMap", forgiven=VALIDATOR_DEFECT)
    back = pydicom.dcmread(path)
    computed = [z for z in range(volume.shape[0]) if z != UNCOMPUTED]
    assert back.SOPClassUID == pydicom.uid.ParametricMapStorage and back.NumberOfFrames == len(computed)
    assert "FloatPixelData" in back and back.BitsAllocated == 32
    assert_same_patient_and_study(back, ct)
    assert back.FrameOfReferenceUID == ct.frame_of_reference_uid
    sources = frame_sources(back)
    assert sorted(sources) == sorted(ct.sop_instance_uids[z] for z in computed)
    assert ct.sop_instance_uids[UNCOMPUTED] not in sources
    pixels = back.pixel_array
    for frame, uid, values in zip(back.PerFrameFunctionalGroupsSequence, sources, pixels, strict=True):
        z = ct.sop_instance_uids.index(uid)
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(position, ct.positions[z], atol=1e-4)
        np.testing.assert_array_equal(values, heat[z])
    referenced = back.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == ct.series_uid
    assert {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence} == set(sources)


def test_parametric_map_says_what_it_is_and_how_it_was_made(volume, heat, provenance, tmp_path):
    pm = dicom_results.parametric_map(volume, heat, provenance, class_name="lesion")
    back = pydicom.dcmread(dicom_results.save(pm, tmp_path))
    mapping = back.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    quantity = mapping.QuantityDefinitionSequence[0].ConceptCodeSequence[0]
    assert (quantity.CodeValue, quantity.CodingSchemeDesignator) == ("130403", "DCM")  # Grad-CAM
    unit = mapping.MeasurementUnitsCodeSequence[0]
    assert (unit.CodeValue, unit.CodingSchemeDesignator) == ("1", "UCUM")
    assert mapping.RealWorldValueSlope == 1 and mapping.RealWorldValueIntercept == 0
    assert mapping.DoubleFloatRealWorldValueLastValueMapped == pytest.approx(float(np.nanmax(heat)))
    assert back.ContentLabel == "GRADCAM"
    assert "Grad-CAM" in back.ContentDescription and "conv2" in back.ContentDescription
    assert "lesion" in back.ContentDescription
    assert "medvis" in back.SeriesDescription and "Grad-CAM" in back.SeriesDescription
    assert f"slices {UNCOMPUTED} " in back.ImageComments and "not computed" in back.ImageComments
    assert provenance.model_sha256 in back.DerivationDescription
    assert "batch_size" in back.DerivationDescription
    versions = list(back.SoftwareVersions)
    assert f"medvis {provenance.medvis_version}" in versions and f"highdicom {hd.__version__}" in versions
    assert back.Manufacturer == "medvis" and back.ContentQualification == "RESEARCH"
    assert back.BodyPartExamined == "HEAD"
    # The palette: Hot Iron over the map's range (COLOR_RANGE), as the standard does for float maps.
    assert back.PixelPresentation == "COLOR_RANGE" and back.RedPaletteColorLookupTableDescriptor[2] == 16
    color_range = back.SharedFunctionalGroupsSequence[0].StoredValueColorRangeSequence[0]
    assert color_range.MaximumStoredValueMapped == pytest.approx(float(np.nanmax(heat)))
    assert "ICCProfile" in back


def test_parametric_map_values_equal_the_nifti_export_at_the_same_place(volume, heat, provenance, tmp_path):
    """Two exports of one map, placed by their own geometry, agree voxel for voxel."""
    pm = pydicom.dcmread(dicom_results.save(dicom_results.parametric_map(volume, heat, provenance), tmp_path))
    nifti = sitk.ReadImage(str(export.save_heatmap(volume, heat, tmp_path / "heat.nii.gz")))
    voxels = sitk.GetArrayFromImage(nifti)
    for frame, values in zip(pm.PerFrameFunctionalGroupsSequence, pm.pixel_array, strict=True):
        corner = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        x, y, z = nifti.TransformPhysicalPointToIndex(corner)
        assert (x, y) == (0, 0)
        np.testing.assert_array_equal(values, voxels[z])
    assert not voxels[UNCOMPUTED].any()  # NIfTI writes the uncomputed slice as 0; the PM leaves it out


def test_parametric_map_without_palette_passes_the_validator_with_no_error(volume, heat, provenance,
                                                                            tmp_path):
    pm = dicom_results.parametric_map(volume, heat / 10, provenance, palette=False)
    path = dicom_results.save(pm, tmp_path)
    dciodvfy(path, "ParametricMap")
    back = pydicom.dcmread(path)
    assert back.PixelPresentation == "MONOCHROME" and "RedPaletteColorLookupTableData" not in back
    voi = back.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0]
    assert voi.VOILUTFunction == "LINEAR_EXACT" and float(voi.WindowWidth) < 1


def test_segmentation_frames_are_the_thresholded_maps(ct, volume, heat, provenance, tmp_path):
    threshold = float(np.nanmedian(heat))
    maps = {"lesion": heat, "normal": np.float32(2 * threshold) - heat}  # above ⇔ lesion below
    seg = dicom_results.segmentation(volume, maps, provenance, threshold=threshold)
    path = dicom_results.save(seg, tmp_path)
    dciodvfy(path, "Segmentation")
    back = pydicom.dcmread(path)
    assert back.SegmentationType == "BINARY" and back.Modality == "SEG"
    assert_same_patient_and_study(back, ct)
    assert back.FrameOfReferenceUID == ct.frame_of_reference_uid
    computed = [z for z in range(volume.shape[0]) if z != UNCOMPUTED]
    assert back.NumberOfFrames == len(computed) * len(maps)  # empty frames are kept
    names = list(maps)
    pixels = back.pixel_array
    seen, inside = set(), {1: 0, 2: 0}
    frames = back.PerFrameFunctionalGroupsSequence
    for frame, uid, mask in zip(frames, frame_sources(back), pixels, strict=True):
        z = ct.sop_instance_uids.index(uid)
        segment = frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        expected = maps[names[segment - 1]][z] > threshold
        np.testing.assert_array_equal(mask.astype(bool), expected)
        inside[segment] += int(expected.sum())
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(position, ct.positions[z], atol=1e-4)
        seen.add((z, segment))
    assert seen == {(z, s) for z in computed for s in (1, 2)}
    assert all(0 < count < len(computed) * 64 * 64 for count in inside.values())  # neither empty nor full
    for number, item in enumerate(back.SegmentSequence, start=1):
        assert item.SegmentAlgorithmType == "AUTOMATIC" and names[number - 1] in item.SegmentLabel
        algorithm = item.SegmentationAlgorithmIdentificationSequence[0]
        assert "medvis" in algorithm.AlgorithmName and "Grad-CAM" in algorithm.AlgorithmName
        assert provenance.model_sha256 in algorithm.AlgorithmParameters
        assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == "123110"  # Artificial Intelligence
    assert hd.seg.segread(path).number_of_segments == 2


def test_secondary_capture_of_a_dicom_study_joins_it(ct, volume, provenance, tmp_path):
    rgb = np.random.default_rng(5).integers(0, 256, (48, 150, 3), dtype=np.uint8)
    sc = dicom_results.secondary_capture(
        rgb, volume, burned_in_annotation=True, description="Grad-CAM triptych", provenance=provenance,
        slices=[3],
    )
    path = dicom_results.save(sc, tmp_path)
    dciodvfy(path, "SCImage")
    back = pydicom.dcmread(path)
    assert back.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert_same_patient_and_study(back, ct)
    assert back.BurnedInAnnotation == "YES" and back.ConversionType == "WSD"
    np.testing.assert_array_equal(back.pixel_array, rgb)
    assert back.SourceImageSequence[0].ReferencedSOPInstanceUID == ct.sop_instance_uids[3]
    assert list(back.PatientOrientation) == ["LP", "PR"]  # along rows, down columns: rotated 12° in plane
    assert provenance.model_sha256 in back.DerivationDescription
    assert "ImageComments" not in back


def test_secondary_capture_of_a_non_dicom_study_starts_a_new_one_and_says_so(volume, tmp_path):
    imaging.save(volume, tmp_path / "ct.nii.gz")
    nifti = imaging.load(tmp_path / "ct.nii.gz")
    rgb = np.full((32, 32, 3), 90, dtype=np.uint8)
    sc = dicom_results.secondary_capture(rgb, nifti, burned_in_annotation=False, description="view")
    path = dicom_results.save(sc, tmp_path)
    dciodvfy(path, "SCImage")
    back = pydicom.dcmread(path)
    assert back.StudyInstanceUID != volume.dicom.study_instance_uid and back.PatientID == ""
    assert "ct.nii.gz" in back.ImageComments and "unknown" in back.ImageComments
    assert back.BurnedInAnnotation == "NO" and back.StudyDate
    with pytest.raises(DicomResultError, match="not read from DICOM"):
        dicom_results.parametric_map(nifti, np.zeros(nifti.shape, np.float32), Provenance.for_run(
            "grad_cam", model_path=None, input_path=None))


def test_a_single_image_gets_one_frame_and_nothing_computed_is_refused(tmp_path, head_ct_hu, provenance):
    one_slice = np.clip(head_ct_hu[60:61, 96:160, 96:160], -1024, 3071).astype(np.int16)
    ct = write_ct_study(one_slice, tmp_path / "one")
    image = imaging.load(ct.folder)
    heat = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(1, 64, 64)
    pm = pydicom.dcmread(dicom_results.save(dicom_results.parametric_map(image, heat, provenance), tmp_path))
    assert pm.NumberOfFrames == 1 and frame_sources(pm) == ct.sop_instance_uids
    np.testing.assert_array_equal(pm.pixel_array, heat[0])
    assert "ImageComments" not in pm
    seg = dicom_results.segmentation(image, {"lesion": heat}, provenance, threshold=0.5)
    dciodvfy(dicom_results.save(seg, tmp_path), "Segmentation")
    with pytest.raises(DicomResultError, match="No slice was computed"):
        dicom_results.parametric_map(image, np.full_like(heat, np.nan), provenance)


def test_a_real_model_explanation_goes_out_as_dicom(ct, volume, tmp_path):
    """A tiny Keras classifier explains three slices; the PM and SEG carry exactly those maps."""
    from medvis_desktop.explain.runner import explain_volume
    from medvis_desktop.models.card import Intensity, ModelCard, write_card
    from tests.conftest import tiny_classifier

    model_path = tmp_path / "tiny.keras"
    tiny_classifier(64).save(model_path)
    card = ModelCard(input_mode="2d", input_shape=(64, 64, 1), class_names=["normal", "lesion"],
                     intensity=Intensity(kind="window", center=40, width=80))
    write_card(card, model_path)
    result = explain_volume(volume, model_path, "grad_cam", layer="conv2", target=1, slices=[4, 0, 3])
    record = Provenance.for_run("grad_cam", model_path=model_path, input_path=ct.folder, layer=result.layer,
                                target=result.target, parameters=result.parameters, method_label=result.label)
    pm_path = dicom_results.save(
        dicom_results.parametric_map(volume, result.maps, record, class_name=result.class_name,
                                     computed=result.computed), tmp_path)
    dciodvfy(pm_path, "ParametricMap", forgiven=VALIDATOR_DEFECT)
    pm = pydicom.dcmread(pm_path)
    assert sorted(ct.sop_instance_uids.index(uid) for uid in frame_sources(pm)) == [0, 3, 4]
    for uid, values in zip(frame_sources(pm), pm.pixel_array, strict=True):
        np.testing.assert_array_equal(values, result.maps[ct.sop_instance_uids.index(uid)])
    assert sha256_of(model_path) in pm.DerivationDescription and "lesion" in pm.ContentDescription
    threshold = float(np.nanmax(result.maps)) / 2
    seg = dicom_results.segmentation(volume, {"lesion": result.maps}, record, threshold=threshold)
    seg_path = dicom_results.save(seg, tmp_path)
    dciodvfy(seg_path, "Segmentation")
    back = pydicom.dcmread(seg_path)
    for uid, mask in zip(frame_sources(back), back.pixel_array, strict=True):
        z = ct.sop_instance_uids.index(uid)
        np.testing.assert_array_equal(mask.astype(bool), result.maps[z] > threshold)
    assert back.NumberOfFrames == 3


def test_a_3d_model_in_patches_writes_only_its_whole_slices_and_says_which_are_missing(ct, volume, tmp_path):
    """A Conv3D classifier over (4, 32, 32) patches, asked for slice 0 only: the runner computes
    the patches covering it, and the slices all of whose patches ran are the frames written."""
    import keras
    from keras import layers

    from medvis_desktop.explain.runner import explain_volume
    from medvis_desktop.models.card import Intensity, ModelCard

    keras.utils.set_random_seed(11)
    inputs = keras.Input((4, 32, 32, 1))
    h = layers.Conv3D(4, 3, padding="same", activation="relu", name="conv3d")(inputs)
    outputs = layers.Dense(2, activation="softmax")(layers.GlobalAveragePooling3D()(h))
    card = ModelCard(input_mode="3d", input_shape=(4, 32, 32, 1), class_names=["normal", "lesion"],
                     intensity=Intensity(kind="window", center=40, width=80), resize="crop_or_pad")
    result = explain_volume(volume, keras.Model(inputs, outputs), "grad_cam", card=card, layer="conv3d",
                            target=1, slices=[0])  # fmt: skip
    computed = np.nonzero(result.computed)[0].tolist()
    assert 0 in computed and len(computed) < volume.shape[0]  # some slices were left out
    record = Provenance.for_run("grad_cam", model_path=None, input_path=ct.folder, layer="conv3d")
    pm = dicom_results.parametric_map(
        volume, result.maps, record, class_name="lesion", computed=result.computed
    )
    path = dicom_results.save(pm, tmp_path)
    dciodvfy(path, "ParametricMap", forgiven=VALIDATOR_DEFECT)
    back = pydicom.dcmread(path)
    written = [ct.sop_instance_uids.index(uid) for uid in frame_sources(back)]
    assert sorted(written) == computed
    frames = back.pixel_array.reshape(-1, *volume.shape[1:])  # one frame comes back as 2D
    for z, values in zip(written, frames, strict=True):
        np.testing.assert_array_equal(values, result.maps[z])
    missing = sorted(set(range(volume.shape[0])) - set(computed))
    assert missing == list(range(missing[0], missing[-1] + 1))  # the patches further down the volume
    assert f"slices {missing[0]}-{missing[-1]} (0-based" in back.ImageComments
    assert "were not computed" in back.ImageComments


def test_a_radiograph_without_frame_of_reference_gets_a_seg_but_no_parametric_map(tmp_path, provenance):
    """A real computed radiograph (pydicom-data): no Frame of Reference, a zero Pixel Spacing."""
    from pydicom.data import get_testdata_file

    folder = tmp_path / "cr"
    folder.mkdir()
    shutil.copy(get_testdata_file("RG1_UNCR.dcm"), folder / "cr.dcm")
    radiograph = imaging.load(folder)
    assert radiograph.dicom.frame_of_reference_uid is None and radiograph.shape[0] == 1
    heat = np.random.default_rng(2).random(radiograph.shape).astype(np.float32)
    with pytest.raises(DicomResultError, match="Frame of Reference"):
        dicom_results.parametric_map(radiograph, heat, provenance)
    path = dicom_results.save(dicom_results.segmentation(radiograph, {"lesion": heat}, provenance,
                                                         threshold=0.5), tmp_path)
    dciodvfy(path, "Segmentation")
    back = pydicom.dcmread(path)
    source = pydicom.dcmread(folder / "cr.dcm", stop_before_pixels=True)
    assert frame_sources(back) == [source.SOPInstanceUID]
    assert list(back.PatientOrientation) == list(source.PatientOrientation)
    np.testing.assert_array_equal(back.pixel_array.astype(bool), heat[0] > 0.5)


def test_a_volume_cropped_after_loading_no_longer_passes_for_its_source(volume, heat, provenance):
    from dataclasses import replace

    cropped = replace(volume, voxels=volume.voxels[:, :32, :32])
    with pytest.raises(DicomResultError, match="no longer match"):
        dicom_results.parametric_map(cropped, heat[:, :32, :32], provenance)
    with pytest.raises(DicomResultError, match="differs"):
        dicom_results.segmentation(volume, {"lesion": heat[:, :32, :32]}, provenance, threshold=1.0)
