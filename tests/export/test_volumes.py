"""Heat-map volumes open aligned over the study in other software (SimpleITK's DICOM reader)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from medvis_desktop import export, imaging
from tests.imaging.dicom_factory import SeriesSpec, write_series


def test_heatmap_nifti_lies_on_the_dicom_series_as_another_reader_sees_it(tmp_path, head_ct_block):
    angle = np.radians(12)
    spec = SeriesSpec(
        row_direction=(np.cos(angle), np.sin(angle), 0.0),
        column_direction=(-np.sin(angle), np.cos(angle), 0.0),
    )
    block = head_ct_block[:10]
    write_series(block, tmp_path / "ct", spec)
    volume = imaging.load(tmp_path / "ct")
    heat = (volume.voxels.astype(np.float32) + 1024.0) / 100.0  # a map we can check voxel by voxel
    out = export.save_heatmap(volume, heat, tmp_path / "heat.nii.gz")

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "ct")))
    ct = reader.Execute()
    written = sitk.ReadImage(str(out))
    ct_array, heat_array = sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(written)
    rng = np.random.default_rng(1)
    for _ in range(300):
        index = tuple(int(rng.integers(0, n)) for n in written.GetSize())
        point = written.TransformIndexToPhysicalPoint(index)
        ct_index = ct.TransformPhysicalPointToIndex(point)
        hu = ct_array[ct_index[2], ct_index[1], ct_index[0]]
        np.testing.assert_allclose(heat_array[index[2], index[1], index[0]], (hu + 1024.0) / 100.0, rtol=1e-6)


def test_uncomputed_slices_are_written_as_zero(tmp_path, colin27_path):
    volume = imaging.load(colin27_path)
    heat = np.full(volume.shape, np.nan, dtype=np.float32)
    heat[90] = 1.0
    out = export.save_heatmap(volume, heat, tmp_path / "partial.nii.gz")
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert np.isfinite(array).all()
    assert array[90].min() == 1.0 and array.sum() == array[90].sum()
