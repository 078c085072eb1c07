"""The window reads studies that native decoders must decode in a child process, and the
others in its own: a damaged compressed file costs a load, not the session."""

from __future__ import annotations

import numpy as np

from medvis_desktop.imaging.isolated_slices import IsolatedSlices
from tests.gui.conftest import make_window
from tests.imaging.dicom_factory import SeriesSpec, compress_files, write_series


def test_a_compressed_series_is_read_in_a_child_and_an_uncompressed_one_is_not(
    qtbot, settings, tmp_path, head_ct_block, monkeypatch
):
    block = head_ct_block[::8]
    plain = write_series(block, tmp_path / "plain", SeriesSpec())
    packed = compress_files(write_series(block, tmp_path / "rle", SeriesSpec()))
    children = []  # the slices each decoding child was started on
    real = IsolatedSlices._start

    def counted(self, order):
        children.append(list(order))  # a copy: the caller takes slices off as they come
        return real(self, order)

    monkeypatch.setattr(IsolatedSlices, "_start", counted)
    window = make_window(qtbot, settings)
    assert window.open_volume(plain[0].parent)
    assert children == []
    assert window.open_volume(packed[0].parent)
    assert sorted(z for order in children for z in order) == list(range(len(block)))
    np.testing.assert_array_equal(window.volume.voxels, block)
    assert window.volume.dicom is not None  # what DICOM results reference came back too


def test_a_damaged_compressed_file_is_a_message_and_the_window_goes_on(
    qtbot, settings, tmp_path, head_ct_block
):
    (path,) = compress_files(write_series(head_ct_block[:1], tmp_path, SeriesSpec()))
    data = bytearray(path.read_bytes())
    data[-400:] = b"\xff" * 400  # the RLE segments' end: the decoder fails inside native code
    path.write_bytes(bytes(data))
    window = make_window(qtbot, settings)
    assert not window.open_volume(path)
    assert path.name in window.last_error
    assert window.open_volume(write_series(head_ct_block[:2], tmp_path / "good", SeriesSpec())[0].parent)
