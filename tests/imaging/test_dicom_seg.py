"""A DICOM SEG read as a reference mask on a study's grid (imaging/dicom_seg.py).

Real head CT slices are written as a CT series (dicom_factory), loaded by imaging.load, and SEGs
are made by highdicom from the CT files read with pydicom, with boxes we place ourselves: the
expected masks are those numpy boxes, never what the reader under test computes. Frames are
shuffled in the file, series run in either slice direction, unevenly or tilted, and SEGs made on
other series, damaged or not SEGs at all are refused in one line that says why.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import pack_bits
from pydicom.uid import ComputedRadiographyImageStorage, generate_uid

from medvis_desktop import imaging
from medvis_desktop.errors import LoadError, MedvisError
from medvis_desktop.export import dicom_results
from medvis_desktop.export.provenance import Provenance
from medvis_desktop.imaging.dicom_seg import SegError, SegmentInfo, is_seg, seg_mask, segments
from tests.export.ct_study import write_ct_study
from tests.imaging.dicom_factory import SeriesSpec
from tests.imaging.seg_factory import Boxes, Study, expected, make_seg, saved, write_study

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR", "ignore:End of file reached")

SLICES, ROWS, COLUMNS = 8, 48, 64
# Segment → (slice, rows, columns) boxes on the study's grid; both segments on slice 3, overlapping.
BOXES: Boxes = {
    1: [(2, slice(10, 20), slice(12, 30)), (3, slice(11, 21), slice(14, 33))],
    2: [(3, slice(18, 30), slice(25, 40)), (6, slice(30, 44), slice(5, 17))],
}


@pytest.fixture(scope="module")
def hu(head_ct_hu) -> np.ndarray:
    block = head_ct_hu[50 : 50 + SLICES, 96 : 96 + ROWS, 96 : 96 + COLUMNS]
    return np.clip(block, -1024, 3071).astype(np.int16)


@pytest.fixture(scope="module")
def frame_of_reference() -> str:
    return generate_uid()


@pytest.fixture(scope="module")
def study(tmp_path_factory, hu, frame_of_reference) -> Study:
    return write_study(tmp_path_factory.mktemp("ct"), hu, SeriesSpec(), frame_of_reference)


def shuffle_frames(path: Path, seed: int = 5) -> list[int]:
    """Rewrite a BINARY SEG with its frames (pixels and functional groups together) in another order."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(frames))]
    assert order != sorted(order)
    groups = ds.PerFrameFunctionalGroupsSequence
    ds.PerFrameFunctionalGroupsSequence = [groups[i] for i in order]
    ds.PixelData = pack_bits(frames[order])
    ds.save_as(path, enforce_file_format=True)
    return order


def refused(path: Path, volume: imaging.Volume | None, *matches: str, segment: int | None = None) -> str:
    """The one-line SegError reading `path` gives (segments() when `volume` is None)."""
    with pytest.raises(SegError) as caught:
        if volume is None:
            segments(path)
        else:
            seg_mask(path, volume, segment)
    message = str(caught.value)
    assert isinstance(caught.value, LoadError) and isinstance(caught.value, MedvisError)
    assert "\n" not in message and path.name in message, message
    for match in matches:
        assert match.lower() in message.lower(), message
    return message


@pytest.fixture(scope="module")
def seg_path(tmp_path_factory, study) -> Path:
    return saved(make_seg(study, BOXES), tmp_path_factory.mktemp("seg") / "boxes.dcm")


@pytest.mark.parametrize("segment", [1, 2, None])
def test_each_segment_and_the_union_are_exactly_the_boxes_on_their_slices(study, seg_path, segment):
    mask = seg_mask(seg_path, study.volume, segment)
    assert mask.dtype == bool and mask.shape == study.volume.shape
    np.testing.assert_array_equal(mask, expected(study.volume.shape, segment, BOXES))


def test_segments_gives_the_numbers_and_labels(seg_path):
    assert segments(seg_path) == [SegmentInfo(1, "Lesion"), SegmentInfo(2, "Oedema")]
    assert segments(str(seg_path)) == segments(seg_path)


def test_a_study_read_from_nifti_takes_the_seg_on_its_regular_grid(tmp_path, study, seg_path):
    """No DICOM source (no stored positions, no frame of reference): the Volume's grid places frames."""
    imaging.save(study.volume, tmp_path / "ct.nii.gz")
    nifti = imaging.load(tmp_path / "ct.nii.gz")
    assert nifti.dicom is None
    np.testing.assert_array_equal(seg_mask(seg_path, nifti, 2), expected(nifti.shape, 2, BOXES))


def test_is_seg_tells_a_seg_from_anything_else(tmp_path, study, seg_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert is_seg(seg_path) and is_seg(str(seg_path))
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(seg_path.read_bytes()[:140])
    ct_file = next(p for p in study.folder.iterdir() if p.is_file())
    assert not any(is_seg(p) for p in (ct_file, text, cut, study.folder, tmp_path / "absent.dcm"))


def test_an_unknown_segment_is_refused_naming_the_available_ones(study, seg_path):
    message = refused(seg_path, study.volume, "no segment 3", "1 (Lesion)", "2 (Oedema)", segment=3)
    assert message.endswith("available: 1 (Lesion), 2 (Oedema)")


@pytest.mark.parametrize(
    "spec",
    [
        SeriesSpec(slice_step=-1.5),  # the files run head to feet: the volume's z is their reverse
        SeriesSpec(extra_offsets={4: 0.6, 5: 0.6, 6: 0.6, 7: 0.6}),  # uneven: no regular stack
        SeriesSpec(shear_per_slice=0.4),  # gantry tilt: slices sheared along the columns
        SeriesSpec(row_direction=(1, 0, 0), column_direction=(0, 0, -1)),  # coronal
    ],
    ids=["reverse-order", "uneven", "tilt", "coronal"],
)
def test_frames_land_on_their_slices_whatever_the_series_geometry_and_frame_order(
    tmp_path, hu, frame_of_reference, spec
):
    study = write_study(tmp_path / "ct", hu, spec, frame_of_reference)
    path = saved(make_seg(study, BOXES), tmp_path / "seg.dcm")
    shuffle_frames(path)
    for segment in (1, 2, None):
        np.testing.assert_array_equal(
            seg_mask(path, study.volume, segment), expected(study.volume.shape, segment, BOXES)
        )


def test_shuffled_frames_of_the_plain_series_land_on_the_right_slices(tmp_path, study):
    path = saved(make_seg(study, BOXES), tmp_path / "seg.dcm")
    shuffle_frames(path, seed=11)
    positions = [
        float(item.PlanePositionSequence[0].ImagePositionPatient[2])
        for item in pydicom.dcmread(path).PerFrameFunctionalGroupsSequence
    ]
    assert positions != sorted(positions) and positions != sorted(positions, reverse=True)
    np.testing.assert_array_equal(seg_mask(path, study.volume), expected(study.volume.shape, None, BOXES))


@pytest.mark.parametrize(
    ("spec", "matches"),
    [
        (SeriesSpec(origin=(-119.5, -130.0, -80.0)), ["off the study's slices", "0.500 mm within the plane"]),
        (SeriesSpec(origin=(-120.0, -130.0, -79.25)), ["+0.750 mm along the slice normal"]),
        (SeriesSpec(pixel_spacing=(0.8, 0.8)), ["pixel spacing 0.8 × 0.8 mm", "0.957031 × 0.957031"]),
        (SeriesSpec(row_direction=(0, 1, 0), column_direction=(1, 0, 0)), ["orientation"]),
    ],
    ids=["origin-in-plane", "origin-along-normal", "pixel-spacing", "orientation"],
)
def test_a_seg_made_on_another_series_is_refused_naming_what_differs(
    tmp_path, hu, study, frame_of_reference, spec, matches
):
    other = write_study(tmp_path / "other", hu, spec, frame_of_reference)
    path = saved(make_seg(other, BOXES), tmp_path / "other-seg.dcm")
    np.testing.assert_array_equal(seg_mask(path, other.volume), expected(other.volume.shape, None, BOXES))
    refused(path, study.volume, "does not lie on the study's planes", *matches)


def test_a_seg_of_another_size_or_frame_of_reference_is_refused(tmp_path, hu, study, frame_of_reference):
    smaller = write_study(tmp_path / "small", hu[:, :40], SeriesSpec(), frame_of_reference)
    boxes = {1: [(2, slice(10, 20), slice(12, 30))]}
    path = saved(make_seg(smaller, boxes), tmp_path / "small.dcm")
    refused(path, study.volume, "rows × columns 40 × 64 vs the study's 48 × 64")
    elsewhere = write_study(tmp_path / "elsewhere", hu, SeriesSpec(), generate_uid())
    path = saved(make_seg(elsewhere, BOXES), tmp_path / "elsewhere.dcm")
    refused(path, study.volume, "frame of reference")


def test_fractional_segs_are_thresholded_at_half_their_maximum(tmp_path, study):
    seg = make_seg(study, BOXES, kind="FRACTIONAL", value=0.6, max_fractional_value=200)
    inside = saved(seg, tmp_path / "in.dcm")
    assert pydicom.dcmread(inside).MaximumFractionalValue == 200
    np.testing.assert_array_equal(seg_mask(inside, study.volume, 2), expected(study.volume.shape, 2, BOXES))
    outside = saved(make_seg(study, BOXES, kind="FRACTIONAL", value=0.4), tmp_path / "out.dcm")
    assert not seg_mask(outside, study.volume).any()


def test_a_label_map_seg_gives_each_segment_its_own_voxels(tmp_path, study):
    boxes = {1: BOXES[1][:1], 2: BOXES[2]}  # a label map has one label per voxel: no overlap
    path = saved(make_seg(study, boxes, kind="LABELMAP"), tmp_path / "labels.dcm")
    assert pydicom.dcmread(path).SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.7"
    for segment in (1, 2, None):
        np.testing.assert_array_equal(
            seg_mask(path, study.volume, segment), expected(study.volume.shape, segment, boxes)
        )


def test_a_seg_covering_one_slice_leaves_the_others_false(tmp_path, study):
    boxes = {1: [(7, slice(0, ROWS), slice(0, COLUMNS))]}
    path = saved(make_seg(study, boxes), tmp_path / "one.dcm")
    mask = seg_mask(path, study.volume)
    assert mask[7].all() and not mask[:7].any()


def test_a_truncated_seg_is_refused_in_one_line(tmp_path, study, seg_path):
    data = seg_path.read_bytes()
    body = tmp_path / "truncated-body.dcm"
    body.write_bytes(data[: len(data) - 200])
    refused(body, study.volume, "damaged DICOM SEG", "declares")
    refused(body, None, "damaged DICOM SEG")
    head = tmp_path / "truncated-head.dcm"
    head.write_bytes(data[:700])
    refused(head, study.volume, "damaged")


def test_a_non_seg_dicom_and_a_non_dicom_file_are_refused_in_one_line(tmp_path, study):
    ct_file = next(p for p in study.folder.iterdir() if p.is_file())
    refused(ct_file, study.volume, "not a DICOM SEG", "CT Image Storage")
    refused(ct_file, None, "not a DICOM SEG")
    text = tmp_path / "notes.dcm"
    text.write_text("not an image\n" * 20)
    refused(text, study.volume, "not a DICOM file")
    refused(study.folder, study.volume, "folder")
    with pytest.raises(SegError, match="Nothing found"):
        seg_mask(tmp_path / "absent.dcm", study.volume)


def damaged(path: Path, target: Path, change) -> Path:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(target, enforce_file_format=True)
    return target


def test_a_hostile_seg_header_is_refused_in_one_line_not_a_crash(tmp_path, study, seg_path):
    def claim_more_frames(ds):
        ds.NumberOfFrames = 100_000

    def nan_position(ds):
        ds.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence[0].ImagePositionPatient = ["nan", 0, 0]

    def unknown_segment(ds):
        ds.PerFrameFunctionalGroupsSequence[0].SegmentIdentificationSequence[0].ReferencedSegmentNumber = 9

    def no_segments(ds):
        del ds.SegmentSequence

    cases = {
        claim_more_frames: "damaged",
        nan_position: "damaged",
        unknown_segment: "segment 9",
        no_segments: "damaged",
    }
    for change, match in cases.items():
        target = damaged(seg_path, tmp_path / f"{change.__name__}.dcm", change)
        refused(target, study.volume, match)


def test_a_seg_without_patient_geometry_is_refused_as_unplaceable(tmp_path, study):
    """A SEG of an image without a frame of reference (a radiograph) has frames aligned to their
    source pixel for pixel, with no position: nothing places them on a study's slices."""
    radiograph = copy.deepcopy(study.sources[3])
    for keyword in ("FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient"):
        delattr(radiograph, keyword)
    radiograph.PatientOrientation = ["L", "P"]
    radiograph.SOPClassUID = ComputedRadiographyImageStorage
    radiograph.Modality = "CR"
    seg = make_seg(Study(study.folder, study.volume, [radiograph] * SLICES), {1: BOXES[1][:1]})
    path = saved(seg, tmp_path / "planar.dcm")
    assert "FrameOfReferenceUID" not in pydicom.dcmread(path)
    refused(path, study.volume, "frame 1 has no position", "cannot be placed")


def test_a_seg_written_by_medvis_reads_back_onto_its_study(tmp_path_factory, head_ct_hu):
    """The real round trip: dicom_results writes regions of two maps over a tilted-in-plane CT
    (one slice not computed), and seg_mask puts them back exactly where the maps were."""
    hu = np.clip(head_ct_hu[50:56, 96:160, 96:160], -1024, 3071).astype(np.int16)
    ct = write_ct_study(hu, tmp_path_factory.mktemp("ct12"))
    volume = imaging.load(ct.folder)
    z, y, x = np.indices(volume.shape)
    maps = {
        "lesion": ((y - 20) ** 2 + (x - 30) ** 2 < 90 + 10 * z).astype(np.float32),
        "normal": ((y > 40) & (x < 15 + 2 * z)).astype(np.float32),
    }
    for values in maps.values():
        values[2] = np.nan  # not computed: no frame written
    provenance = Provenance.for_run(
        "grad_cam", model_path=None, input_path=ct.folder, layer="conv2", target=1, method_label="Grad-CAM"
    )
    seg = dicom_results.segmentation(volume, maps, provenance, threshold=0.5)
    path = dicom_results.save(seg, tmp_path_factory.mktemp("results"))
    assert [info.number for info in segments(path)] == [1, 2]
    assert "lesion" in segments(path)[0].label and "normal" in segments(path)[1].label
    wanted = {number: values > 0.5 for number, values in enumerate(maps.values(), start=1)}
    for number in (1, 2):
        mask = seg_mask(path, volume, number)
        np.testing.assert_array_equal(mask, wanted[number])
        assert mask.any() and not mask[2].any()
    np.testing.assert_array_equal(seg_mask(path, volume), wanted[1] | wanted[2])
