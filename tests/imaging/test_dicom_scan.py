"""A folder's headers read on two cores: the same scan as on one, whatever becomes of the child."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from medvis_desktop import imaging
from medvis_desktop.imaging import dicom, dicom_scan
from tests.imaging.dicom_factory import SeriesSpec, write_series

needs_two_cores = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="the second core's reader runs only with two cores"
)


@pytest.fixture
def mixed_folder(tmp_path: Path, head_ct_block: np.ndarray) -> Path:
    """Two series on two grids, files shuffled, a truncated file, a damaged header and a PDF."""
    paths = write_series(head_ct_block[:12], tmp_path / "head")
    write_series(head_ct_block[:6, ::2, ::2], tmp_path / "small", SeriesSpec(series_description="small"))
    truncated = tmp_path / "head" / "truncated"
    truncated.write_bytes(paths[5].read_bytes()[: paths[5].stat().st_size // 2])
    paths[5].unlink()
    (tmp_path / "IMBAD").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 50)
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 not an image")
    return tmp_path


def summary(found: dicom.Scan) -> tuple:
    """Everything a scan found, comparable: series by series their frames in order, their
    first file's header, and what was skipped and why."""
    series = [
        (
            s.uid,
            s.description,
            s.rows,
            s.columns,
            s.compressed,
            str(s.header.SOPInstanceUID),
            [(f.path, tuple(f.position), f.rescale, f.header.SOPInstanceUID) for f in s.frames],
        )
        for s in found.series
    ]
    return series, found.not_dicom, found.damaged, found.without_image


def two_readers(monkeypatch: pytest.MonkeyPatch) -> list:
    """A small folder read in two parts, this process's and one child's; what came back from
    the child is recorded (None: nothing, its part was read here)."""
    monkeypatch.setattr(dicom_scan, "PARALLEL_FROM", 2)
    monkeypatch.setattr(dicom_scan, "MAX_READERS", 2)
    from_child = []
    received = dicom_scan._received

    def recorded(receiver, deadline):
        from_child.append(received(receiver, deadline))
        return from_child[-1]

    monkeypatch.setattr(dicom_scan, "_received", recorded)
    return from_child


@needs_two_cores
def test_a_folder_read_on_two_cores_scans_as_on_one(mixed_folder, monkeypatch):
    one_core = summary(dicom.scan(mixed_folder))
    series, not_dicom, damaged, _ = one_core
    assert [len(frames) for *_, frames in series] == [11, 6]
    assert set(damaged) == {mixed_folder / "IMBAD", mixed_folder / "head" / "truncated"}
    assert not_dicom == [mixed_folder / "report.pdf"]
    from_child = two_readers(monkeypatch)
    assert summary(dicom.scan(mixed_folder)) == one_core
    [second_half] = from_child  # read by the child, not again here
    assert second_half is not None and len(second_half) == 10  # of the 20 files


@needs_two_cores
def test_a_child_killed_before_it_answers_costs_time_only(mixed_folder, monkeypatch):
    """Its half is read here instead."""
    one_core = summary(dicom.scan(mixed_folder))
    from_child = two_readers(monkeypatch)
    read_file = dicom_scan.read_file
    killed = []

    def kill_child_then_read(file: Path, budget: int) -> dicom_scan.FileHeader:
        if not killed:
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)
                killed.append(child.pid)
        return read_file(file, budget)

    monkeypatch.setattr(dicom_scan, "read_file", kill_child_then_read)
    assert summary(dicom.scan(mixed_folder)) == one_core
    assert killed and from_child == [None]


@needs_two_cores
def test_a_child_that_cannot_start_costs_time_only(mixed_folder, monkeypatch):
    """Out of processes, say: its part is read here."""
    one_core = summary(dicom.scan(mixed_folder))
    from_child = two_readers(monkeypatch)

    def no_more_processes(self) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", no_more_processes)
    assert summary(dicom.scan(mixed_folder)) == one_core
    assert from_child == []  # no child to wait for


@needs_two_cores
def test_a_series_of_many_files_loads_in_an_isolated_reader_too(tmp_path, head_ct_block):
    """That reader, a daemon process, may not start children: it reads all the headers itself."""
    hu = np.resize(head_ct_block[:, ::16, ::16], (dicom_scan.PARALLEL_FROM, 16, 16))
    write_series(hu, tmp_path)
    np.testing.assert_array_equal(imaging.load_isolated(tmp_path).voxels, hu)
