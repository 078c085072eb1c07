"""`medvis evaluate` as a user runs it, on the real head CT written as DICOM, with a tiny model."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest
from pydicom.uid import generate_uid

from medvis_desktop import imaging
from medvis_desktop.export import sha256_of
from medvis_desktop.imaging.volume import Volume
from medvis_desktop.models.card import Intensity, ModelCard, read_card, write_card
from tests.conftest import tiny_classifier
from tests.export.test_report import PALETTE, assert_drawn, screenshot, self_contained
from tests.imaging.dicom_factory import SeriesSpec
from tests.imaging.seg_factory import Boxes, Study, expected, make_seg, saved, write_study
from tests.test_cli import run

METHODS = "grad_cam,layer_cam,integrated_gradients"
SLICES = [4, 5, 6]
OPTIONS = ("--slices", "4:7", "--steps", "5", "--samples", "16", "--param", "integrated_gradients:steps=8")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_classifier(128).save(path)
    card = ModelCard(
        input_mode="2d",
        input_shape=(128, 128, 1),
        intensity=Intensity("window", 40, 80),
        class_names=["normal", "lesion"],
    )
    write_card(card, path)
    return path


@pytest.fixture(scope="module")
def ct_study(tmp_path_factory, head_ct_block) -> Study:
    spec = SeriesSpec(patient_name="Doe^Jane")
    return write_study(tmp_path_factory.mktemp("ct"), head_ct_block[:16], spec, generate_uid())


@pytest.fixture(scope="module")
def series(ct_study):
    return ct_study.folder


# mask_file's box as segment 1 and another box, on slice 6, as segment 2.
SEG_BOXES: Boxes = {
    1: [(4, slice(96, 160), slice(96, 160)), (5, slice(96, 160), slice(96, 160))],
    2: [(6, slice(30, 60), slice(40, 90))],
}


@pytest.fixture(scope="module")
def seg_reference(tmp_path_factory, ct_study):
    return saved(make_seg(ct_study, SEG_BOXES), tmp_path_factory.mktemp("seg") / "lesion-seg.dcm")


def mask_file(path, series, *, shape=None, spacing=None, origin=None):
    """A box on slices 4 and 5 (none on 6), on the study's grid unless told otherwise."""
    study = imaging.load(series)
    mask = np.zeros(shape or study.shape, dtype=np.uint8)
    mask[4:6, 96:160, 96:160] = 1
    grid = Volume(mask, spacing or study.spacing, origin or study.origin, study.direction)
    imaging.save(grid, path)
    return path


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, model_path, series):
    folder = tmp_path_factory.mktemp("evaluated")
    mask = mask_file(folder / "lesion.nii.gz", series)
    out = folder / "out"
    result = evaluate_run(model_path, series, out, "--reference", str(mask), *OPTIONS)
    assert result.returncode == 0, result.stderr
    return out, result, mask


def evaluate_run(model_path, series, out, *options: str, methods: str = METHODS):
    command = ["evaluate", "--model", str(model_path), "--input", str(series), "--methods", methods]
    return run(*command, "--out", str(out), *options)


def table(out):
    with (out / "evaluation.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_a_row_per_slice_and_method_with_finite_numbers(evaluated):
    out, result, _ = evaluated
    rows = table(out)
    assert [(int(r["slice"]), r["method"]) for r in rows] == [
        (z, m) for z in SLICES for m in METHODS.split(",")
    ]
    for row in rows:
        for column in ("score", "deletion_auc", "insertion_auc", "mu_fidelity", "seconds"):
            assert math.isfinite(float(row[column])), (column, row)
        assert 0 <= float(row["deletion_auc"]) <= 1 and 0 <= float(row["insertion_auc"]) <= 1
        if row["slice"] == "6":  # no reference on this slice: not scored
            assert row["pointing_game"] == row["energy_inside"] == ""
        else:
            assert row["pointing_game"] in ("0.0", "1.0") and 0 <= float(row["energy_inside"]) <= 1
    written = {line.rsplit("/", 1)[-1] for line in result.stdout.splitlines()}
    expected = {
        "evaluation.csv",
        "cascade.csv",
        "deletion.png",
        "insertion.png",
        "cascade.png",
        "report.html",
    }
    assert written == expected | {f"{name}.provenance.json" for name in expected}
    assert "100%" in result.stderr and " left" in result.stderr and "in all" in result.stderr


def test_the_numbers_are_those_of_the_metrics_called_directly(evaluated, model_path, series):
    from medvis_desktop.explain import grad_cam, integrated_gradients
    from medvis_desktop.explain.runner import explain_volume
    from medvis_desktop.metrics import deletion, energy_inside, insertion, mu_fidelity, pointing_game
    from medvis_desktop.models import load_model

    out, _, mask_path = evaluated
    row = {(r["slice"], r["method"]): r for r in table(out)}
    volume, model, card = imaging.load(series), load_model(model_path), read_card(model_path)
    reference = imaging.load(mask_path).voxels != 0
    batch = card.slice_input(volume.voxels, [5])
    maps = grad_cam(model, batch, "conv2", 1)
    measured = row["5", "grad_cam"]
    assert float(measured["deletion_auc"]) == pytest.approx(deletion(model, batch, maps, 1, steps=5).auc[0])
    assert float(measured["insertion_auc"]) == pytest.approx(insertion(model, batch, maps, 1, steps=5).auc[0])
    assert float(measured["mu_fidelity"]) == pytest.approx(mu_fidelity(model, batch, maps, 1, samples=16)[0])
    study = explain_volume(volume, model, "grad_cam", card=card, slices=SLICES, batch_size=1)
    assert float(measured["score"]) == pytest.approx(study.scores[5, 1])
    on_grid = study.maps[5:6]
    assert float(measured["pointing_game"]) == pointing_game(on_grid, reference[5:6], volume.spacing[1:])[0]
    assert float(measured["energy_inside"]) == pytest.approx(energy_inside(on_grid, reference[5:6])[0])
    attribution = integrated_gradients(model, batch, 1, steps=8).sum(axis=-1)  # one value per voxel
    expected = deletion(model, batch, attribution, 1, steps=5).auc[0]
    assert float(row["5", "integrated_gradients"]["deletion_auc"]) == pytest.approx(expected)


def test_the_report_is_self_contained_opens_in_chromium_and_keeps_the_provenance(
    evaluated, model_path, series, tmp_path
):
    out, _, mask = evaluated
    page = (out / "report.html").read_text(encoding="utf-8")
    self_contained(page)
    block = re.search(r'<script type="application/json" id="provenance">(.*?)</script>', page, re.S)
    record = json.loads(block.group(1))
    assert record == json.loads((out / "report.html.provenance.json").read_text())
    assert record["model_sha256"] == sha256_of(model_path) and record["input_sha256"] == sha256_of(series)
    assert record["parameters"]["reference"]["sha256"] == sha256_of(mask)
    assert record["parameters"]["slices"] == SLICES and record["parameters"]["steps"] == 5
    assert record["parameters"]["methods"]["integrated_gradients"]["steps"] == 8
    image = screenshot(out / "report.html", tmp_path)
    assert_drawn(image, list(PALETTE[:3]))


def test_no_patient_identity_in_any_output(evaluated):
    out, _, _ = evaluated
    for path in out.iterdir():
        data = path.read_bytes()
        assert b"Doe^Jane" not in data and b"PID-0042" not in data, path.name


@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        ({"shape": (12, 256, 256)}, "size (z × y × x) 12 × 256 × 256 vs the study's 16 × 256 × 256"),
        ({"spacing": (1.5, 1.0, 1.0)}, "spacing 1.5 × 1 × 1 mm vs the study's 1.5 × 0.957031 × 0.957031 mm"),
        (
            {"origin": (-120.0, -130.0, -70.0)},
            "origin (-120, -130, -70) mm vs the study's (-120, -130, -80) mm",
        ),
    ],
    ids=["size", "spacing", "origin"],
)
def test_a_mask_off_the_study_s_grid_is_refused_in_one_line(tmp_path, model_path, series, geometry, message):
    mask = mask_file(tmp_path / "mask.nii.gz", series, **geometry)
    result = evaluate_run(model_path, series, tmp_path / "out", "--reference", str(mask), "--slices", "4:6")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("medvis: mask.nii.gz does not lie on the study's grid: ") and message in line
    assert not (tmp_path / "out").exists()


def test_a_mask_on_the_same_grid_with_flipped_or_reordered_axes_is_resampled_exactly(series):
    from medvis_desktop.evaluate import EvaluateError, reference_on_grid

    study = imaging.load(series)
    mask = np.zeros(study.shape, dtype=np.uint8)
    mask[3:9, 20:90, 140:200] = 1
    far_x = study.index_to_patient(np.array([0.0, 0.0, study.shape[2] - 1]))
    flipped = Volume(mask[:, :, ::-1].copy(), study.spacing, tuple(far_x), study.direction * [1, 1, -1])
    assert (reference_on_grid(flipped, study) == mask.astype(bool)).all()
    spacing = (study.spacing[1], study.spacing[0], study.spacing[2])
    swapped = Volume(mask.transpose(1, 0, 2).copy(), spacing, study.origin, study.direction[:, [1, 0, 2]])
    assert (reference_on_grid(swapped, study) == mask.astype(bool)).all()
    turn = np.array([[np.cos(0.1), -np.sin(0.1), 0], [np.sin(0.1), np.cos(0.1), 0], [0, 0, 1]])
    rotated = Volume(mask, study.spacing, study.origin, turn @ study.direction)
    with pytest.raises(EvaluateError, match=r"axes not parallel to the study's \(a rotated grid\)"):
        reference_on_grid(rotated, study)


def test_a_dicom_seg_segment_scores_exactly_as_the_same_mask_in_nifti(
    evaluated, tmp_path, model_path, series, seg_reference
):
    out = tmp_path / "out"
    reference = ("--reference", str(seg_reference), "--segment", "1")
    result = evaluate_run(model_path, series, out, *reference, *OPTIONS)
    assert result.returncode == 0, result.stderr
    by_nifti = {(row["slice"], row["method"]): row for row in table(evaluated[0])}
    rows = table(out)
    assert len(rows) == len(by_nifti) == len(SLICES) * 3
    for row in rows:
        nifti = by_nifti[row["slice"], row["method"]]
        assert row["pointing_game"] == nifti["pointing_game"], row
        if row["slice"] == "6":  # segment 2 lies there, not segment 1: not scored, as with the NIfTI
            assert row["energy_inside"] == nifti["energy_inside"] == ""
        else:
            assert float(row["energy_inside"]) == pytest.approx(float(nifti["energy_inside"]), rel=1e-6)
    record = json.loads((out / "report.html.provenance.json").read_text())
    reference = {"name": "lesion-seg.dcm", "sha256": sha256_of(seg_reference), "segment": 1}
    assert record["parameters"]["reference"] == reference
    assert "lesion-seg.dcm, segment 1" in (out / "report.html").read_text(encoding="utf-8")


def test_a_seg_reference_is_the_segment_asked_for_or_all_of_them(series, seg_reference):
    from medvis_desktop.evaluate import load_reference

    study = imaging.load(series)
    for segment in (1, 2, None):
        mask = load_reference(seg_reference, study, segment=segment)
        np.testing.assert_array_equal(mask, expected(study.shape, segment, SEG_BOXES))


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("seg", "lesion-seg.dcm has no segment 3; available: 1 (Lesion), 2 (Oedema)"),
        ("nifti", "lesion.nii.gz is not a DICOM SEG: only a SEG has segments to choose from"),
        (None, "--segment chooses a segment of the --reference DICOM SEG: give --reference"),
    ],
)
def test_a_segment_that_cannot_be_had_is_refused_in_one_line(
    tmp_path, model_path, series, seg_reference, capsys, reference, message
):
    from medvis_desktop.cli import main

    paths = {"seg": seg_reference, "nifti": mask_file(tmp_path / "lesion.nii.gz", series), None: None}
    given = () if reference is None else ("--reference", str(paths[reference]))
    command = ["evaluate", "--model", str(model_path), "--input", str(series), "--methods", "grad_cam"]
    assert main([*command, "--out", str(tmp_path / "out"), *given, "--segment", "3"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"medvis: {message}"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("methods", "options", "message"),
    [
        ("grad_cam,nope", (), "Unknown method 'nope'; available: activation_maps, grad_cam,"),
        ("grad_cam", ("--steps", "0"), "steps must be a whole number of at least 1"),
    ],
    ids=["unknown", "zero-steps"],
)
def test_bad_requests_are_one_line(tmp_path, model_path, series, methods, options, message):
    result = evaluate_run(model_path, series, tmp_path / "out", "--slices", "4:6", *options, methods=methods)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("medvis: ") and message in line


@pytest.mark.parametrize(
    ("methods", "options", "message"),
    [
        (
            "grad_cam,activation_maps",
            (),
            "activation_maps gives a layer's feature maps, not a map of evidence",
        ),
        ("grad_cam,grad_cam", (), "--methods names a method twice: grad_cam,grad_cam"),
        ("grad_cam", ("--param", "steps=8"), "--param takes METHOD:KEY=VALUE for a method in --methods"),
        ("grad_cam", ("--baseline", "air"), "--baseline takes a number (model-input units) or 'blur'"),
        ("grad_cam", ("--slices", "10:99"), "--slices 10:99 selects no slice of the volume's 0:16: give A:B"),
        ("grad_cam", ("--slices", "9:4"), "--slices 9:4 selects no slice of the volume's 0:16: give A:B"),
    ],
    ids=["no-map", "twice", "param", "baseline", "slices-beyond", "slices-empty"],
)
def test_requests_refused_before_any_work(tmp_path, model_path, series, capsys, methods, options, message):
    """The same command in this process (TensorFlow is loaded already): refused before computing."""
    from medvis_desktop.cli import main

    command = ["evaluate", "--model", str(model_path), "--input", str(series), "--methods", methods]
    assert main([*command, "--out", str(tmp_path / "out"), *options]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("medvis: ") and message in line
    assert not (tmp_path / "out").exists()


def test_a_map_on_neither_grid_is_refused_and_one_on_the_study_s_is_brought_to_the_model_s():
    from medvis_desktop.evaluate import EvaluateError, model_grid_maps

    card = ModelCard(input_mode="2d", input_shape=(64, 64, 1))
    assert model_grid_maps(np.ones((2, 256, 256)), card, (2, 64, 64, 1), (256, 256)).shape == (2, 64, 64)
    assert model_grid_maps(np.ones((2, 64, 64, 1)), card, (2, 64, 64, 1), (256, 256)).shape == (2, 64, 64)
    with pytest.raises(EvaluateError, match=r"shape \(2, 32, 32\) matches neither the model's input grid"):
        model_grid_maps(np.ones((2, 32, 32)), card, (2, 64, 64, 1), (256, 256))
