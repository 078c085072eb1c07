"""A long session in the real window: 200 jobs with methods and layers switched, cancels,
superseding requests and studies reopened. Memory must level off, no thread may outlive the
window, and the overlay on screen must always be the latest request's.
"""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QThread

from medvis_desktop import imaging
from medvis_desktop.gui.main_window import MainWindow
from medvis_desktop.imaging import Volume
from tests.gui.conftest import make_window

JOBS = 200
WARM_UP = 100  # jobs before memory is expected to have levelled off
# Measured here (2 cores, TensorFlow on the CPU, the test alone): RSS rose from ~885 MB after
# the first job to ~922 MB by job 30 (TensorFlow traces, Qt caches), then stayed within
# 0.1-1.2 MB over jobs 100-200 in three runs. Keeping every result's maps alive (a leak of the
# kind the relay could have) made it grow by 100 MB over those 100 jobs. 10 MB is ~8x the
# noise seen and still catches a leak of 100 kB a job.
GROWTH_BOUND_MB = 10.0
# (method, layer, target): both layers of every method, both classes for Grad-CAM.
REQUESTS = [
    ("grad_cam", "conv2", 1),
    ("deconvnet", "conv1", None),
    ("activation_maps", "conv2", None),
    ("grad_cam", "conv1", 0),
    ("deconvnet", "conv2", None),
    ("activation_maps", "conv1", None),
]
CANCEL_EVERY = 7  # this job is cancelled as soon as it is posted
SUPERSEDE_EVERY = 5  # this job is posted twice, the first request overtaken by the second
REOPEN_EVERY = 25  # the other study is opened before this job


def rss_mb() -> float:
    """Resident set size of this process, from /proc/self/statm (its second field, in pages)."""
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def live_threads() -> set[threading.Thread]:
    """threading.enumerate() less the entries of ended foreign threads: a QThread that ran
    Python code leaves a _DummyThread entry, which Python 3.11 never removes."""
    tasks = {int(task) for task in os.listdir("/proc/self/task")}
    return {thread for thread in threading.enumerate() if thread.native_id in tasks}


def running_qthreads() -> list[QThread]:
    """QThreads Python still holds that are running, the GUI thread's own excepted."""
    main = QThread.currentThread()
    return [
        obj for obj in gc.get_objects() if isinstance(obj, QThread) and obj is not main and obj.isRunning()
    ]


@pytest.fixture(scope="module")
def studies(ct_volume: Volume, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small real head CT studies (different slabs and sizes), so each reopening changes the grid."""
    folder = tmp_path_factory.mktemp("soak")
    paths = []
    for name, voxels in (
        ("upper", ct_volume.voxels[4:10, 64:192, 64:192]),
        ("lower", ct_volume.voxels[20:28, 48:208, 48:208]),
    ):
        path = folder / f"{name}.nii.gz"
        imaging.save(Volume(np.ascontiguousarray(voxels), spacing=ct_volume.spacing, modality="CT"), path)
        paths.append(path)
    return paths


class Session:
    """Drives the window and checks, as each result arrives, that it is the latest request's."""

    def __init__(self, qtbot, window: MainWindow) -> None:
        self.qtbot, self.window = qtbot, window
        self.finished: set[int] = set()
        self.stale: list[tuple[int, int | None]] = []
        window.relay.finished.connect(self.finished.add)
        window.relay.result.connect(self.on_result)

    def on_result(self, job_id: int, result: object) -> None:
        if hasattr(result, "computed") and job_id != self.window._job_id:
            self.stale.append((job_id, self.window._job_id))

    def request(self, method: str, layer: str, target: int | None) -> int:
        self.window.panel.select(method=method, layer=layer, target=target)
        job_id = self.window.run()
        assert job_id is not None
        return job_id

    def wait(self, job_id: int) -> None:
        self.qtbot.waitUntil(lambda: job_id in self.finished, timeout=60_000)


def test_two_hundred_jobs_level_off_leave_no_thread_and_no_stale_overlay(
    qtbot, settings, studies, tiny_model_path
):
    threads_before = live_threads()
    window = make_window(qtbot, settings)
    assert window.open_volume(studies[0]) and window.open_model(tiny_model_path)
    session = Session(qtbot, window)
    memory: list[float] = []
    for n in range(JOBS):
        if n and n % REOPEN_EVERY == 0:
            assert window.open_volume(studies[(n // REOPEN_EVERY) % 2])
        window.viewer.set_slice(n % window.volume.shape[0])
        method, layer, target = REQUESTS[n % len(REQUESTS)]
        if n % SUPERSEDE_EVERY == 0:
            overtaken = session.request(*REQUESTS[(n + 1) % len(REQUESTS)])
        job_id = session.request(method, layer, target)
        if n % CANCEL_EVERY == 0:
            window.cancel()
        session.wait(job_id)
        if n % SUPERSEDE_EVERY == 0:
            session.wait(overtaken)
        if n % CANCEL_EVERY:  # a completed request: its result, whole, is what is shown
            shown = window.explanation
            assert (shown.method, shown.layer) == (method, layer) and shown.computed.all(), n
            assert target is None or shown.target == target, n
            z = window.viewer.cursor[0]
            np.testing.assert_array_equal(window.viewer.views[0].overlay.image, shown.maps[z])
        memory.append(rss_mb())

    assert not session.stale, f"results shown from superseded jobs: {session.stale[:5]}"
    assert not window.last_error, window.last_error
    growth = max(memory[WARM_UP:]) - memory[WARM_UP - 1]
    every_25 = ", ".join(f"{memory[k]:.0f}" for k in range(0, JOBS, 25))
    print(f"\nRSS every 25 jobs (MB): {every_25}; growth over the last {JOBS - WARM_UP}: {growth:.1f} MB")
    assert growth < GROWTH_BOUND_MB

    assert running_qthreads() == [window.relay.worker_thread]  # the check below can see it
    window.close()
    assert not window.relay.worker_thread.isRunning()
    assert not running_qthreads()
    assert live_threads() <= threads_before
