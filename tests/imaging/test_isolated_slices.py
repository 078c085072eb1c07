"""A compressed DICOM series streamed through child processes (#14): the Volume the whole load
reads, its first slices in before the rest, a decoder that crashes or hangs on one file costing
that slice only, a stopped load ending its child and giving its memory back.

The series are real files compressed by pydicom's encoders; the decoders run in real child
processes. A crash is planted through `SeriesLoad(decoder=...)`: a module-level decoder
(isolated_readers) that really aborts or segfaults its process on one file.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from pydicom import uid

from medvis_desktop import imaging
from medvis_desktop.imaging import checks, dicom, isolated_slices
from medvis_desktop.imaging.streaming import SeriesLoad
from tests.imaging import isolated_readers
from tests.imaging.dicom_factory import SeriesSpec, compress_files, write_series
from tests.imaging.test_streaming import SLICES, assert_the_rest_loads

SHARED_NAME = "memfd:medvis-voxels"


def compressed_series(hu: np.ndarray, folder: Path, syntax: str) -> list[Path]:
    return compress_files(write_series(hu, folder, SeriesSpec()), syntax)


@pytest.fixture
def hu() -> np.ndarray:
    return np.random.default_rng(5).integers(-1024, 2000, size=(SLICES, 24, 20)).astype(np.int16)


@pytest.fixture
def series(tmp_path: Path, hu: np.ndarray) -> list[Path]:
    return compressed_series(hu, tmp_path / "rle", uid.RLELossless)


def open_load(folder: Path, decoder: dicom.Decoder | None = None) -> SeriesLoad:
    plan = dicom.plan_series(dicom.scan(folder), folder)
    return SeriesLoad(plan, folder, checks.memory_budget(None), decoder=decoder)


def rename(path: Path, prefix: str) -> Path:
    """The file renamed for a planted decoder to fail on (its header already read: the scan
    is redone after)."""
    renamed = path.with_name(f"{prefix}-{path.name}")
    path.rename(renamed)
    return renamed


def shared_mappings() -> int:
    return Path("/proc/self/maps").read_text().count(SHARED_NAME)


def shared_files() -> int:
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the listing's own descriptor, closed since
            continue
    return sum(SHARED_NAME in link for link in links)


@pytest.mark.parametrize("syntax", [uid.RLELossless, uid.JPEGLSLossless])
def test_a_compressed_series_streams_the_volume_the_whole_load_reads(
    tmp_path: Path, hu: np.ndarray, syntax: str
) -> None:
    folder = compressed_series(hu, tmp_path / "series", syntax)[0].parent
    load = imaging.open_series(folder, imaging.scan_dicom(folder))
    assert isinstance(load._decoder, isolated_slices.IsolatedSlices)
    load.fill(range(18, 22))
    assert load.done == 4 and load.loaded[18:22].all()
    np.testing.assert_array_equal(load.volume.voxels[18:22], hu[18:22])
    assert np.all(load.volume.voxels[:18] == -1024) and np.all(load.volume.voxels[22:] == -1024)
    whole = imaging.load(folder)
    assert_the_rest_loads(load, whole)
    np.testing.assert_array_equal(load.volume.voxels, hu)
    assert load.volume.warnings == whole.warnings
    assert load._shared.closed  # every slice in: no child will map the voxels again


def test_a_lone_compressed_file_streams(tmp_path: Path, hu: np.ndarray) -> None:
    (path,) = compressed_series(hu[:1], tmp_path, uid.RLELossless)
    load = imaging.open_series(path, imaging.scan_dicom(path))
    load.fill([0])
    assert load.complete
    np.testing.assert_array_equal(load.volume.voxels, imaging.load(path).voxels)


@pytest.mark.parametrize(
    ("decoder", "prefix", "crash"),
    [
        (isolated_readers.aborting_decode, "abort", "SIGABRT"),
        (isolated_readers.segfaulting_decode, "segv", "SIGSEGV"),
    ],
)
def test_a_decoder_crashing_on_one_file_costs_that_slice_only(
    series: list[Path], hu: np.ndarray, decoder, prefix: str, crash: str
) -> None:
    broken = rename(series[25], prefix)
    load = open_load(broken.parent, decoder)
    load.fill(range(18, 22))
    ends: list[str] = []
    load.load_rest(20, lambda slices: None, ends.append)
    load.wait()
    assert ends == [""] and load.complete and load.error == ""
    assert np.all(load.volume.voxels[25] == -1024)
    np.testing.assert_array_equal(np.delete(load.volume.voxels, 25, 0), np.delete(hu, 25, 0))
    assert f"Damaged file: slice 26 ({broken.name}) is left black: the decoder crashed ({crash})" in (
        load.volume.warnings
    )


def test_a_crash_among_the_first_slices_costs_that_slice_only(series: list[Path], hu: np.ndarray) -> None:
    broken = rename(series[19], "abort")
    load = open_load(broken.parent, isolated_readers.aborting_decode)
    load.fill(range(18, 22))
    assert load.done == 4 and np.all(load.volume.voxels[19] == -1024)
    np.testing.assert_array_equal(load.volume.voxels[[18, 20, 21]], hu[[18, 20, 21]])
    assert any(broken.name in warning and "slice 20" in warning for warning in load.volume.warnings)


def test_a_decoder_that_hangs_is_stopped_and_costs_that_slice(
    series: list[Path], hu: np.ndarray, monkeypatch
) -> None:
    monkeypatch.setattr(isolated_slices, "SLICE_TIMEOUT_S", 3.0)
    broken = rename(series[2], "hang")
    load = open_load(broken.parent, isolated_readers.hanging_decode)
    load.fill(range(5))
    assert load.done == 5 and np.all(load.volume.voxels[2] == -1024)
    np.testing.assert_array_equal(load.volume.voxels[[0, 1, 3, 4]], hu[[0, 1, 3, 4]])
    assert f"Damaged file: slice 3 ({broken.name}) is left black: the decoder took longer than 3 s" in (
        load.volume.warnings
    )


def test_a_decoder_crashing_on_every_file_stops_the_load(series: list[Path], monkeypatch) -> None:
    monkeypatch.setattr(isolated_slices, "CRASHES_IN_A_ROW", 3)
    for path in series:
        rename(path, "abort")
    load = open_load(series[0].parent, isolated_readers.aborting_decode)
    ends: list[str] = []
    load.load_rest(0, lambda slices: None, ends.append)
    load.wait()
    assert ends == [load.error] and load.done == 3
    assert "stopped after 3 of 40 slices: the decoder crashed on 3 slices in a row (" in load.error


def test_a_cancelled_load_ends_its_child_and_gives_its_memory_back(series: list[Path]) -> None:
    mappings, files = shared_mappings(), shared_files()
    load = open_load(series[0].parent, isolated_readers.slow_decode)
    # The memory file, and the duplicate the mapping holds (Python's mmap keeps one).
    assert shared_mappings() == mappings + 1 and shared_files() == files + 2
    calls: list[object] = []
    load.load_rest(0, calls.append, calls.append)
    deadline = time.monotonic() + 60
    while load.done < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    child = load._decoder._process
    load.cancel()
    assert load.done >= 2 and not child.is_alive() and child.exitcode == -signal.SIGKILL
    assert not load._thread.is_alive() and load.done < SLICES - 10
    assert calls == []  # no chunk (32 slices at 0.1 s) was due, and no end after cancel
    assert shared_files() == files + 1  # no child can map it again
    volume = load.volume
    del load
    gc.collect()
    assert shared_mappings() == mappings + 1  # the volume still shows what was read
    del volume
    gc.collect()
    assert shared_mappings() == mappings and shared_files() == files


def test_a_load_dropped_unfinished_gives_its_memory_back(series: list[Path]) -> None:
    mappings, files = shared_mappings(), shared_files()
    load = open_load(series[0].parent)
    load.fill([0])
    assert shared_files() == files + 2
    del load
    gc.collect()
    assert shared_mappings() == mappings and shared_files() == files
