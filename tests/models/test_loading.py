"""models.load_model against real Keras 2 files and their Keras 2 predictions, safe mode, errors.

The .h5 fixtures and the outputs they are checked against were made by Keras 2 itself
(tools/make_legacy_fixtures.py); nothing here imports tf_keras.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from medvis_desktop import models
from medvis_desktop.errors import LoadError
from medvis_desktop.models import legacy_h5
from tests.models.conftest import (
    assert_close,
    fixture_path,
    h5_config,
    predict,
    reference,
    rewrite_config,
    small_keras3_model,
)

LEGACY = ["flat_functional_2d", "sequential_2d", "nested_2d", "bilateral_shared", "nested_3d"]
ATOL = 1e-5
REPO = Path(__file__).resolve().parents[2]


def run_python(script: str, *args: str) -> subprocess.CompletedProcess:
    """A fresh interpreter: nothing registered or imported by this test process."""
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )


# --- Keras 2 era .h5 ----------------------------------------------------------------------


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_h5_predicts_what_keras2_predicted(name):
    ref = reference(name)
    model = models.load_model(fixture_path(name))
    assert_close(predict(model, ref.inputs), ref.outputs, atol=ATOL)


@pytest.mark.parametrize("name", LEGACY)
def test_conversion_alone_predicts_what_keras2_predicted(name):
    """The fallback path, also on the files Keras 3's own loader reads: same result either way."""
    path = fixture_path(name)
    ref = reference(name)
    converted = legacy_h5.load_legacy_h5(path, h5_config(path), {})
    assert_close(predict(converted, ref.inputs), ref.outputs, atol=ATOL)
    loaded = models.load_model(path)
    assert_close(predict(converted, ref.inputs), predict(loaded, ref.inputs), atol=1e-6)
    assert [layer.name for layer in converted.layers] == [layer.name for layer in loaded.layers]


def test_nested_models_keep_their_nesting():
    model = models.load_model(fixture_path("nested_2d"))
    assert [layer.name for layer in model.layers] == ["image", "features", "res_block", "gap", "predictions"]
    features, block = model.get_layer("features"), model.get_layer("res_block")
    assert isinstance(features, keras.Sequential)
    assert [layer.name for layer in features.layers] == ["feat_conv", "feat_bn", "feat_relu", "feat_pool"]
    assert isinstance(block, keras.Model) and not isinstance(block, keras.Sequential)
    assert isinstance(block.get_layer("res_block_add"), keras.layers.Add)
    with h5py.File(fixture_path("nested_2d"), "r") as h5:
        saved = h5["model_weights/res_block/res_block_b_bn/gamma:0"][()]
    np.testing.assert_array_equal(block.get_layer("res_block_b_bn").gamma.numpy(), saved)


def test_nested_3d_keeps_two_levels_of_nesting():
    model = models.load_model(fixture_path("nested_3d"))
    block = model.get_layer("block3d")
    inner = block.get_layer("inner")
    assert isinstance(inner, keras.Sequential)
    assert isinstance(inner.get_layer("inner_conv"), keras.layers.Conv3D)
    assert isinstance(model.get_layer("head"), keras.Sequential)


def test_shared_sub_model_is_one_layer_called_twice():
    model = models.load_model(fixture_path("bilateral_shared"))
    assert [layer.name for layer in model.layers].count("encoder") == 1
    ref = reference("bilateral_shared")
    assert not np.allclose(ref.outputs[0], ref.outputs[1], atol=1e-3)
    # Swapping the two views swaps the two scores: each output is the right call of the head.
    assert_close(predict(model, ref.inputs[::-1]), ref.outputs[::-1], atol=ATOL)


def test_a_misplaced_weight_would_be_caught():
    """The reference check is sharp: swapping one batch norm's gamma and beta breaks it."""
    ref = reference("nested_2d")
    model = models.load_model(fixture_path("nested_2d"))
    bn = model.get_layer("res_block").get_layer("res_block_b_bn")
    gamma, beta = bn.gamma.numpy(), bn.beta.numpy()
    bn.gamma.assign(beta)
    bn.beta.assign(gamma)
    assert np.abs(predict(model, ref.inputs)[0] - ref.outputs[0]).max() > 100 * ATOL


def test_weights_by_name_whatever_order_the_file_lists_them(tmp_path):
    """Parallel branches have same-shaped kernels: matching by position alone could swap them silently."""
    path = tmp_path / "reordered.h5"
    shutil.copy(fixture_path("nested_2d"), path)
    with h5py.File(path, "r+") as h5:
        group = h5["model_weights/res_block"]
        group.attrs["weight_names"] = group.attrs["weight_names"][::-1]
    ref = reference("nested_2d")
    assert_close(predict(models.load_model(path), ref.inputs), ref.outputs, atol=ATOL)


def test_weights_by_position_when_names_differ(tmp_path):
    """A layer renamed after it was built keeps its variables' old names: Keras 2 loads by position."""
    path = tmp_path / "renamed.h5"
    shutil.copy(fixture_path("nested_2d"), path)
    with h5py.File(path, "r+") as h5:
        group = h5["model_weights/features"]
        group.move("feat_conv", "old_conv")
        names = [name.decode() if isinstance(name, bytes) else name for name in group.attrs["weight_names"]]
        group.attrs["weight_names"] = [name.replace("feat_conv/", "old_conv/") for name in names]
    ref = reference("nested_2d")
    assert_close(predict(models.load_model(path), ref.inputs), ref.outputs, atol=ATOL)


def test_early_keras2_config_forms(tmp_path):
    """class_name 'Model'; a nested Sequential as a bare layer list, input shape on its first layer."""
    config = h5_config(fixture_path("nested_2d"))
    config["class_name"] = "Model"
    for entry in config["config"]["layers"]:
        if entry["name"] == "features":
            entry["config"] = entry["config"]["layers"][1:]  # drop the InputLayer, keep the list only
            assert "batch_input_shape" in entry["config"][0]["config"]
        if entry["name"] == "res_block":
            entry["class_name"] = "Model"
    path = rewrite_config(fixture_path("nested_2d"), tmp_path / "early.h5", config)
    ref = reference("nested_2d")
    model = models.load_model(path)
    assert_close(predict(model, ref.inputs), ref.outputs, atol=ATOL)
    assert model.get_layer("features").layers[0].name == "feat_conv"


def test_keras2_arguments_keras3_dropped_are_removed(tmp_path, caplog):
    """Keras 2 wrote arguments Keras 3 no longer has (e.g. DepthwiseConv2D groups, GRU time_major)."""
    config = h5_config(fixture_path("nested_2d"))
    res_block = next(entry for entry in config["config"]["layers"] if entry["name"] == "res_block")
    conv = next(entry for entry in res_block["config"]["layers"] if entry["name"] == "res_block_b_conv")
    conv["config"]["time_major"] = False
    conv["config"]["dtype"] = {"class_name": "Policy", "config": {"name": "float32"}}
    path = rewrite_config(fixture_path("nested_2d"), tmp_path / "extra.h5", config)
    ref = reference("nested_2d")
    assert_close(predict(models.load_model(path), ref.inputs), ref.outputs, atol=ATOL)
    assert "time_major" in caplog.text


# --- .keras ---------------------------------------------------------------------------------


def test_keras_round_trip(tmp_path):
    model = small_keras3_model()
    path = tmp_path / "model.keras"
    model.save(path)
    batch = np.random.default_rng(0).normal(size=(2, 16, 16, 1)).astype(np.float32)
    loaded = models.load_model(path)
    assert_close(predict(loaded, [batch]), predict(model, [batch]), atol=1e-6)
    assert isinstance(loaded.get_layer("stem"), keras.Sequential)
    assert loaded.get_layer("block").get_layer("block_conv").kernel.shape == (3, 3, 4, 4)


def test_keras_suffix_does_not_matter(tmp_path):
    """An .h5 renamed .keras (or the reverse) is read by content."""
    path = tmp_path / "really_h5.keras"
    shutil.copy(fixture_path("nested_2d"), path)
    ref = reference("nested_2d")
    assert_close(predict(models.load_model(path), ref.inputs), ref.outputs, atol=ATOL)


# --- Python code in the model: refused unless unsafe --------------------------------------


def test_h5_lambda_refused_before_anything_runs(lambda_marker, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("Keras was asked to deserialize a model that must be refused first")

    monkeypatch.setattr(keras.saving, "load_model", never)
    monkeypatch.setattr(legacy_h5, "load_legacy_h5", never)
    with pytest.raises(models.UnsafeModelError) as error:
        models.load_model(fixture_path("with_lambda"))
    message = str(error.value)
    assert "on this workstation: Lambda layer 'marker_lambda' (Python code)" in message
    assert "would run code or read files" in message and "unsafe=True" in message
    assert not lambda_marker.exists()


def test_h5_lambda_loads_when_trusted(lambda_marker):
    ref = reference("with_lambda")
    model = models.load_model(fixture_path("with_lambda"), unsafe=True)
    assert_close(predict(model, ref.inputs), ref.outputs, atol=ATOL)
    assert lambda_marker.exists(), "the marker mechanism works, so its absence above means something"


def marker_lambda(marker_env: str):
    return lambda t: (open(__import__("os").environ[marker_env], "a").close(), t)[1]


def test_keras_lambda_refused_then_trusted(tmp_path, lambda_marker):
    inputs = keras.Input((4,))
    hidden = keras.layers.Lambda(marker_lambda("MEDVIS_LAMBDA_MARKER"), name="marker_lambda")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(hidden))
    path = tmp_path / "lambda.keras"
    model.save(path)
    lambda_marker.unlink()  # building the model ran the lambda once
    with pytest.raises(models.UnsafeModelError, match=r"Lambda layer 'marker_lambda'"):
        models.load_model(path)
    assert not lambda_marker.exists()
    batch = np.ones((1, 4), np.float32)
    loaded = models.load_model(path, unsafe=True)
    assert_close(predict(loaded, [batch]), predict(model, [batch]), atol=1e-6)
    assert lambda_marker.exists()


def test_keras_lambda_activation_refused(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation=lambda t: t * 2, name="scores")(inputs))
    path = tmp_path / "activation.keras"
    with pytest.warns(UserWarning, match="lambda"):
        model.save(path)
    with pytest.raises(models.UnsafeModelError, match=r"a lambda function in layer 'scores'"):
        models.load_model(path)


# --- custom layers from the user's file ------------------------------------------------------

USER_LAYERS = """
import keras


@keras.saving.register_keras_serializable(package="medvis_test")
class ScaleShift(keras.layers.Layer):
    def __init__(self, scale=2.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def build(self, input_shape):
        self.shift = self.add_weight(shape=(input_shape[-1],), initializer="random_normal", name="shift")

    def call(self, x):
        return x * self.scale + self.shift

    def get_config(self):
        return super().get_config() | {"scale": self.scale}
"""

LOAD_IN_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from medvis_desktop import models

    path, layers_file, reference = sys.argv[1:4]
    result = {}
    try:
        models.load_model(path)
        result["without_file"] = "loaded"
    except models.MissingCustomObjectError as exc:
        result["without_file"] = str(exc)
    model = models.load_model(path, custom_objects_file=layers_file)
    data = np.load(reference)
    result["max_diff"] = float(np.abs(np.asarray(model(data["inputs"])) - data["outputs"]).max())
    print(json.dumps(result))
    """
)


def test_custom_layer_from_user_file(tmp_path):
    layers_file = tmp_path / "user_layers.py"
    layers_file.write_text(USER_LAYERS)
    scale_shift = models.load_custom_objects(layers_file)["ScaleShift"]
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 1))
    x = scale_shift(scale=3.0, name="calibrate")(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x)))
    path = tmp_path / "custom.keras"
    model.save(path)
    batch = np.random.default_rng(1).normal(size=(2, 8, 8, 1)).astype(np.float32)
    np.savez(tmp_path / "reference.npz", inputs=batch, outputs=predict(model, [batch])[0])

    run = run_python(LOAD_IN_FRESH_PROCESS, str(path), str(layers_file), str(tmp_path / "reference.npz"))
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert "layer 'calibrate' is of class 'ScaleShift'" in result["without_file"]
    assert "custom_objects_file" in result["without_file"]
    assert result["max_diff"] < 1e-6


def test_unknown_layer_class_in_h5_is_named(tmp_path):
    config = h5_config(fixture_path("flat_functional_2d"))
    config["config"]["layers"][1]["class_name"] = "GroupNormConv2D"
    path = rewrite_config(fixture_path("flat_functional_2d"), tmp_path / "custom.h5", config)
    with pytest.raises(models.MissingCustomObjectError) as error:
        models.load_model(path)
    assert "layer 'block1_conv' is of class 'GroupNormConv2D'" in str(error.value)
    assert "custom_objects_file" in str(error.value)


def test_keras2_tf_operation_layer_is_explained(tmp_path):
    config = h5_config(fixture_path("flat_functional_2d"))
    config["config"]["layers"][3]["class_name"] = "TFOpLambda"
    path = rewrite_config(fixture_path("flat_functional_2d"), tmp_path / "tfop.h5", config)
    with pytest.raises(LoadError, match=r"TensorFlow operation recorded by Keras 2 \(TFOpLambda\)"):
        models.load_model(path)


def test_custom_objects_file_that_fails(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('no GPU here')\n")
    with pytest.raises(LoadError, match=r"broken\.py failed to import: RuntimeError: no GPU here"):
        models.load_model(fixture_path("flat_functional_2d"), custom_objects_file=broken)
    with pytest.raises(LoadError, match="no such file"):
        models.load_model(fixture_path("flat_functional_2d"), custom_objects_file=tmp_path / "nope.py")


# --- files that are not (whole) models --------------------------------------------------------


def test_missing_file():
    with pytest.raises(LoadError, match="no such file or folder"):
        models.load_model("/nonexistent/model.h5")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "an empty file"), (b"patient,label\n1,0\n", "neither a .keras archive nor an HDF5")],
)
def test_not_a_model(tmp_path, content, message):
    path = tmp_path / "model.h5"
    path.write_bytes(content)
    with pytest.raises(LoadError, match=message):
        models.load_model(path)


@pytest.mark.parametrize("keep", [0.5, 0.05])
def test_truncated_h5(tmp_path, keep):
    data = fixture_path("nested_2d").read_bytes()
    path = tmp_path / "cut.h5"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(LoadError, match="corrupt or truncated"):
        models.load_model(path)


def test_truncated_keras(tmp_path):
    source = tmp_path / "model.keras"
    small_keras3_model().save(source)
    path = tmp_path / "cut.keras"
    path.write_bytes(source.read_bytes()[:2000])
    with pytest.raises(LoadError, match="corrupt or truncated"):
        models.load_model(path)


def test_hdf5_without_a_model(tmp_path):
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as h5:
        h5["volume"] = np.zeros((2, 2, 2))
    with pytest.raises(LoadError, match="an HDF5 file without a Keras model"):
        models.load_model(path)


def test_weights_only_h5(tmp_path):
    path = tmp_path / "weights.h5"
    with h5py.File(fixture_path("flat_functional_2d"), "r") as source, h5py.File(path, "w") as h5:
        for key, value in source["model_weights"].attrs.items():
            h5.attrs[key] = value
    with pytest.raises(LoadError, match="weights only, no model architecture"):
        models.load_model(path)


def test_zip_that_is_not_a_keras_model(tmp_path):
    path = tmp_path / "study.keras"
    shutil.make_archive(
        str(tmp_path / "study"), "zip", root_dir=REPO / "tests" / "models", base_dir="conftest.py"
    )
    (tmp_path / "study.zip").rename(path)
    with pytest.raises(LoadError, match=r"without config\.json"):
        models.load_model(path)


def test_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(LoadError, match="a folder that is not a model"):
        models.load_model(tmp_path)


def test_saved_model_folder_explains_how_to_convert(tmp_path):
    folder = tmp_path / "exported"
    small_keras3_model().export(folder, verbose=False)
    for path in (folder, folder / "saved_model.pb"):
        with pytest.raises(LoadError) as error:
            models.load_model(path)
        message = str(error.value)
        assert "TensorFlow SavedModel" in message and "no layers inside to explain" in message
        assert "save the model again as .keras" in message


# --- process set-up ----------------------------------------------------------------------


def test_models_package_turns_onednn_off_before_tensorflow():
    run = run_python(
        "import os, sys\n"
        "import medvis_desktop.models\n"
        "import tensorflow\n"
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))\n"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "0"
