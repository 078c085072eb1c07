"""A large DICOM series in the window (#14): shown with its middle slices before the rest is
read, the rest loaded in the background with the view and the status kept up, headers read
once, methods waiting for the whole study, the load stopped by another study or by closing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medvis_desktop import imaging
from medvis_desktop.gui import study_loader
from medvis_desktop.gui.slice_viewer import THREE
from medvis_desktop.imaging import dicom
from tests.gui.conftest import make_window
from tests.gui.test_slice_viewer import assert_shows
from tests.imaging.dicom_factory import SeriesSpec, compress_files, write_series

SLICES = 120  # over study_loader.WHOLE_SLICES: streamed
WAIT_MS = 20000


@pytest.fixture
def large_series(tmp_path: Path, head_ct_block: np.ndarray) -> list[Path]:
    hu = np.concatenate([head_ct_block] * (SLICES // len(head_ct_block) + 1))[:SLICES, ::4, ::4]
    return write_series(np.ascontiguousarray(hu), tmp_path / "large", SeriesSpec())


@pytest.fixture
def large_compressed_series(tmp_path: Path, large_series: list[Path]) -> list[Path]:
    """The same series, RLE Lossless: decoded in child processes."""
    return compress_files(large_series)


def loaded(window) -> bool:
    return window._series_load is None


def test_a_large_series_shows_its_middle_slices_then_loads_the_rest(
    qtbot, settings, large_series: list[Path], monkeypatch
) -> None:
    folder = large_series[0].parent
    scans = []
    scan = dicom.scan
    monkeypatch.setattr(dicom, "scan", lambda *args: scans.append(args) or scan(*args))
    window = make_window(qtbot, settings)
    assert window.open_volume(folder), window.last_error
    assert len(scans) == 1  # the headers are read once
    middle = SLICES // 2
    whole = imaging.load(folder)
    shown = window.volume.voxels[
        middle - study_loader.FIRST_SLICES // 2 : middle + study_loader.FIRST_SLICES // 2
    ]
    np.testing.assert_array_equal(
        shown, whole.voxels[middle - study_loader.FIRST_SLICES // 2 : middle + study_loader.FIRST_SLICES // 2]
    )
    assert window.viewer.current_slice == middle
    qtbot.waitUntil(lambda: loaded(window), timeout=WAIT_MS)
    qtbot.wait(50)  # the last chunks' redraws
    np.testing.assert_array_equal(window.volume.voxels, whole.voxels)
    viewer = window.viewer
    viewer.set_layout_mode(THREE)
    z, y, x = viewer.cursor
    sections = (whole.voxels[z], whole.voxels[:, y], whole.voxels[:, :, x])
    for view, section in zip(viewer.views, sections, strict=True):
        assert_shows(view.image, section, viewer.window)
    assert "loading" not in window.status["volume"].text() and not window.last_error


def test_methods_wait_for_the_whole_study(qtbot, settings, large_series: list[Path], tiny_model_path) -> None:
    window = make_window(qtbot, settings)
    assert window.open_model(tiny_model_path)
    assert window.open_volume(large_series[0].parent)
    assert window._series_load is not None and "loading" in window.status["volume"].text()
    assert window._ready()  # waits, then runs on the whole study
    assert loaded(window) and window.volume.voxels[0].max() > -1024


def test_another_study_stops_the_load(qtbot, settings, large_series: list[Path], ct_nifti: Path) -> None:
    window = make_window(qtbot, settings)
    assert window.open_volume(large_series[0].parent)
    first = window._series_load
    assert first is not None
    assert window.open_volume(ct_nifti)
    assert loaded(window) and window.volume.source == ct_nifti
    assert not first._thread.is_alive()  # stopped, not left running
    qtbot.wait(100)  # chunks still queued from the stopped load must not touch the new study
    assert window.viewer.volume is window.volume and not window.last_error


def test_closing_the_window_stops_the_load(qtbot, settings, large_series: list[Path]) -> None:
    window = make_window(qtbot, settings)
    assert window.open_volume(large_series[0].parent)
    load = window._series_load
    window.close()
    assert not load._thread.is_alive() and loaded(window)


def test_a_slice_damaged_mid_way_is_named_and_the_window_goes_on(
    qtbot, settings, large_series: list[Path], monkeypatch
) -> None:
    broken = large_series[3]  # far from the middle: decoded in the background
    decode = dicom.decode

    def damaged_decode(frame, rows, columns):
        if frame.path == broken:
            broken.write_bytes(broken.read_bytes()[:400])  # damaged after its header was read
        return decode(frame, rows, columns)

    monkeypatch.setattr(dicom, "decode", damaged_decode)
    window = make_window(qtbot, settings)
    assert window.open_volume(large_series[0].parent)
    qtbot.waitUntil(lambda: loaded(window), timeout=WAIT_MS)
    assert (
        broken.name in window.statusBar().currentMessage()
        and "left black" in window.statusBar().currentMessage()
    )
    assert np.all(window.volume.voxels[3] == -1024) and not window.last_error
    assert window.study_complete()


def test_a_load_that_stops_is_reported_and_methods_stay_off(
    qtbot, settings, large_series: list[Path], monkeypatch
) -> None:
    def write_slice(*args) -> None:
        raise MemoryError("no memory left")

    window = make_window(qtbot, settings)
    folder = large_series[0].parent
    monkeypatch.setattr(study_loader, "FIRST_SLICES", 0)
    monkeypatch.setattr(dicom, "write_slice", write_slice)
    assert window.open_volume(folder)
    qtbot.waitUntil(lambda: loaded(window), timeout=WAIT_MS)
    assert "did not load whole" in window.last_error and "no memory left" in window.last_error
    window.last_error = ""
    assert not window.study_complete() and "did not load whole" in window.last_error


def test_a_large_compressed_series_streams_from_its_children_with_progress(
    qtbot, settings, large_compressed_series: list[Path], monkeypatch
) -> None:
    folder = large_compressed_series[0].parent
    whole = imaging.load(folder)  # in this process: the reference
    monkeypatch.setattr(imaging, "load_isolated", None)  # not read whole in a child any more
    counts: list[str] = []
    window = make_window(qtbot, settings)
    show_load_progress = window._show_load_progress
    monkeypatch.setattr(
        window,
        "_show_load_progress",
        lambda load: show_load_progress(load) or counts.append(window.status["volume"].text()),
    )
    assert window.open_volume(folder), window.last_error
    load = window._series_load
    assert load is not None and load._shared is not None  # decoded by children, into shared voxels
    middle = SLICES // 2
    first = slice(middle - study_loader.FIRST_SLICES // 2, middle + study_loader.FIRST_SLICES // 2)
    np.testing.assert_array_equal(window.volume.voxels[first], whole.voxels[first])
    assert f"loading {study_loader.FIRST_SLICES}/{SLICES}" in counts[0]
    qtbot.waitUntil(lambda: loaded(window), timeout=WAIT_MS)
    qtbot.wait(50)  # the last chunks' redraws
    assert len(counts) >= SLICES // load_chunk() and f"loading {SLICES}/{SLICES}" in counts[-1]
    np.testing.assert_array_equal(window.volume.voxels, whole.voxels)
    z = window.viewer.cursor[0]
    assert_shows(window.viewer.views[0].image, whole.voxels[z], window.viewer.window)
    assert "loading" not in window.status["volume"].text() and not window.last_error
    assert window.study_complete()


def test_a_lone_compressed_file_none_of_whose_pixels_decode_is_refused(
    qtbot, settings, tmp_path: Path, head_ct_block: np.ndarray
) -> None:
    (path,) = compress_files(write_series(head_ct_block[:1], tmp_path, SeriesSpec()))
    data = bytearray(path.read_bytes())
    fragment = data.rindex(b"\xfe\xff\x00\xe0") + 8  # the frame's fragment: its RLE header first
    data[fragment + 8 : fragment + 12] = (1 << 24).to_bytes(4, "little")  # a segment past the end
    path.write_bytes(bytes(data))
    window = make_window(qtbot, settings)
    assert not window.open_volume(path)
    assert "None of the images" in window.last_error and path.name in window.last_error
    assert window.open_volume(write_series(head_ct_block[:2], tmp_path / "good", SeriesSpec())[0].parent)


def load_chunk() -> int:
    from medvis_desktop.imaging import streaming

    return streaming.CHUNK_SLICES
