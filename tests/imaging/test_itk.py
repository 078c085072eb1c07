"""NIfTI/MHA/NRRD on the real Colin27 T1: orientation and geometry kept to the voxel."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from medvis_desktop import imaging
from medvis_desktop.errors import LoadError


def sample_indices(shape: tuple[int, ...], count: int = 200) -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.stack([rng.integers(0, n, count) for n in shape], axis=1)


def assert_same_voxels(volume: imaging.Volume, image: sitk.Image) -> None:
    """Every sampled voxel of `volume` sits at a point where `image` holds the same value."""
    array = sitk.GetArrayViewFromImage(image)
    for index in sample_indices(volume.shape):
        point = volume.index_to_patient(index)
        x, y, z = image.TransformPhysicalPointToIndex(tuple(point))
        assert volume.voxels[tuple(index)] == array[z, y, x]


def test_colin27_is_brought_to_lps_on_the_same_voxels(colin27_path):
    original = sitk.ReadImage(str(colin27_path))
    volume = imaging.load(colin27_path)
    assert volume.shape == (181, 217, 181)
    # NIfTI is RAS on disk: x and y are flipped, so that columns run to the patient's left,
    # rows to the back and slices upwards, like a DICOM axial series.
    np.testing.assert_allclose(volume.direction, np.eye(3)[:, ::-1], atol=1e-6)
    assert volume.plane == "axial"
    assert_same_voxels(volume, original)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd"])
def test_written_back_lands_on_the_same_voxels(tmp_path, colin27_path, suffix):
    volume = imaging.load(colin27_path)
    out = tmp_path / f"copy{suffix}"
    imaging.save(volume, out)
    assert_same_voxels(volume, sitk.ReadImage(str(out)))
    again = imaging.load(out)
    np.testing.assert_array_equal(again.voxels, volume.voxels)
    np.testing.assert_allclose(again.affine, volume.affine, atol=1e-5)


def test_any_axis_order_on_disk_loads_the_same_volume(tmp_path, colin27_path):
    """A sagittal-major file with flipped axes is the same anatomy after loading."""
    original = sitk.ReadImage(str(colin27_path))
    shuffled = sitk.Flip(sitk.PermuteAxes(original, [2, 0, 1]), [True, False, True])
    path = tmp_path / "shuffled.nii.gz"
    sitk.WriteImage(shuffled, str(path))
    reference = imaging.load(colin27_path)
    volume = imaging.load(path)
    np.testing.assert_array_equal(volume.voxels, reference.voxels)
    np.testing.assert_allclose(volume.affine, reference.affine, atol=1e-4)


def test_unreadable_nifti_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(LoadError, match="could not be read as a NIfTI"):
        imaging.load(broken)


def test_save_refuses_unknown_formats(tmp_path, colin27_path):
    with pytest.raises(LoadError, match=r"use \.nii"):
        imaging.save(imaging.load(colin27_path), tmp_path / "out.xyz")
