"""A DICOM series opened slice by slice (imaging.open_series): the same Volume as imaging.load,
a damaged slice left black in its place, a background load that can be stopped (#14)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from medvis_desktop import imaging
from medvis_desktop.imaging import dicom
from tests.imaging.dicom_factory import SeriesSpec, write_series

SLICES = 40


def assert_the_rest_loads(load: imaging.SeriesLoad, whole: imaging.Volume) -> None:
    """After slices 18-21 of a SLICES-slice series: the background load puts in the others,
    nearest those first, into the volume the whole load reads, and ends without an error."""
    chunks: list[list[int]] = []
    ends: list[str] = []
    load.load_rest(20, chunks.append, ends.append)
    load.wait()
    np.testing.assert_array_equal(load.volume.voxels, whole.voxels)
    assert load.complete and ends == [""] and load.error == ""
    assert sorted(z for chunk in chunks for z in chunk) == [z for z in range(SLICES) if not 18 <= z < 22]
    assert chunks[0][:2] == [22, 17]  # nearest the slices shown first, first


@pytest.fixture
def series(tmp_path: Path) -> list[Path]:
    hu = np.random.default_rng(3).integers(-1024, 2000, size=(SLICES, 24, 20)).astype(np.int16)
    return write_series(hu, tmp_path / "series", SeriesSpec())


def test_a_streamed_series_is_the_volume_load_reads(series: list[Path]) -> None:
    folder = series[0].parent
    load = imaging.open_series(folder, imaging.scan_dicom(folder))
    assert not load.loaded.any() and load.volume.shape == (SLICES, 24, 20)
    load.fill(range(18, 22))
    assert load.done == 4
    whole = imaging.load(folder)
    assert_the_rest_loads(load, whole)
    for field in ("spacing", "origin", "modality", "meta", "windows", "warnings"):
        assert getattr(load.volume, field) == getattr(whole, field), field
    np.testing.assert_array_equal(load.volume.direction, whole.direction)
    assert [s.sop_instance_uid for s in load.volume.dicom.slices] == [
        s.sop_instance_uid for s in whole.dicom.slices
    ]


def test_undecoded_slices_hold_the_lowest_value_a_slice_can_hold(series: list[Path]) -> None:
    folder = series[0].parent
    load = imaging.open_series(folder, imaging.scan_dicom(folder))
    # 12 bits stored, intercept -1024: nothing can be darker than -1024 HU.
    assert load.volume.voxels.dtype == np.int16 and np.all(load.volume.voxels == -1024)


def test_a_slice_that_cannot_be_decoded_is_left_black_and_named(series: list[Path]) -> None:
    folder = series[0].parent
    load = imaging.open_series(folder, imaging.scan_dicom(folder))
    broken = series[25]
    broken.write_bytes(broken.read_bytes()[:400])  # damaged after its header was read
    ends: list[str] = []
    load.load_rest(0, lambda slices: None, ends.append)
    load.wait()
    whole_before = np.delete(load.volume.voxels, 25, axis=0)
    assert ends == [""] and load.complete
    assert np.all(load.volume.voxels[25] == -1024)
    assert any(broken.name in w and "slice 26" in w for w in load.volume.warnings)
    assert whole_before.shape[0] == SLICES - 1 and np.any(whole_before != -1024)


def test_a_load_that_fails_says_where_it_stopped(series: list[Path], monkeypatch) -> None:
    folder = series[0].parent
    load = imaging.open_series(folder, imaging.scan_dicom(folder))

    def write_slice(*args) -> None:
        raise MemoryError("no memory left")

    monkeypatch.setattr(dicom, "write_slice", write_slice)
    ends: list[str] = []
    load.load_rest(0, lambda slices: None, ends.append)
    load.wait()
    assert ends == [load.error] and "stopped after 0 of 40 slices: MemoryError: no memory left" in load.error


def test_a_cancelled_load_stops_and_calls_back_no_more(series: list[Path], monkeypatch) -> None:
    folder = series[0].parent
    load = imaging.open_series(folder, imaging.scan_dicom(folder))
    decoding = threading.Event()
    release = threading.Event()
    decode = dicom.decode

    def slow_decode(*args):
        decoding.set()
        release.wait()
        return decode(*args)

    monkeypatch.setattr(dicom, "decode", slow_decode)
    calls: list[object] = []
    load.load_rest(0, calls.append, calls.append)
    assert decoding.wait(10)
    threading.Timer(0.1, release.set).start()
    load.cancel()  # returns once the thread has ended
    assert calls == [] and load.done <= 1 and not load.complete


def test_a_series_over_the_budget_is_refused_before_allocation(series: list[Path]) -> None:
    folder = series[0].parent
    slice_bytes = 24 * 20 * 2
    with pytest.raises(imaging.TooLargeError) as refused:
        imaging.open_series(folder, imaging.scan_dicom(folder), memory_budget=10 * slice_bytes)
    assert refused.value.fitting == 10
    load = imaging.open_series(
        folder, imaging.scan_dicom(folder), slices=(5, 15), memory_budget=10 * slice_bytes
    )
    load.fill(range(10))
    np.testing.assert_array_equal(load.volume.voxels, imaging.load(folder).voxels[5:15])


def test_a_monochrome1_radiograph_streams_inverted_as_load_reads_it() -> None:
    path = Path(get_testdata_file("RG1_UNCR.dcm"))
    load = imaging.open_series(path, imaging.scan_dicom(path))
    load.fill([0])
    whole = imaging.load(path)
    np.testing.assert_array_equal(load.volume.voxels, whole.voxels)
    assert load.volume.windows == whole.windows and load.volume.meta == whole.meta
