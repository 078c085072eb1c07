"""DICOM series from the real head CT, written the messy ways real exports arrive."""

from __future__ import annotations

import hashlib
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.fileset import FileSet

from medvis_desktop import imaging
from medvis_desktop.errors import LoadError
from tests.imaging.dicom_factory import (
    SeriesSpec,
    slice_normal,
    slice_position,
    stored_values,
    write_enhanced_ct,
    write_series,
)


def folder_state(folder: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_series_loads_exact_hu_in_position_order(tmp_path, head_ct_block):
    spec = SeriesSpec()
    write_series(head_ct_block, tmp_path, spec)
    volume = imaging.load(tmp_path)
    assert volume.voxels.dtype == np.int16
    np.testing.assert_array_equal(volume.voxels, head_ct_block)
    # Spacing from positions (1.5 mm), not from the wrong SliceThickness (5 mm).
    np.testing.assert_allclose(volume.spacing, (1.5, 0.9570312, 0.9570312))
    np.testing.assert_allclose(volume.origin, slice_position(spec, 0))
    np.testing.assert_allclose(volume.direction[:, 0], slice_normal(spec))
    np.testing.assert_allclose(volume.direction[:, 1], spec.column_direction)
    np.testing.assert_allclose(volume.direction[:, 2], spec.row_direction)
    assert volume.modality == "CT"
    assert volume.warnings == []
    assert volume.windows[0].center == 40 and volume.windows[0].width == 80
    last = np.array([head_ct_block.shape[0] - 1, 5, 7])
    expected = slice_position(spec, last[0]) + 5 * 0.9570312 * np.asarray(spec.column_direction)
    expected += 7 * 0.9570312 * np.asarray(spec.row_direction)
    np.testing.assert_allclose(volume.index_to_patient(last), expected)


def test_positions_decreasing_with_acquisition_are_reordered(tmp_path, head_ct_block):
    """Slices written head-to-feet come back feet-to-head: increasing along the normal."""
    spec = SeriesSpec(slice_step=-1.5, shuffle_names=False, reverse_instance_numbers=False)
    write_series(head_ct_block, tmp_path, spec)
    volume = imaging.load(tmp_path)
    np.testing.assert_array_equal(volume.voxels, head_ct_block[::-1])
    np.testing.assert_allclose(volume.origin, slice_position(spec, head_ct_block.shape[0] - 1))
    np.testing.assert_allclose(volume.spacing[0], 1.5)


def test_oblique_coronal_series_orders_along_its_own_normal(tmp_path, head_ct_block):
    angle = np.radians(20)
    spec = SeriesSpec(
        row_direction=(np.cos(angle), np.sin(angle), 0.0),
        column_direction=(0.0, 0.0, -1.0),
        slice_step=2.0,
    )
    write_series(head_ct_block[:12], tmp_path, spec)
    volume = imaging.load(tmp_path)
    np.testing.assert_array_equal(volume.voxels, head_ct_block[:12])
    np.testing.assert_allclose(volume.direction[:, 0], slice_normal(spec), atol=1e-9)
    np.testing.assert_allclose(volume.spacing[0], 2.0)
    assert volume.warnings == []


def test_non_integer_rescale_gives_exact_float_hu(tmp_path, head_ct_block):
    spec = SeriesSpec(rescale_slope=0.5, bits_stored=16)
    write_series(head_ct_block[:8], tmp_path, spec)
    volume = imaging.load(tmp_path)
    assert volume.voxels.dtype == np.float32
    np.testing.assert_array_equal(volume.voxels, head_ct_block[:8].astype(np.float32))


def test_second_series_and_junk_are_reported_and_selectable(tmp_path, head_ct_block):
    study = uid.generate_uid()
    main = SeriesSpec(series_description="Head 1.5mm")
    scout = SeriesSpec(series_description="Head 5mm", slice_step=5.0)
    write_series(head_ct_block, tmp_path / "a", main, study_uid=study)
    write_series(head_ct_block[::4], tmp_path / "b", scout, study_uid=study)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "a" / "Thumbs.db").write_bytes(b"\x00" * 300)

    listed = imaging.list_series(tmp_path)
    assert [(s.description, s.image_count) for s in listed] == [("Head 1.5mm", 40), ("Head 5mm", 10)]

    volume = imaging.load(tmp_path)
    np.testing.assert_array_equal(volume.voxels, head_ct_block)
    assert "2 file(s) that are not DICOM were skipped" in volume.warnings
    assert any("1 other series" in w for w in volume.warnings)

    chosen = imaging.load(tmp_path, series_uid=scout.series_uid)
    np.testing.assert_array_equal(chosen.voxels, head_ct_block[::4])
    np.testing.assert_allclose(chosen.spacing[0], 5.0)

    with pytest.raises(LoadError, match=r"No series 1\.2\.3 in"):
        imaging.load(tmp_path, series_uid="1.2.3")


@pytest.mark.parametrize("syntax", [uid.RLELossless, uid.JPEG2000Lossless], ids=["rle", "jpeg2000"])
def test_compressed_series_decodes_to_exact_hu(tmp_path, head_ct_block, syntax):
    block = head_ct_block[::5]
    paths = write_series(block, tmp_path, SeriesSpec())
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(path)
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == syntax
    volume = imaging.load(tmp_path)
    np.testing.assert_array_equal(volume.voxels, block)


def test_compression_without_decoder_is_a_clear_error(tmp_path, head_ct_block):
    paths = write_series(head_ct_block[:3], tmp_path, SeriesSpec())
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = uid.MPEG2MPML
        ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
        ds["PixelData"].VR = "OB"
        ds.save_as(path)
    with pytest.raises(LoadError, match=r"compressed as .MPEG2.*cannot decode"):
        imaging.load(tmp_path)


def test_missing_slices_are_reported(tmp_path, head_ct_block):
    spec = SeriesSpec()
    paths = write_series(head_ct_block, tmp_path, spec)
    paths[10].unlink()
    paths[11].unlink()
    volume = imaging.load(tmp_path)
    assert volume.shape[0] == 38
    assert any("Missing slices" in w and "about 2 slice(s)" in w for w in volume.warnings)
    np.testing.assert_allclose(volume.spacing[0], 1.5)


def test_uneven_spacing_is_reported(tmp_path, head_ct_block):
    write_series(head_ct_block[:10], tmp_path, SeriesSpec(extra_offsets={5: 0.3}))
    volume = imaging.load(tmp_path)
    assert any(w.startswith("Uneven slice spacing") for w in volume.warnings)


def test_gantry_tilt_is_reported(tmp_path, head_ct_block):
    write_series(head_ct_block[:10], tmp_path, SeriesSpec(shear_per_slice=0.3))
    volume = imaging.load(tmp_path)
    tilt = np.degrees(np.arctan(0.3 / 1.5))
    assert any(w.startswith(f"Gantry tilt of {tilt:.1f}°") for w in volume.warnings)


def test_mixed_orientations_keep_the_main_stack(tmp_path, head_ct_block):
    spec = SeriesSpec()
    write_series(head_ct_block[:20], tmp_path / "axial", spec)
    sagittal = SeriesSpec(
        row_direction=(0.0, 1.0, 0.0), column_direction=(0.0, 0.0, -1.0), series_uid=spec.series_uid
    )
    write_series(head_ct_block[:3], tmp_path / "sag", sagittal)
    volume = imaging.load(tmp_path)
    np.testing.assert_array_equal(volume.voxels, head_ct_block[:20])
    assert any("Mixed orientations: 3 image(s)" in w for w in volume.warnings)


def test_enhanced_multiframe_ct(tmp_path, head_ct_block):
    spec = SeriesSpec()
    path = write_enhanced_ct(head_ct_block[:16], tmp_path / "enhanced.dcm", spec)
    volume = imaging.load(path)
    np.testing.assert_array_equal(volume.voxels, head_ct_block[:16])
    np.testing.assert_allclose(volume.spacing, (1.5, 0.9570312, 0.9570312))
    np.testing.assert_allclose(volume.origin, slice_position(spec, 0))
    assert volume.warnings == []


def test_dicomdir_lists_the_series(tmp_path, head_ct_block):
    source = tmp_path / "source"
    write_series(head_ct_block[:6], source, SeriesSpec())
    fileset = FileSet()
    for path in sorted(source.iterdir()):
        fileset.add(pydicom.dcmread(path))
    media = tmp_path / "media"
    fileset.write(media)
    volume = imaging.load(media / "DICOMDIR")
    np.testing.assert_array_equal(volume.voxels, head_ct_block[:6])
    folder_volume = imaging.load(media)
    np.testing.assert_array_equal(folder_volume.voxels, head_ct_block[:6])


def test_pixel_padding_is_shown_as_air(tmp_path, head_ct_block):
    block = head_ct_block[:4]
    spec = SeriesSpec(rescale_intercept=-2048, bits_stored=16, pixel_padding_value=0)
    stored = stored_values(block, spec)
    yy, xx = np.mgrid[: block.shape[1], : block.shape[2]]
    outside = (yy - 128) ** 2 + (xx - 128) ** 2 > 120**2
    stored[:, outside] = 0
    write_series(block, tmp_path, spec, stored=stored)
    volume = imaging.load(tmp_path)
    assert np.all(volume.voxels[:, outside] == -1024)
    np.testing.assert_array_equal(volume.voxels[:, ~outside], block[:, ~outside])
    assert volume.voxels.min() >= -1024


def test_monochrome1_radiograph_is_shown_bright_where_dense():
    path = Path(get_testdata_file("RG1_UNCR.dcm"))
    raw = pydicom.dcmread(path)
    assert raw.PhotometricInterpretation == "MONOCHROME1"
    volume = imaging.load(path)
    assert volume.shape == (1, raw.Rows, raw.Columns)
    np.testing.assert_array_equal(volume.voxels[0], (2**raw.BitsStored - 1) - raw.pixel_array)
    # A PA chest film: the lungs (air) must look darker than the spine between them.
    image = volume.voxels[0].astype(np.float64)
    rows = slice(image.shape[0] * 2 // 5, image.shape[0] * 3 // 5)
    width = image.shape[1]
    spine = image[rows, width * 9 // 20 : width * 11 // 20].mean()
    lungs = (
        image[rows, width * 5 // 20 : width * 7 // 20].mean()
        + image[rows, width * 13 // 20 : width * 15 // 20].mean()
    ) / 2
    assert lungs < spine
    # The file's window is carried over onto the inverted values.
    assert volume.windows[0].center == pytest.approx((2**raw.BitsStored - 1) - float(raw.WindowCenter))
    assert any("distances are in pixels" in w for w in volume.warnings)


def test_damaged_and_foreign_files_are_skipped_and_named(tmp_path, head_ct_block):
    paths = write_series(head_ct_block[:12], tmp_path, SeriesSpec(shuffle_names=False))
    truncated = paths[6]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    garbage = tmp_path / "IMBAD"
    garbage.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 50)
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 not an image")
    volume = imaging.load(tmp_path)
    assert volume.shape[0] == 11
    np.testing.assert_array_equal(volume.voxels, np.delete(head_ct_block[:12], 6, axis=0))
    assert any(truncated.name in w and w.startswith("Damaged file skipped") for w in volume.warnings)
    assert any("IMBAD" in w for w in volume.warnings)
    assert "1 file(s) that are not DICOM were skipped" in volume.warnings
    assert any("Missing slices" in w for w in volume.warnings)


def test_pydicom_truncated_test_file_is_named():
    with pytest.raises(LoadError, match=r"could be read|No DICOM images"):
        imaging.load(get_testdata_file("MR_truncated.dcm"))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "is empty"),
        (lambda d: (d / "a.txt").write_text("hello"), "No DICOM images found.*1 file"),
        (lambda d: shutil.copy(get_testdata_file("test-SR.dcm"), d), "hold no image"),
    ],
    ids=["empty", "only-text", "only-report"],
)
def test_folders_without_images_are_clear_errors(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(LoadError, match=message):
        imaging.load(tmp_path)


def test_unknown_file_and_missing_path_are_clear_errors(tmp_path):
    other = tmp_path / "notes.docx"
    other.write_bytes(b"PK\x03\x04 zip")
    with pytest.raises(LoadError, match="neither a DICOM file nor a supported image"):
        imaging.load(other)
    with pytest.raises(LoadError, match="Nothing found"):
        imaging.load(tmp_path / "absent")


def test_loading_never_writes_into_the_source(tmp_path, head_ct_block):
    paths = write_series(head_ct_block[:5], tmp_path, SeriesSpec())
    paths[2].write_bytes(paths[2].read_bytes()[:1000])
    (tmp_path / "junk.bin").write_bytes(b"\x01" * 10)
    before = folder_state(tmp_path)
    imaging.load(tmp_path)
    imaging.list_series(tmp_path)
    assert folder_state(tmp_path) == before


def test_peak_memory_stays_near_the_voxel_bytes(tmp_path, head_ct_hu):
    write_series(head_ct_hu, tmp_path, SeriesSpec())
    tracemalloc.start()
    volume = imaging.load(tmp_path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_array_equal(volume.voxels, head_ct_hu)
    assert peak < 1.5 * volume.voxels.nbytes, f"peak {peak / volume.voxels.nbytes:.2f}× the voxels"
