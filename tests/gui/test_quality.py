"""The Quality dock as a user drives it: Measure, a reference mask, the sanity check, Compare
methods and the provenance of exports, in the real window with tiny real models on real CT."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from PIL import Image
from pydicom.uid import generate_uid
from PySide6.QtCore import QPoint, QTimer
from PySide6.QtWidgets import QApplication, QInputDialog

from medvis_desktop import imaging
from medvis_desktop.explain import grad_cam
from medvis_desktop.imaging.volume import Volume
from medvis_desktop.metrics import deletion, energy_inside, insertion, mu_fidelity, pointing_game
from tests.gui.conftest import INPUT_SIDE, run_and_wait
from tests.imaging.dicom_factory import SeriesSpec
from tests.imaging.seg_factory import expected, make_seg, saved, write_study

SLICE = 20
STEPS, SAMPLES = 5, 16  # small: the numbers are compared, not judged


def wait_job(qtbot, window, job_id: int | None, timeout: int = 60_000) -> None:
    assert job_id is not None, window.last_error
    with qtbot.waitSignal(
        window.relay.finished, timeout=timeout, check_params_cb=lambda done: done == job_id
    ):
        pass


def explained(qtbot, window, method: str = "grad_cam", **choices) -> None:
    """The study explained, the cursor on SLICE, the metrics' settings small."""
    window.viewer.set_slice(SLICE)
    run_and_wait(qtbot, window, method, **choices)
    window.quality.steps.setValue(STEPS)
    window.quality.samples.setValue(SAMPLES)


def mask_file(path, volume: Volume, shape: tuple[int, ...] | None = None):
    """A box across SLICE in the brain, on the study's grid unless `shape` says otherwise."""
    mask = np.zeros(shape or volume.shape, dtype=np.uint8)
    mask[SLICE - 3 : SLICE + 3, 100:160, 90:150] = 1
    imaging.save(Volume(mask, volume.spacing, volume.origin, volume.direction), path)
    return path


def test_measure_gives_the_metrics_of_the_slice_as_computed_directly(qtbot, window):
    window.resize(1400, 900)  # the first size on a screen with room for it (gui/app.py)
    explained(qtbot, window, layer="conv2", target=1)
    method_progress = window.panel.progress.text()
    wait_job(qtbot, window, window.measure())

    batch = window.card.slice_input(window.volume.voxels, [SLICE])
    maps = grad_cam(window.model, batch, "conv2", 1)
    deleted = deletion(window.model, batch, maps, 1, steps=STEPS).auc[0]
    inserted = insertion(window.model, batch, maps, 1, steps=STEPS).auc[0]
    fidelity = mu_fidelity(window.model, batch, maps, 1, samples=SAMPLES)[0]
    legend = window.quality.legend_texts()
    assert legend[0].startswith(f"Deletion · AUC {deleted:.3f}")
    assert legend[1].startswith(f"Insertion · AUC {inserted:.3f}")
    legend, area = window.quality.legend, window.quality.plot.getPlotItem().vb  # area: the curves'
    # Once laid out, the legend lies above the curves: it hides none of them.
    qtbot.waitUntil(lambda: legend.sceneBoundingRect().bottom() <= area.sceneBoundingRect().top())
    curves = [item for item in window.quality.plot.listDataItems()]
    assert [len(item.getData()[1]) for item in curves] == [STEPS + 1, STEPS + 1]
    plot = window.quality.plot  # the curves in sight in their dock, not below its first 220 px
    bottom = plot.mapFromScene(area.sceneBoundingRect().bottomLeft())
    assert plot.mapTo(window.quality_dock, bottom).y() <= window.quality_dock.height()
    assert max(item.getData()[1].max() for item in curves) < 1  # pyqtgraph would say "x0.001":
    qtbot.wait(100)  # its prefix is chosen as the range is laid out
    assert "(x" not in window.quality.plot.getAxis("left").labelString()  # plain numbers
    assert window.quality.values["mu_fidelity"].text() == f"{fidelity:.3f}"
    assert "open a reference mask" in window.quality.values["pointing_game"].text()
    assert f"slice {SLICE + 1}" in window.quality.caption.text()
    (measured,) = window.quality_record()["quality"]["measured"]
    assert measured["deletion_auc"] == pytest.approx(deleted)
    assert measured["insertion_auc"] == pytest.approx(inserted)
    assert measured["mu_fidelity"] == pytest.approx(fidelity)
    assert measured["slice"] == SLICE and measured["steps"] == STEPS and measured["samples"] == SAMPLES
    assert window.quality.progress.text().endswith("done")
    assert window.panel.progress.text() == method_progress  # the quality job's progress stays in its dock


def test_a_reference_mask_is_outlined_and_scores_the_map(qtbot, window, tmp_path):
    path = mask_file(tmp_path / "lesion.nii.gz", window.volume)
    assert window.open_reference(path), window.last_error
    reference = imaging.load(path).voxels != 0
    np.testing.assert_array_equal(window.viewer.reference, reference)
    window.viewer.set_slice(SLICE)
    assert window.viewer.views[0].outline.isVisible()
    assert "magenta outline: reference mask lesion.nii.gz" in window.legend()

    explained(qtbot, window, layer="conv2", target=1)
    wait_job(qtbot, window, window.measure())
    on_grid = window.explanation.maps[SLICE : SLICE + 1]
    hit = pointing_game(on_grid, reference[SLICE : SLICE + 1], window.volume.spacing[1:])[0]
    energy = energy_inside(on_grid, reference[SLICE : SLICE + 1])[0]
    assert window.quality.values["pointing_game"].text() == ("hit" if hit == 1 else "miss")
    assert window.quality.values["energy_inside"].text() == f"{100 * energy:.1f} %"
    (measured,) = window.quality_record()["quality"]["measured"]
    assert measured["pointing_game"] == hit and measured["energy_inside"] == pytest.approx(energy)
    assert measured["reference"]["path"] == str(path)


def test_a_mask_of_the_wrong_size_is_refused_and_the_window_stays_usable(qtbot, window, tmp_path):
    wrong = mask_file(tmp_path / "other.nii.gz", window.volume, shape=(20, 256, 256))
    assert not window.open_reference(wrong)
    assert window.last_error.startswith(
        "Could not open the reference mask other.nii.gz: other.nii.gz does not "
    )
    assert "size (z × y × x) 20 × 256 × 256 vs the study's 40 × 256 × 256" in window.last_error
    assert window.viewer.reference is None

    assert window.measure() is None  # nothing explained yet: said in the dock
    assert window.quality.message.text().startswith("Run a method first")
    explained(qtbot, window, layer="conv2", target=1)
    wait_job(qtbot, window, window.measure())
    assert window.quality.values["pointing_game"].text().startswith("open a reference mask")


def answer_segment_dialog(qtbot, choice: str | None) -> list[list[str]]:
    """Answers the segment list once it is up: `choice`, or Cancel when None. Gives back the choices seen."""
    seen: list[list[str]] = []

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, QInputDialog)
        seen.append(dialog.comboBoxItems())
        if choice is None:
            dialog.reject()
        else:
            dialog.setTextValue(choice)
            dialog.accept()

    QTimer.singleShot(100, answer)
    return seen


def test_a_dicom_seg_reference_is_read_for_the_segment_the_user_picks(qtbot, window, tmp_path, head_ct_block):
    study = write_study(tmp_path / "ct", head_ct_block[:12], SeriesSpec(), generate_uid())
    boxes = {1: [(4, slice(100, 150), slice(90, 140))], 2: [(6, slice(60, 90), slice(120, 170))]}
    seg = saved(make_seg(study, boxes), tmp_path / "lesion-seg.dcm")

    assert not window.open_reference(seg)  # the window's study is another one (NIfTI, 40 slices)
    assert window.last_error.startswith("Could not open the reference mask lesion-seg.dcm: lesion-seg.dcm")
    assert window.viewer.reference is None

    assert window.open_volume(study.folder), window.last_error
    cancelled = answer_segment_dialog(qtbot, None)
    assert window.choose_segment(seg) == (False, None)
    picked = answer_segment_dialog(qtbot, "2: Oedema")
    accepted, segment = window.choose_segment(seg)
    assert cancelled == picked == [["All segments", "1: Lesion", "2: Oedema"]]
    assert (accepted, segment) == (True, 2)
    assert window.open_reference(seg, segment=segment), window.last_error
    np.testing.assert_array_equal(window.viewer.reference, expected(study.volume.shape, 2, boxes))
    assert "magenta outline: reference mask lesion-seg.dcm, segment 2" in window.legend()
    assert window.choose_segment(mask_file(tmp_path / "mask.nii.gz", study.volume)) == (True, None)  # unasked


def test_sanity_check_shows_a_map_per_layer_and_grad_cam_gets_no_warning(qtbot, window):
    explained(qtbot, window, layer="conv2", target=1)
    wait_job(qtbot, window, window.sanity_check())
    sanity = window.quality.sanity
    assert [caption.split("\n")[0] for caption in sanity.captions] == ["original", "dense", "conv2", "conv1"]
    assert sanity.grid.count() == 4
    assert [len(item.getData()[1]) for item in sanity.plot.listDataItems()] == [4, 4]  # ρ and SSIM
    assert not sanity.is_warning() and sanity.verdict.text().startswith("Grad-CAM passes")
    (record,) = window.quality_record()["quality"]["sanity"]
    assert record["layers"] == ["dense", "conv2", "conv1"] and record["insensitive"] is False


def pooled_first(side: int) -> keras.Model:
    """The tiny classifier behind a max pooling of the input: a layer below every weight."""
    from keras import layers

    keras.utils.set_random_seed(7)
    inputs = keras.Input((side, side, 1), name="image")
    h = layers.MaxPooling2D(2, name="pool0")(inputs)
    h = layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(h)
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(inputs, layers.Dense(2, activation="softmax", name="dense")(h))


def test_a_map_blind_to_the_weights_gets_the_plain_warning(qtbot, window, tmp_path):
    """Deconvnet of pool0 projects from below every layer with weights: randomising them cannot
    change its maps (rank correlation 1 at every step), so insensitive() holds by construction."""
    path = tmp_path / "pooled.keras"
    pooled_first(INPUT_SIDE).save(path)
    assert window.open_model(path), window.last_error
    explained(qtbot, window, "deconvnet", layer="pool0")
    wait_job(qtbot, window, window.sanity_check())
    sanity = window.quality.sanity
    assert [caption.split("\n")[0] for caption in sanity.captions] == ["original", "dense", "conv2", "conv1"]
    assert all(caption.endswith("ρ 1.00") for caption in sanity.captions[1:])
    assert sanity.is_warning()
    assert sanity.verdict.text().startswith(
        "Warning: Deconvnet's maps barely change when the model's weights"
    )
    assert window.quality_record()["quality"]["sanity"][0]["insensitive"] is True


def test_cancel_stops_the_sanity_check(qtbot, window):
    window.panel.select(method="integrated_gradients", target=1)
    window.panel.params.control("steps").setValue(500)  # some tenths of a second per map
    window.viewer.set_slice(SLICE)
    window.run()
    qtbot.waitUntil(
        lambda: window.explanation is not None and window.explanation.computed[SLICE], timeout=60_000
    )
    window.cancel()
    job_id = window.sanity_check()
    qtbot.waitUntil(lambda: window.quality.progress.value() >= 1, timeout=60_000)  # the original map is in
    window.cancel_quality()
    wait_job(qtbot, window, job_id)
    assert window.quality.progress.text().endswith("stopped")
    assert window.quality.progress.value() < window.quality.progress.maximum()
    assert window.quality.sanity.captions == [] and not window.quality.cancel_button.isEnabled()
    assert window.quality_record() == {}


def test_the_provenance_of_an_export_after_measure_holds_the_metrics(qtbot, window, tmp_path):
    explained(qtbot, window, layer="conv2", target=1)
    wait_job(qtbot, window, window.measure())
    (measured,) = window.quality_record()["quality"]["measured"]
    window.export_triptych(tmp_path / "triptych.png")
    record = json.loads((tmp_path / "triptych.png.provenance.json").read_text())
    (written,) = record["parameters"]["quality"]["measured"]
    assert written["deletion_auc"] == pytest.approx(measured["deletion_auc"])
    assert written["mu_fidelity"] == pytest.approx(measured["mu_fidelity"])
    assert len(written["deletion_curve"]) == STEPS + 1 and written["pointing_game"] is None

    run_and_wait(qtbot, window, layer="conv1", target=1)  # a new result: not measured yet
    window.export_triptych(tmp_path / "again.png")
    assert "quality" not in json.loads((tmp_path / "again.png.provenance.json").read_text())["parameters"]


def test_compare_methods_side_by_side_and_exported_as_one_picture(qtbot, window, tmp_path):
    explained(qtbot, window, layer="conv2", target=1)
    assert window.compare_methods(["grad_cam"]) is None
    assert window.quality.message.text() == "Choose 2 to 4 methods, not 1."

    window.show_compare()
    assert window.quality.compare.chosen() == ["grad_cam"]
    window.quality.compare.choose(["grad_cam", "layer_cam", "gradient"])
    with qtbot.waitSignal(window.relay.finished, timeout=60_000):
        window.quality.compare.compare_button.click()
    tiles = window.quality.compare.tiles
    assert [tile.label for tile in tiles] == ["Grad-CAM", "LayerCAM", "Gradient"]
    viewport = window.quality_dock.widget().viewport()  # the maps in sight, past the check boxes
    qtbot.waitUntil(lambda: 0 <= tiles[0].canvas.mapTo(viewport, QPoint(0, 0)).y() < viewport.height() / 2)
    batch = window.card.slice_input(window.volume.voxels, [SLICE])
    deleted = deletion(window.model, batch, grad_cam(window.model, batch, "conv2", 1), 1, steps=STEPS).auc[0]
    assert tiles[0].measures.deletion_auc == pytest.approx(deleted)
    assert all(tile.measures.seconds > 0 and tile.bar is not None for tile in tiles)
    assert tiles[0].numbers.text().startswith(f"Deletion AUC {deleted:.3f} · Insertion AUC ")

    path = window.export_comparison(tmp_path / "compare.png")
    picture = np.asarray(Image.open(path).convert("RGB")).astype(int)
    height, width, _ = picture.shape
    assert width > 1.5 * height  # the three side by side (as on screen, whatever the window size)
    for third in np.array_split(picture, 3, axis=1):  # each method's map and colour bar are in colour
        assert (third.max(axis=-1) - third.min(axis=-1) > 60).sum() > 200
    record = json.loads((tmp_path / "compare.png.provenance.json").read_text())
    assert record["method"] == "compare" and record["parameters"]["slice"] == SLICE
    methods = record["parameters"]["methods"]
    assert [m["method"] for m in methods] == ["grad_cam", "layer_cam", "gradient"]
    assert methods[0]["deletion_auc"] == pytest.approx(deleted) and methods[2]["layer"] is None


def test_a_3d_model_is_measured_and_compared_on_the_patch_behind_its_score(qtbot, window, tmp_path):
    from keras import layers

    from medvis_desktop.models.card import Intensity, ModelCard, write_card

    patch = (8, 128, 128)
    keras.utils.set_random_seed(5)
    inputs = keras.Input((*patch, 1))
    h = layers.Conv3D(2, 3, padding="same", activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(layers.GlobalAveragePooling3D()(h)))
    path = tmp_path / "tiny3d.keras"
    model.save(path)
    card = ModelCard(
        input_mode="3d", input_shape=(*patch, 1), resize="crop_or_pad", intensity=Intensity("window", 40, 80),
        class_names=["normal", "lesion"],
    )  # fmt: skip
    write_card(card, path)
    assert window.open_model(path), window.last_error
    explained(qtbot, window, layer="conv", target=1)
    explanation = window.explanation
    covering = [
        (score, corner)
        for corner, score in zip(explanation.patches, explanation.scores[:, 1], strict=True)
        if corner[0] <= SLICE < corner[0] + patch[0]
    ]
    best = max(covering)[1]
    batch = card.patch_input(window.volume.voxels, best)
    deleted = deletion(window.model, batch, grad_cam(window.model, batch, "conv", 1), 1, steps=STEPS).auc[0]

    wait_job(qtbot, window, window.measure())
    assert window.quality.legend_texts()[0].startswith(f"Deletion · AUC {deleted:.3f}")
    assert f"slice {SLICE + 1} (patch at {' '.join(map(str, best))})" in window.quality.caption.text()

    window.show_compare()
    window.quality.compare.choose(["grad_cam", "gradient"])
    with qtbot.waitSignal(window.relay.finished, timeout=60_000):
        window.quality.compare.compare_button.click()
    tiles = window.quality.compare.tiles
    assert tiles[0].measures.deletion_auc == pytest.approx(deleted)
    inside = np.zeros(window.volume.shape[1:], dtype=bool)
    inside[best[1] : best[1] + patch[1], best[2] : best[2] + patch[2]] = True
    for tile in tiles:  # the patch's plane on its place in the slice, nothing outside it
        shown = tile.overlay.image
        assert np.isfinite(shown[inside]).all() and np.isnan(shown[~inside]).all()
