"""One long-lived thread for TensorFlow work, and the relay the GUI talks to.

The GUI never calls TensorFlow itself: it posts a job to the relay, which hands it to the
worker through a queued signal. The worker lives in its own QThread and reports back through
signals connected to the relay's methods, so the relay's own signals are always emitted in
the GUI thread. A newer job for the same view makes the older one stale: its cancel flag is
set (checked between batches) and whatever it still reports is dropped.

Besides explaining (ExplainJob, MosaicJob), the worker measures the result on screen with
evaluate's per-slice functions: MeasureJob (faithfulness and, with a reference mask,
localisation), SanityJob (the randomisation cascade) and CompareJob (several methods on
one slice).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from medvis_desktop.errors import MedvisError
from medvis_desktop.evaluate import SliceMeasures, SliceRun, measure_slice, reference_scores, slice_cascade
from medvis_desktop.explain.activations import FiringRecord
from medvis_desktop.explain.runner import Explanation, Progress, explain_volume, patch_corners
from medvis_desktop.explain.slice_inputs import SliceInputs, feature_mosaic
from medvis_desktop.imaging import Volume
from medvis_desktop.models.card import ModelCard

# After the slice on screen, slices are computed in chunks of this many batches: each chunk
# is shown as soon as it is done.
BATCHES_PER_CHUNK = 4
# Slices sampled through the volume to tell which filters never respond.
DEAD_FILTER_SAMPLES = 8


@dataclass
class ExplainJob:
    """Explain a volume with a method, the slice on screen first."""

    view: str
    volume: Volume
    model: keras.Model
    card: ModelCard
    method: str
    layer: str | None
    target: int | None
    filter: int | None
    first_slice: int
    region: str = "all"
    params: dict[str, object] = field(default_factory=dict)
    batch_size: int = 8
    job_id: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)

    def slice_order(self) -> list[int]:
        """Every slice, nearest to the one on screen first."""
        return sorted(range(self.volume.shape[0]), key=lambda z: (abs(z - self.first_slice), z))


@dataclass
class MosaicJob:
    """All feature maps of one layer for one slice, and the layer's dead filters, on the model
    input that shows the slice (for a 3D model or one that reads in patches, its plane through
    the slice of the whole volume or of the patch behind the slice's score)."""

    view: str
    volume: Volume
    model: keras.Model
    inputs: SliceInputs
    layer: str
    slice: int
    job_id: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class MeasureJob:
    """Deletion and insertion curves, MuFidelity and, with a reference, the pointing game and
    the energy inside, of one slice's map (see evaluate.measure_slice)."""

    view: str
    volume: Volume
    model: keras.Model
    run: SliceRun
    slice: int
    study_map: np.ndarray  # float32 (y, x): the explanation's map of the slice, a copy
    reference: np.ndarray | None  # bool (y, x): the reference mask's slice, if one is open
    steps: int = 10
    samples: int = 128
    baseline: float | str = 0.0
    job_id: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Measurement:
    """A MeasureJob's result; pointing game and energy inside are NaN without a reference on
    the slice."""

    measures: SliceMeasures
    pointing_game: float
    energy_inside: float


@dataclass
class SanityJob:
    """The randomisation cascade of one slice's map: progress per map, cancel between layers."""

    view: str
    volume: Volume
    model: keras.Model
    run: SliceRun
    slice: int
    job_id: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class CompareJob:
    """Several methods on one slice, each measured as a MeasureJob would (without reference)."""

    view: str
    volume: Volume
    model: keras.Model
    runs: list[SliceRun]
    slice: int
    steps: int = 10
    samples: int = 128
    baseline: float | str = 0.0
    job_id: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Compared:
    """One method of a CompareJob, reported as soon as it is measured."""

    index: int  # in CompareJob.runs
    measures: SliceMeasures
    study_map: np.ndarray  # float32 (y, x): the measured map on the study's slice grid


Job = ExplainJob | MosaicJob | MeasureJob | SanityJob | CompareJob


class Worker(QObject):
    """Runs jobs one after the other in the worker thread; never lets an exception escape."""

    progress = Signal(int, int, int)  # job_id, done, total
    partial = Signal(int, object)  # job_id, Explanation of some slices, or a Mosaic
    failed = Signal(int, str)  # job_id, message
    finished = Signal(int)  # job_id: done, failed or cancelled; the worker is free

    def __init__(self) -> None:
        super().__init__()
        self._firing = FiringRecord()  # mosaics' dead filters, kept as the cursor moves

    @Slot(object)
    def run(self, job: Job) -> None:
        try:
            if not job.cancel.is_set():
                handlers = {
                    ExplainJob: self._explain,
                    MosaicJob: self._mosaic,
                    MeasureJob: self._measure,
                    SanityJob: self._sanity,
                    CompareJob: self._compare,
                }
                handlers[type(job)](job)
        except MedvisError as error:
            self.failed.emit(job.job_id, str(error))
        except (KeyboardInterrupt, SystemExit):
            raise  # the user or the program is ending the process: not the job's failure
        except BaseException as error:
            # TensorFlow and the libraries below it raise anything, BaseException subclasses
            # included (a Rust decoder's PanicException, a layer's own): the session must go on.
            self.failed.emit(job.job_id, f"{type(error).__name__}: {error}")
        finally:
            self.finished.emit(job.job_id)  # the worker is free, whatever happened

    def _explain(self, job: ExplainJob) -> None:
        order = job.slice_order()
        if job.card.input_mode == "3d":
            # one run over the volume or its patches, with its progress
            progress = functools.partial(self.progress.emit, job.job_id)
            self.partial.emit(job.job_id, self._explain_slices(job, order, progress))
            return
        # A 2D model: the slice on screen first, then chunks of slices, every chunk into the first
        # result's maps (one study-sized array per job). Progress counts the model's inputs:
        # slices, or the patches of a card that reads each slice in patches.
        extent = job.card.patch_extent(job.volume.spacing)
        per_slice = 1 if extent is None else len(patch_corners((1, *job.volume.shape[1:]), extent))
        total = per_slice * len(order)

        def progress_from(offset: int) -> Progress:
            return lambda done, _: self.progress.emit(job.job_id, offset + done, total)

        first = self._explain_slices(job, order[:1], progress_from(0))
        self.partial.emit(job.job_id, first)
        done = int(first.computed.sum())
        chunk = max(1, job.batch_size * BATCHES_PER_CHUNK // per_slice)
        # The first result fixes what "automatic" meant, so every slice explains the same thing.
        job.layer, job.target = first.layer, first.target
        for start in range(done, len(order), chunk):
            if job.cancel.is_set():
                return
            slices = order[start : start + chunk]
            result = self._explain_slices(job, slices, progress_from(start * per_slice), maps=first.maps)
            self.partial.emit(job.job_id, result)

    def _explain_slices(
        self,
        job: ExplainJob,
        slices: Sequence[int],
        progress: Progress | None = None,
        maps: np.ndarray | None = None,
    ) -> Explanation:
        return explain_volume(
            job.volume,
            job.model,
            job.method,
            card=job.card,
            layer=job.layer,
            target=job.target,
            filter=job.filter,
            slices=slices,
            progress=progress,
            cancel=job.cancel.is_set,
            batch_size=job.batch_size,
            region=job.region,
            params=job.params,
            maps=maps,
        )

    def _mosaic(self, job: MosaicJob) -> None:
        voxels = job.volume.voxels
        samples = np.linspace(0, voxels.shape[0] - 1, DEAD_FILTER_SAMPLES).round().astype(int)
        self.partial.emit(
            job.job_id,
            feature_mosaic(job.model, voxels, job.inputs, job.layer, job.slice, samples, self._firing),
        )
        self.progress.emit(job.job_id, 1, 1)

    def _measure(self, job: MeasureJob) -> None:
        measures = measure_slice(
            job.volume, job.model, job.run, job.slice, steps=job.steps, samples=job.samples,
            baseline=job.baseline, progress=functools.partial(self.progress.emit, job.job_id),
            cancel=job.cancel.is_set,
        )  # fmt: skip
        if measures is None:
            return
        pointing = energy = np.full(1, np.nan)
        if job.reference is not None:
            pointing, energy = reference_scores(
                job.study_map[None], job.reference[None], job.volume.spacing[1:]
            )
        self.partial.emit(job.job_id, Measurement(measures, float(pointing[0]), float(energy[0])))

    def _sanity(self, job: SanityJob) -> None:
        progress = functools.partial(self.progress.emit, job.job_id)
        cascade = slice_cascade(
            job.volume, job.model, job.run, job.slice, progress=progress, cancel=job.cancel.is_set
        )
        if not cascade.cancelled:
            self.partial.emit(job.job_id, cascade)

    def _compare(self, job: CompareJob) -> None:
        for index, run in enumerate(job.runs):
            measures = measure_slice(
                job.volume, job.model, run, job.slice, steps=job.steps, samples=job.samples,
                baseline=job.baseline, cancel=job.cancel.is_set,
            )  # fmt: skip
            if measures is None:
                return
            study_map = run.on_study_slice(measures.maps, job.slice, job.volume.shape)
            self.partial.emit(job.job_id, Compared(index, measures, study_map))
            self.progress.emit(job.job_id, index + 1, len(job.runs))


class Relay(QObject):
    """The GUI's side: owns the worker thread, merges partial results, drops stale ones.

    `result` carries, for an ExplainJob, one Explanation that grows as slices come in (the
    same object each time, filled in the GUI thread); for the other jobs what the worker
    reported, as it is: a Mosaic, a Measurement, a Cascade, each Compared.
    """

    progress = Signal(int, int)  # done, total (of the latest job)
    view_progress = Signal(str, int, int)  # the same, with the job's view: where to show it
    result = Signal(int, object)  # job_id, Explanation, Mosaic, Measurement, Cascade or Compared
    failed = Signal(int, str)  # job_id, message
    finished = Signal(int)  # job_id
    _post = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker_thread = QThread()
        self.worker_thread.setObjectName("medvis-worker")
        self._worker = Worker()
        self._worker.moveToThread(self.worker_thread)
        self._post.connect(self._worker.run)
        self._worker.progress.connect(self._on_progress)
        self._worker.partial.connect(self._on_partial)
        self._worker.failed.connect(self._on_failed)
        self._worker.finished.connect(self._on_finished)
        self.worker_thread.start()
        self._next_id = 1
        self._latest: dict[str, Job] = {}
        self._merged: dict[int, Explanation] = {}

    def submit(self, job: Job) -> int:
        """Queue `job`; the previous job for the same view is cancelled. Returns the job id."""
        self.cancel(job.view)
        job.job_id = self._next_id
        self._next_id += 1
        self._latest[job.view] = job
        self._post.emit(job)
        return job.job_id

    def cancel(self, view: str) -> None:
        job = self._latest.pop(view, None)
        if job is not None:
            job.cancel.set()

    def is_current(self, job_id: int) -> bool:
        return any(job.job_id == job_id for job in self._latest.values())

    def shutdown(self) -> None:
        """Cancel everything and stop the thread (it ends after the batch it is in)."""
        for view in list(self._latest):
            self.cancel(view)
        self.worker_thread.quit()
        self.worker_thread.wait()

    def _on_progress(self, job_id: int, done: int, total: int) -> None:
        view = next((view for view, job in self._latest.items() if job.job_id == job_id), None)
        if view is not None:  # the job is current
            self.progress.emit(done, total)
            self.view_progress.emit(view, done, total)

    def _on_partial(self, job_id: int, partial: object) -> None:
        if not self.is_current(job_id):
            return
        if not isinstance(partial, Explanation):
            self.result.emit(job_id, partial)
            return
        merged = self._merged.setdefault(job_id, partial)
        if merged is not partial:
            done = np.flatnonzero(partial.computed)
            if merged.maps is not partial.maps:
                merged.maps[done] = partial.maps[done]
            if partial.patches:  # disjoint slices' patches: each with its own score row
                merged.patches.extend(partial.patches)
                merged.scores = np.concatenate([merged.scores, partial.scores])
            else:
                merged.scores[done] = partial.scores[done]
            merged.computed[done] = True
        self.result.emit(job_id, merged)

    def _on_failed(self, job_id: int, message: str) -> None:
        if self.is_current(job_id):
            self.failed.emit(job_id, message)

    def _on_finished(self, job_id: int) -> None:
        self._merged.pop(job_id, None)
        for view, job in list(self._latest.items()):
            if job.job_id == job_id:
                del self._latest[view]
        self.finished.emit(job_id)
