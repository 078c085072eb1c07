"""Which studies a viewer reads in a child process: those whose pixels native code decodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom import uid

from medvis_desktop import imaging
from tests.imaging.dicom_factory import SeriesSpec, write_series


def compress(paths: list[Path], syntax: str) -> None:
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(path)


def test_uncompressed_dicom_stays_on_the_fast_path(tmp_path, head_ct_block):
    paths = write_series(head_ct_block[:4], tmp_path, SeriesSpec())
    assert not imaging.needs_isolation(tmp_path)
    assert not imaging.needs_isolation(paths[0])


def test_compressed_dicom_is_read_in_a_child(tmp_path, head_ct_block):
    paths = write_series(head_ct_block[:4], tmp_path, SeriesSpec())
    compress(paths[2:3], uid.RLELossless)  # one compressed file is enough
    assert imaging.needs_isolation(tmp_path)
    assert imaging.needs_isolation(paths[2]) and not imaging.needs_isolation(paths[0])


def test_the_series_that_would_be_loaded_decides(tmp_path, head_ct_block):
    write_series(head_ct_block[:6], tmp_path / "plain", SeriesSpec())
    small = write_series(head_ct_block[:3], tmp_path / "rle", SeriesSpec(series_description="small"))
    compress(small, uid.RLELossless)
    series_uid = str(pydicom.dcmread(small[0]).SeriesInstanceUID)
    assert not imaging.needs_isolation(tmp_path)  # load takes the largest, uncompressed
    assert imaging.needs_isolation(tmp_path, series_uid)


def test_native_readers_and_damaged_headers_are_isolated(tmp_path, head_ct_path):
    nifti = tmp_path / "study.nii.gz"
    imaging.save(imaging.Volume(np.zeros((2, 4, 4), np.int16)), nifti)
    png = tmp_path / "image.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(png)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    assert imaging.needs_isolation(nifti) and imaging.needs_isolation(png)
    assert imaging.needs_isolation(broken)
    assert not imaging.needs_isolation(head_ct_path)  # .inv3: a tar of NumPy arrays
