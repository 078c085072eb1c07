"""Hostile and damaged files (issue 13): refused quickly with one line naming the file, or loaded
with finite geometry; never a crash, a hang, a raw exception, or a change to the source.

Every file is real: head CT slices written by pydicom or SimpleITK, then one header field or a
few bytes mutated, the way a damaged CD or a fuzzer delivers them.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom import uid
from pydicom.encaps import encapsulate, generate_fragmented_frames
from pydicom.pixels import pixel_array

from medvis_desktop import imaging
from medvis_desktop.errors import LoadError
from tests.imaging import isolated_readers
from tests.imaging.dicom_factory import SeriesSpec, write_series

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR", "ignore:End of file reached")

# Every refusal here comes from the header (or one frame's decoder): milliseconds in practice.
QUICK_S = 1.0


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(path: Path, match: str = "", **load_args: object) -> str:
    """The LoadError message of loading `path`, checked: quick, one line, naming the file."""
    before = digest(path) if path.is_file() else None
    start = time.perf_counter()
    with pytest.raises(LoadError) as caught:
        imaging.load(path, **load_args)
    elapsed = time.perf_counter() - start
    message = str(caught.value)
    assert elapsed < QUICK_S, f"refused after {elapsed:.2f} s"
    assert "\n" not in message
    assert path.name in message
    assert match.lower() in message.lower(), message
    if before is not None:
        assert digest(path) == before
    return message


def assert_finite_geometry(volume: imaging.Volume) -> None:
    assert np.all(np.isfinite(volume.spacing)) and min(volume.spacing) > 0
    assert np.all(np.isfinite(volume.origin))
    assert np.all(np.isfinite(volume.direction))


def ct_slice(folder: Path, block: np.ndarray, edit: Callable[[pydicom.Dataset], None] | None = None) -> Path:
    """One real head CT slice as a DICOM file, with `edit` applied to its header."""
    path = write_series(block[:1], folder, SeriesSpec(shuffle_names=False))[0]
    if edit is not None:
        ds = pydicom.dcmread(path)
        edit(ds)
        ds.save_as(path)
    return path


def compressed(path: Path, syntax: str) -> list[bytearray]:
    """Compress the file in place; its frames, ready to be damaged and put back."""
    ds = pydicom.dcmread(path)
    ds.compress(syntax, encoding_plugin="pydicom" if syntax == uid.RLELossless else "")
    ds.save_as(path)
    return [bytearray(b"".join(f)) for f in generate_fragmented_frames(ds.PixelData)]


def replace_frames(path: Path, frames: list[bytes | bytearray]) -> None:
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([bytes(f) for f in frames])
    ds.save_as(path)


def corrupt_rle(path: Path) -> None:
    """Scramble the RLE segments after their header: pylibjpeg-rle panics on it (Rust)."""
    frame = compressed(path, uid.RLELossless)[0]
    for i in range(64, len(frame), 7):
        frame[i] ^= 0xFF
    replace_frames(path, [frame])


# --- DICOM headers that lie about sizes --------------------------------------------------


def test_a_million_frames_are_refused_at_once(tmp_path, head_ct_block):
    path = ct_slice(tmp_path, head_ct_block, lambda ds: setattr(ds, "NumberOfFrames", 1_000_000))
    refused(path, "header declares")


def test_a_million_compressed_frames_are_refused_at_once(tmp_path, head_ct_block):
    path = ct_slice(tmp_path, head_ct_block)
    compressed(path, uid.RLELossless)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 1_000_000
    ds.save_as(path)
    refused(path, "1 fragment")


def test_frames_beyond_the_memory_budget_are_refused(tmp_path, head_ct_block):
    path = ct_slice(tmp_path, head_ct_block)
    refused(path, "memory budget", memory_budget=64 * 1024)


def test_memory_budget_from_the_environment(tmp_path, head_ct_block, monkeypatch):
    path = ct_slice(tmp_path, head_ct_block)
    monkeypatch.setenv(imaging.MEMORY_BUDGET_ENV, "0.05")
    refused(path, "memory budget")
    monkeypatch.delenv(imaging.MEMORY_BUDGET_ENV)
    assert imaging.load(path).shape == (1, *head_ct_block.shape[1:])


@pytest.mark.parametrize("frames", [-3, "2.5"])
def test_frames_not_a_whole_number_are_refused(tmp_path, head_ct_block, frames):
    path = ct_slice(tmp_path, head_ct_block, lambda ds: setattr(ds, "NumberOfFrames", frames))
    refused(path, "NumberOfFrames")


def test_frames_disagreeing_with_per_frame_groups_are_refused(tmp_path, head_ct_block):
    from tests.imaging.dicom_factory import write_enhanced_ct

    path = write_enhanced_ct(head_ct_block[:4], tmp_path / "enhanced.dcm")
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 3
    ds.save_as(path)
    refused(path, "per-frame functional groups describe 4")


def test_rows_beyond_the_pixel_bytes_are_refused(tmp_path, head_ct_block):
    path = ct_slice(tmp_path, head_ct_block, lambda ds: setattr(ds, "Rows", 512))
    refused(path, "header declares 262,144 bytes but the file holds 131,072")


def test_truncated_pixel_data_is_refused(tmp_path, head_ct_block):
    path = ct_slice(tmp_path, head_ct_block)
    path.write_bytes(path.read_bytes()[:-1000])
    refused(path, "the file holds")


# --- DICOM geometry, rescale and windows -------------------------------------------------


@pytest.mark.parametrize("value", ["NaN", "inf", "-1e300"])
def test_non_finite_or_huge_position_is_refused(tmp_path, head_ct_block, value):
    path = ct_slice(tmp_path, head_ct_block, lambda ds: setattr(ds, "ImagePositionPatient", [0, value, 0]))
    refused(path, "ImagePositionPatient")


def test_orientation_not_unit_is_refused(tmp_path, head_ct_block):
    tilted = [2, 0, 0, 0, 1, 0]
    path = ct_slice(tmp_path, head_ct_block, lambda ds: setattr(ds, "ImageOrientationPatient", tilted))
    refused(path, "orthogonal unit vectors")


@pytest.mark.parametrize("value", ["NaN", "-0.5", "1e6"])
def test_bad_pixel_spacing_is_refused(tmp_path, head_ct_block, value):
    path = ct_slice(tmp_path, head_ct_block, lambda ds: setattr(ds, "PixelSpacing", [value, "0.5"]))
    refused(path, "PixelSpacing")


def test_zero_pixel_spacing_loads_in_pixels(tmp_path, head_ct_block):
    """Some radiographs carry 0\\0: it means 'unknown', as before, with a warning."""
    path = ct_slice(tmp_path, head_ct_block, lambda ds: setattr(ds, "PixelSpacing", [0, 0]))
    volume = imaging.load(path)
    assert_finite_geometry(volume)
    assert any("distances are in pixels" in w for w in volume.warnings)


@pytest.mark.parametrize("slope", ["NaN", "0", "inf"])
def test_bad_rescale_slope_is_refused(tmp_path, head_ct_block, slope):
    path = ct_slice(tmp_path, head_ct_block, lambda ds: setattr(ds, "RescaleSlope", slope))
    refused(path, "RescaleSlope")


def test_nan_window_width_loads_with_a_warning(tmp_path, head_ct_block):
    path = ct_slice(tmp_path, head_ct_block, lambda ds: setattr(ds, "WindowWidth", "NaN"))
    before = digest(path)
    volume = imaging.load(path)
    assert_finite_geometry(volume)
    np.testing.assert_array_equal(volume.voxels[0], head_ct_block[0])
    assert volume.windows == []
    assert any("Display window" in w and "unusable" in w for w in volume.warnings)
    assert digest(path) == before


# --- Decoders that fail on a damaged frame -----------------------------------------------


def test_corrupt_rle_frame_panic_is_a_load_error(tmp_path, head_ct_block):
    path = ct_slice(tmp_path, head_ct_block)
    corrupt_rle(path)
    # The real hazard: the Rust decoder's panic is a BaseException, not an Exception.
    with pytest.raises(BaseException) as panic:
        pixel_array(path)
    assert not isinstance(panic.value, Exception)
    assert type(panic.value).__name__ == "PanicException"
    refused(path, "PanicException")


@pytest.mark.parametrize("damage", ["truncated", "siz-60000"])
def test_corrupt_jpeg2000_frame_is_a_load_error(tmp_path, head_ct_block, damage):
    path = ct_slice(tmp_path, head_ct_block)
    frame = compressed(path, uid.JPEG2000Lossless)[0]
    if damage == "truncated":
        frame = frame[: len(frame) // 3]
    else:  # the codestream's SIZ marker claims a 60000 × 60000 image
        siz = frame.find(b"\xff\x51")
        frame[siz + 6 : siz + 14] = struct.pack(">II", 60000, 60000)
    replace_frames(path, [frame])
    refused(path, "could be read" if damage == "truncated" else "declares 60000×60000")


def test_a_series_skips_each_bad_file_and_names_it(tmp_path, head_ct_block):
    block = head_ct_block[:8]
    paths = write_series(block, tmp_path, SeriesSpec(shuffle_names=False))
    corrupt_rle(paths[2])
    ds = pydicom.dcmread(paths[5])
    ds.ImagePositionPatient = [0, "NaN", 0]
    ds.save_as(paths[5])
    before = {p: digest(p) for p in paths}
    volume = imaging.load(tmp_path)
    np.testing.assert_array_equal(volume.voxels, np.delete(block, [2, 5], axis=0))
    assert_finite_geometry(volume)
    skipped = [w for w in volume.warnings if w.startswith("Damaged file skipped")]
    assert any(paths[2].name in w and "PanicException" in w for w in skipped)
    assert any(paths[5].name in w and "ImagePositionPatient" in w for w in skipped)
    assert {p: digest(p) for p in paths} == before


# --- NIfTI / MHA headers ------------------------------------------------------------------


def small_nifti(path: Path, spacing: tuple[float, float, float] = (0.5, 0.6, 0.7)) -> Path:
    image = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


@pytest.mark.parametrize("name", ["huge.nii", "huge.nii.gz"])
def test_nifti_header_claiming_a_huge_image_is_refused(tmp_path, name):
    """NIfTI-1 sizes stop at 32767: 32767³ int16 is 70 TB, claimed by the header alone."""
    header = bytearray(small_nifti(tmp_path / "small.nii").read_bytes()[:352])
    struct.pack_into("<4h", header, 40, 3, 32767, 32767, 32767)
    path = tmp_path / name
    path.write_bytes(gzip.compress(bytes(header)) if name.endswith(".gz") else bytes(header))
    assert path.stat().st_size <= 352
    refused(path, "Voxel data" if name.endswith(".nii") else "memory budget")


def test_nifti_with_nan_pixdim_is_refused(tmp_path):
    """ITK would quietly read the NaN voxel size as 1 mm."""
    path = small_nifti(tmp_path / "nan.nii")
    data = bytearray(path.read_bytes())
    struct.pack_into("<3f", data, 80, np.nan, np.nan, np.nan)
    path.write_bytes(bytes(data))
    refused(path, "pixdim")


def test_nifti_with_nan_affine_is_refused(tmp_path):
    path = small_nifti(tmp_path / "nan_sform.nii")
    data = bytearray(path.read_bytes())
    struct.pack_into("<12f", data, 280, *[np.nan] * 12)  # srow_x, srow_y, srow_z
    path.write_bytes(bytes(data))
    refused(path, "not finite")


def test_mha_claiming_a_huge_size_is_refused(tmp_path):
    path = tmp_path / "huge.mha"
    sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkInt16), str(path), useCompression=False)
    path.write_bytes(path.read_bytes().replace(b"DimSize = 4 4 4", b"DimSize = 100000 100000 100000"))
    refused(path, "Voxel data")


def test_compressed_mha_claiming_a_huge_size_is_refused_by_the_budget(tmp_path):
    path = tmp_path / "huge.mha"
    sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkInt16), str(path), useCompression=True)
    path.write_bytes(path.read_bytes().replace(b"DimSize = 4 4 4", b"DimSize = 100000 100000 100000"))
    refused(path, "memory budget")


def test_mha_with_zero_spacing_is_refused(tmp_path):
    path = tmp_path / "flat.mha"
    image = sitk.Image(4, 4, 4, sitk.sitkInt16)
    image.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(image, str(path), useCompression=False)
    path.write_bytes(path.read_bytes().replace(b"ElementSpacing = 1 1 2", b"ElementSpacing = 1 1 0"))
    refused(path, "Spacing")


def test_4d_nifti_shows_its_first_volume(tmp_path):
    series = np.arange(2 * 3 * 4 * 5, dtype=np.int16).reshape(2, 3, 4, 5)
    path = tmp_path / "fmri.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(series, isVector=False), str(path))
    volume = imaging.load(path)
    assert volume.shape == (3, 4, 5)
    assert_finite_geometry(volume)
    assert any("only the first is shown" in w for w in volume.warnings)


# --- The isolated loader --------------------------------------------------------------------


def test_isolated_load_gives_the_same_volume(tmp_path, head_ct_block):
    paths = write_series(head_ct_block[:6], tmp_path, SeriesSpec())
    direct = imaging.load(tmp_path)
    isolated = imaging.load_isolated(tmp_path, timeout_s=60)
    np.testing.assert_array_equal(isolated.voxels, direct.voxels)
    assert isolated.voxels.dtype == direct.voxels.dtype
    np.testing.assert_allclose(isolated.affine, direct.affine)
    assert isolated.warnings == direct.warnings
    assert isolated.dicom is not None and len(isolated.dicom.slices) == len(paths)


def test_isolated_load_reports_a_refusal_as_is(tmp_path, head_ct_block):
    path = ct_slice(tmp_path, head_ct_block, lambda ds: setattr(ds, "NumberOfFrames", 1_000_000))
    with pytest.raises(LoadError, match=rf"{path.name}.*header declares"):
        imaging.load_isolated(path, timeout_s=60)


def test_isolated_load_survives_a_reader_that_aborts(tmp_path, head_ct_block):
    path = ct_slice(tmp_path, head_ct_block)
    with pytest.raises(LoadError, match=rf"{path.name}: the reader crashed \(SIGABRT"):
        imaging.load_isolated(path, timeout_s=60, reader=isolated_readers.aborting_reader)
    # The caller is intact and the next load works.
    assert imaging.load_isolated(path, timeout_s=60).shape == (1, *head_ct_block.shape[1:])


def test_isolated_load_stops_a_reader_that_hangs(tmp_path, head_ct_block):
    path = ct_slice(tmp_path, head_ct_block)
    start = time.perf_counter()
    with pytest.raises(LoadError, match=rf"{path.name}: reading took longer than 3 s"):
        imaging.load_isolated(path, timeout_s=3, reader=isolated_readers.hanging_reader)
    assert time.perf_counter() - start < 30


def test_isolated_load_caps_memory(tmp_path, head_ct_block):
    path = ct_slice(tmp_path, head_ct_block)
    with pytest.raises(LoadError, match=rf"{path.name}: reading it needed more than 2048 MB"):
        imaging.load_isolated(path, timeout_s=60, memory_mb=2048, reader=isolated_readers.greedy_reader)
