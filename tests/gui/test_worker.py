"""The worker thread and its relay: progress, partial results, cancel, supersede, errors."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import keras
import numpy as np
import pytest
from PySide6.QtCore import QTimer

from medvis_desktop.explain.runner import explain_volume, patch_corners
from medvis_desktop.explain.slice_inputs import Mosaic, SliceInputs
from medvis_desktop.gui.worker import ExplainJob, MosaicJob, Relay
from medvis_desktop.imaging import Volume
from medvis_desktop.models.card import ModelCard
from tests.gui.conftest import HEAD_SPACING, make_window, run_and_wait


class Recorder:
    """Collects what the relay emits (a plain GUI-thread object, as the window is)."""

    def __init__(self, relay: Relay) -> None:
        self.progress: list[tuple[int, int]] = []
        self.results: list[tuple[int, object, np.ndarray]] = []
        self.failed: list[tuple[int, str]] = []
        self.finished: list[int] = []
        relay.progress.connect(self.on_progress)
        relay.result.connect(self.on_result)
        relay.failed.connect(self.on_failed)
        relay.finished.connect(self.finished.append)

    def on_progress(self, done: int, total: int) -> None:
        self.progress.append((done, total))

    def on_result(self, job_id: int, result: object) -> None:
        computed = result.computed.copy() if hasattr(result, "computed") else None
        self.results.append((job_id, result, computed))

    def on_failed(self, job_id: int, message: str) -> None:
        self.failed.append((job_id, message))


@pytest.fixture
def relay(qtbot):
    relay = Relay()
    yield relay
    relay.shutdown()
    assert not relay.worker_thread.isRunning()


@pytest.fixture
def job(ct_volume, tiny_model, tiny_card) -> ExplainJob:
    return ExplainJob(
        view="slices",
        volume=ct_volume,
        model=tiny_model,
        card=tiny_card,
        method="grad_cam",
        layer="conv2",
        target=1,
        filter=None,
        first_slice=17,
        batch_size=4,
    )


def variant(job: ExplainJob, **changes: object) -> ExplainJob:
    """The same job with changes and a cancel flag of its own."""
    return replace(job, cancel=threading.Event(), **changes)


def wait_finished(qtbot, recorder: Recorder, job_id: int, timeout: int = 60_000) -> None:
    qtbot.waitUntil(lambda: job_id in recorder.finished, timeout=timeout)


def test_current_slice_comes_first_then_the_rest_with_progress(qtbot, relay, job):
    recorder = Recorder(relay)
    job_id = relay.submit(job)
    wait_finished(qtbot, recorder, job_id)

    assert not recorder.failed
    first_id, _, computed = recorder.results[0]
    assert first_id == job_id
    assert np.flatnonzero(computed).tolist() == [17]  # the slice on screen, alone, first
    final = recorder.results[-1][1]
    assert final.computed.all() and np.isfinite(final.maps).all()
    assert final.maps.shape == job.volume.shape
    assert recorder.progress[0] == (1, 40) and recorder.progress[-1] == (40, 40)
    dones = [done for done, _ in recorder.progress]
    assert dones == sorted(dones)


def test_the_chunks_of_a_job_fill_one_study_sized_array(qtbot, relay, job):
    """Not one volume of maps per chunk: on a 300 × 512 × 512 study each would be 315 MB."""
    arrays = []  # each partial's maps, as the worker makes them
    relay._worker.partial.connect(lambda job_id, partial: arrays.append(partial.maps))
    recorder = Recorder(relay)
    wait_finished(qtbot, recorder, relay.submit(job))
    assert len(arrays) > 2 and all(maps is arrays[0] for maps in arrays)
    assert recorder.results[-1][1].maps is arrays[0] and np.isfinite(arrays[0]).all()


def test_a_newer_job_supersedes_the_running_one(qtbot, relay, job):
    recorder = Recorder(relay)
    old = relay.submit(job)
    new = relay.submit(variant(job, first_slice=3))
    wait_finished(qtbot, recorder, new)
    qtbot.waitUntil(lambda: old in recorder.finished)

    assert job.cancel.is_set()
    assert {job_id for job_id, _, _ in recorder.results} == {new}
    assert recorder.results[-1][1].computed.all()


def test_cancel_stops_between_batches(qtbot, relay, job):
    recorder = Recorder(relay)
    job_id = relay.submit(variant(job, batch_size=1))
    qtbot.waitUntil(lambda: bool(recorder.results), timeout=30_000)
    relay.cancel("slices")
    qtbot.waitUntil(lambda: job_id in recorder.finished, timeout=30_000)
    assert not recorder.results[-1][1].computed.all()

    queued = relay.submit(variant(job))
    relay.cancel("slices")  # before the worker got to it: skipped
    qtbot.waitUntil(lambda: queued in recorder.finished, timeout=30_000)
    assert all(job_id != queued for job_id, _, _ in recorder.results)


def test_an_error_is_a_message_and_the_next_job_still_runs(qtbot, relay, job):
    recorder = Recorder(relay)
    wrong = ModelCard(input_mode="2d", input_shape=(32, 32, 1))  # not this model's input
    bad = relay.submit(variant(job, card=wrong))
    wait_finished(qtbot, recorder, bad)
    assert [job_id for job_id, _ in recorder.failed] == [bad]
    assert "does not fit" in recorder.failed[0][1]

    broken = relay.submit(variant(job, volume=None))  # anything raised, not only MedvisError
    wait_finished(qtbot, recorder, broken)
    assert recorder.failed[-1][0] == broken and "AttributeError" in recorder.failed[-1][1]

    good = relay.submit(variant(job, first_slice=0))
    wait_finished(qtbot, recorder, good)
    assert recorder.results[-1][0] == good and recorder.results[-1][1].computed.all()


def layer_output(model: keras.Model, layer: str, batch: np.ndarray) -> np.ndarray:
    """The layer's output by a Keras sub-model: what the mosaic must show, found another way."""
    return keras.Model(model.input, model.get_layer(layer).output)(batch).numpy()


def mosaic_of(qtbot, relay, job: MosaicJob) -> Mosaic:
    recorder = Recorder(relay)
    wait_finished(qtbot, recorder, relay.submit(job))
    assert not recorder.failed
    mosaic = recorder.results[-1][1]
    assert isinstance(mosaic, Mosaic)
    return mosaic


def test_mosaic_job_gives_every_feature_map_and_dead_filters(qtbot, relay, ct_volume, tiny_model, tiny_card):
    mosaic = mosaic_of(
        qtbot, relay, MosaicJob("mosaic", ct_volume, tiny_model, SliceInputs(tiny_card), "conv1", 5)
    )

    voxels = ct_volume.voxels
    expected = layer_output(tiny_model, "conv1", tiny_card.slice_input(voxels, [5]))[0]
    np.testing.assert_allclose(mosaic.maps, expected, atol=1e-5)
    samples = [0, 6, 11, 17, 22, 28, 33, 39]  # 8 evenly through the 40 slices
    active = (layer_output(tiny_model, "conv1", tiny_card.slice_input(voxels, samples)) > 0).any(
        axis=(0, 1, 2)
    )
    assert mosaic.dead.tolist() == (~active).tolist()
    assert (mosaic.shown, mosaic.sampled) == ("slice", 8)


def test_a_3d_model_s_mosaic_is_the_plane_through_the_slice_of_its_patch(qtbot, relay, ct_volume):
    inputs = keras.Input((8, 32, 32, 1))
    x = keras.layers.Conv3D(3, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling3D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    card = ModelCard(input_mode="3d", input_shape=(8, 32, 32, 1), resize="crop_or_pad")
    job = MosaicJob("mosaic", ct_volume, model, SliceInputs.of(card, ct_volume.spacing, None), "conv", 20)
    mosaic = mosaic_of(qtbot, relay, job)

    # No scores yet: the patch holding slice 20 nearest its middle (slices 16–23, not 20–27),
    # nearest the centre in-plane: corners step by half a patch (16), (256 - 32) / 2 = 112.
    assert mosaic.shown == "patch at 16 112 112"
    patch = ct_volume.voxels[16:24, 112:144, 112:144]
    expected = layer_output(model, "conv", card.volume_input(patch, reference=ct_volume.voxels))
    np.testing.assert_allclose(mosaic.maps, expected[0, 20 - 16], atol=1e-5)
    assert mosaic.dead.shape == (3,) and mosaic.sampled == 8  # the 8 samples lie in 8 patches


def test_a_patch_card_s_mosaic_shows_the_patch_not_the_squeezed_slice(qtbot, relay, ct_volume, tiny_model):
    side = 64 * HEAD_SPACING[1]  # patches of 64 voxels, the model's input: none resized
    card = ModelCard(input_mode="2d", input_shape=(64, 64, 1), patch_mm=(side, side))
    job = MosaicJob(
        "mosaic", ct_volume, tiny_model, SliceInputs.of(card, ct_volume.spacing, None), "conv1", 5
    )
    mosaic = mosaic_of(qtbot, relay, job)

    assert mosaic.shown == "patch at 5 96 96"  # (256 - 64) / 2: the patch nearest the centre
    patch = ct_volume.voxels[5:6, 96:160, 96:160]
    expected = layer_output(tiny_model, "conv1", card.slice_input(patch, [0], reference=ct_volume.voxels))
    np.testing.assert_allclose(mosaic.maps, expected[0], atol=1e-5)


def test_gui_thread_is_never_blocked_while_a_volume_is_explained(qtbot, relay, job):
    recorder = Recorder(relay)
    ticks: list[float] = []
    timer = QTimer(interval=10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))  # a GUI-thread timer
    timer.start()
    job_id = relay.submit(variant(job, batch_size=2))  # many small batches: a longer run
    wait_finished(qtbot, recorder, job_id)
    timer.stop()

    gaps = np.diff(ticks)
    longest = gaps.max() * 1000
    print(f"\nGUI event loop while explaining 40 slices: {len(ticks)} ticks, longest gap {longest:.0f} ms")
    assert len(ticks) > 5  # the timer did run during the job
    assert gaps.max() < 0.5


def test_a_3d_model_reports_progress_patch_by_patch(qtbot, relay, ct_volume):
    """One run over the volume's patches: no result before the end, but progress as its
    patches come in (a batch at a time)."""
    import keras

    inputs = keras.Input((8, 32, 32, 1))
    x = keras.layers.Conv3D(2, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling3D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    card = ModelCard(input_mode="3d", input_shape=(8, 32, 32, 1), resize="crop_or_pad")
    job = ExplainJob("slices", ct_volume, model, card, "grad_cam", "conv", 1, None, first_slice=20)
    recorder = Recorder(relay)
    wait_finished(qtbot, recorder, relay.submit(job))

    assert not recorder.failed and len(recorder.results) == 1
    assert recorder.results[0][1].computed.all()
    patches = len(patch_corners(ct_volume.shape, (8, 32, 32)))
    dones = [done for done, total in recorder.progress if total == patches]
    assert len(dones) == len(recorder.progress) > 2
    assert dones == sorted(dones) and dones[-1] == patches and 0 < dones[len(dones) // 2] < patches


def test_a_2d_patch_card_shows_the_slice_on_screen_first_then_the_rest(qtbot, relay, ct_volume, tiny_model):
    """Not one run to the end: the slice on screen's patches first, then chunks of slices, as
    for whole slices, with progress counted in patches; the same maps and scores as one run."""
    side = 64 * HEAD_SPACING[1]  # 64-voxel patches: 3 × 3 per 128² slice, 54 in all
    card = ModelCard(input_mode="2d", input_shape=(64, 64, 1), patch_mm=(side, side))
    volume = Volume(np.ascontiguousarray(ct_volume.voxels[:6, :128, :128]), HEAD_SPACING, modality="CT")
    job = ExplainJob("slices", volume, tiny_model, card, "grad_cam", "conv2", 1, None, first_slice=3)
    recorder = Recorder(relay)
    wait_finished(qtbot, recorder, relay.submit(job))

    assert not recorder.failed and len(recorder.results) > 2
    assert np.flatnonzero(recorder.results[0][2]).tolist() == [3]
    final = recorder.results[-1][1]
    assert final.computed.all() and len(final.patches) == 54 and final.scores.shape == (54, 2)
    whole = explain_volume(volume, tiny_model, "grad_cam", card=card, layer="conv2", target=1)
    np.testing.assert_allclose(final.maps, whole.maps, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(final.slice_scores(), whole.slice_scores(), rtol=1e-5)
    dones = [done for done, total in recorder.progress if total == 54]
    assert len(dones) == len(recorder.progress) and dones == sorted(dones) and dones[-1] == 54


class Tripwire(BaseException):
    """Not an Exception: what a Rust decoder's panic (pyo3 PanicException) is to Python."""


@keras.saving.register_keras_serializable(package="medvis_tests")
class TripwireLayer(keras.layers.Layer):
    """Passes its input through, or raises Tripwire from inside the model's call when armed."""

    armed = False

    def call(self, inputs):
        if self.armed:
            raise Tripwire("the model's own layer gave up")
        return inputs


def tripwire_model(side: int) -> keras.Model:
    """The tiny classifier's layers (same names) with a TripwireLayer between conv1 and pool1."""
    inputs = keras.Input((side, side, 1), name="image")
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = TripwireLayer(name="tripwire")(h)
    h = keras.layers.MaxPooling2D(2, name="pool1")(h)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="dense")(h))


def test_a_base_exception_from_the_model_is_a_message_and_the_next_job_runs(qtbot, relay, job):
    model = tripwire_model(job.card.input_shape[0])
    model.get_layer("tripwire").armed = True
    recorder = Recorder(relay)
    bad = relay.submit(variant(job, model=model))
    wait_finished(qtbot, recorder, bad)
    assert recorder.failed == [(bad, "Tripwire: the model's own layer gave up")]
    assert relay.worker_thread.isRunning()

    model.get_layer("tripwire").armed = False  # the same model, traced again, now works
    good = relay.submit(variant(job, model=model))
    wait_finished(qtbot, recorder, good)
    assert len(recorder.failed) == 1
    assert recorder.results[-1][0] == good and recorder.results[-1][1].computed.all()


def test_the_window_stays_usable_after_a_base_exception(qtbot, settings, ct_nifti, tiny_model_path):
    window = make_window(qtbot, settings)
    assert window.open_volume(ct_nifti) and window.open_model(tiny_model_path)
    model = tripwire_model(window.card.input_shape[0])
    model.get_layer("tripwire").armed = True
    window.model = model  # the same layer names as the model the panel was set up for
    run_and_wait(qtbot, window, layer="conv2", target=1)
    assert window.last_error == "The explanation failed: Tripwire: the model's own layer gave up"
    assert "Tripwire" in window.panel.message.text() and not window.panel.cancel_button.isEnabled()

    model.get_layer("tripwire").armed = False
    run_and_wait(qtbot, window, layer="conv2", target=1)
    assert window.explanation.computed.all() and window.explanation.layer == "conv2"
    window.close()
    assert not window.relay.worker_thread.isRunning()
