"""`medvis layers` and `medvis explain` as a user runs them, on the real head CT."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from medvis_desktop import imaging
from medvis_desktop.export import sha256_of
from medvis_desktop.models.card import Intensity, ModelCard, write_card
from medvis_desktop.models.runtime import start_tensorflow
from tests.conftest import tiny_classifier
from tests.imaging.dicom_factory import SeriesSpec, write_series
from tests.models.conftest import fixture_path
from tests.test_cli import run


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    model = tiny_classifier(128)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    card = ModelCard(
        input_mode="2d",
        input_shape=(128, 128, 1),
        intensity=Intensity("window", 40, 80),
        class_names=["normal", "lesion"],
    )
    write_card(card, path)
    return path


@pytest.fixture(scope="module")
def series(tmp_path_factory, head_ct_block):
    folder = tmp_path_factory.mktemp("ct")
    write_series(head_ct_block[:16], folder, SeriesSpec(patient_name="Doe^Jane"))
    return folder


def explain_run(model_path, series, out, method: str, *options: str):
    return run(
        "explain",
        "--model",
        str(model_path),
        "--input",
        str(series),
        "--method",
        method,
        "--out",
        str(out),
        *options,
    )


def test_explain_writes_aligned_exports_with_provenance(tmp_path, model_path, series):
    out = tmp_path / "out"
    result = explain_run(model_path, series, out, "grad_cam", "--slices", "4:8")
    assert result.returncode == 0, result.stderr
    assert "4/4" in result.stderr  # the progress bar finished
    written = sorted(p.name for p in out.iterdir())
    assert "grad_cam_conv2.nii.gz" in written and "grad_cam_conv2.nii.gz.provenance.json" in written
    assert any(name.endswith(".png") for name in written)
    heat = sitk.ReadImage(str(out / "grad_cam_conv2.nii.gz"))
    volume = imaging.load(series)
    np.testing.assert_allclose(heat.GetOrigin(), volume.origin, atol=1e-4)
    np.testing.assert_allclose(heat.GetSpacing(), volume.spacing[::-1], atol=1e-5)
    array = sitk.GetArrayFromImage(heat)
    assert array[4:8].max() > 0 and not array[:4].any() and not array[8:].any()
    with (out / "grad_cam_conv2_scores.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["slice", "normal", "lesion"] and [r[0] for r in rows[1:]] == ["4", "5", "6", "7"]
    record = json.loads((out / "grad_cam_conv2.nii.gz.provenance.json").read_text())
    assert record["model_sha256"] == sha256_of(model_path)
    assert record["input_sha256"] == sha256_of(series)
    assert record["layer"] == "conv2" and record["target"] == 1
    assert record["parameters"]["card"]["class_names"] == ["normal", "lesion"]
    assert record["parameters"]["device"] == str(start_tensorflow())  # e.g. "CPU: 2 cores"
    for path in out.iterdir():
        assert b"Doe^Jane" not in path.read_bytes()


def test_activation_maps_also_write_the_grid(tmp_path, model_path, series):
    result = explain_run(
        model_path,
        series,
        tmp_path,
        "activation_maps",
        "--layer",
        "conv1",
        "--filter",
        "2",
        "--slices",
        "0:3",
    )
    assert result.returncode == 0, result.stderr
    assert any("_grid_slice" in p.name and p.suffix == ".png" for p in tmp_path.iterdir())


def test_activation_maps_of_a_3d_model_write_the_grid_of_its_patch(tmp_path, series):
    import keras

    inputs = keras.Input((8, 32, 32, 1))
    x = keras.layers.Conv3D(3, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling3D()(x)
    model_path = tmp_path / "tiny3d.keras"
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x)).save(model_path)
    write_card(ModelCard(input_mode="3d", input_shape=(8, 32, 32, 1), resize="crop_or_pad"), model_path)
    out = tmp_path / "out"
    result = explain_run(model_path, series, out, "activation_maps", "--layer", "conv")
    assert result.returncode == 0, result.stderr
    assert any("_grid_slice" in p.name and p.suffix == ".png" for p in out.iterdir())


def test_explain_errors_are_one_line(tmp_path, model_path, series):
    result = explain_run(model_path, series, tmp_path, "grad_cam", "--slices", "10:99")
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("medvis: --slices 10:99 selects no slice of the volume's 0:")
    bad_layer = explain_run(model_path, series, tmp_path, "grad_cam", "--layer", "nope")
    assert bad_layer.returncode == 1 and "No layer 'nope'" in bad_layer.stderr
    assert "Traceback" not in result.stderr + bad_layer.stderr


def test_layers_shows_nested_paths_of_a_keras2_model():
    result = run("layers", str(fixture_path("nested_2d")))
    assert result.returncode == 0, result.stderr
    assert "Default Grad-CAM layer:" in result.stdout
    assert any("/" in line.split()[0] for line in result.stdout.splitlines()[3:] if line.strip())


def test_layers_refuses_python_code_without_unsafe():
    result = run("layers", str(fixture_path("with_lambda")))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--unsafe" in result.stderr and "Traceback" not in result.stderr


def test_a_method_s_parameters_are_given_with_param_and_recorded(tmp_path, model_path, series):
    out = tmp_path / "out"
    result = explain_run(
        model_path,
        series,
        out,
        "integrated_gradients",
        "--param",
        "steps=8",
        "--param",
        "rule=riemann_trapezoid",
        "--slices",
        "4:6",
    )
    assert result.returncode == 0, result.stderr
    (record_path,) = out.glob("integrated_gradients_*.nii.gz.provenance.json")
    parameters = json.loads(record_path.read_text())["parameters"]
    assert parameters["steps"] == 8 and parameters["rule"] == "riemann_trapezoid"
    assert parameters["baseline"] == 0.0  # the declared default, recorded too
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(record_path).removesuffix(".provenance.json")))
    assert (array[4:6] < 0).any() and (array[4:6] > 0).any()  # an attribution keeps its sign


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("steps=0", "Parameter 'steps' must be at least 1, not 0."),
        ("steps=many", "Parameter 'steps' takes int values, not 'many'."),
        ("window=8", "integrated_gradients has no parameter 'window'; its parameters: baseline, steps"),
        ("steps", "--param takes KEY=VALUE, not 'steps'"),
    ],
)
def test_a_bad_parameter_is_one_line(tmp_path, model_path, series, param, message):
    result = explain_run(model_path, series, tmp_path, "integrated_gradients", "--param", param)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]


def test_methods_lists_every_method_with_its_parameters():
    result = run("methods")
    assert result.returncode == 0, result.stderr
    assert "occlusion: Occlusion (attribution; takes target)" in result.stdout
    assert "--param rule=… one of gauss_legendre, riemann_trapezoid; default gauss_legendre" in result.stdout
    assert "eigen_cam: Eigen-CAM (cam; takes layer)" in result.stdout
