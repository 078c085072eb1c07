"""Clear errors for what cannot be explained; one trace per (model, layer) however often called."""

from __future__ import annotations

import gc
import weakref
from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest

from medvis_desktop import explain
from medvis_desktop.errors import MedvisError
from medvis_desktop.explain import graph

if TYPE_CHECKING:
    from tests.explain.conftest import Models


def test_explain_error_is_a_medvis_error() -> None:
    assert issubclass(explain.ExplainError, MedvisError)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("nope", "No layer 'nope' in model 'outer'.*Its layers are: .*stem.*backbone"),
        ("backbone/nope", "No layer 'nope' in model 'backbone'.*conv1, block, pool, conv3"),
        ("stem/conv1", "'stem' is not a nested model"),
        ("dense", "cannot use layer 'dense'.*Layers that qualify: stem, backbone, backbone/conv1"),
        ("gap", r"output shape \(None, 5\)"),
    ],
)
def test_bad_layer_names(models: Models, layer: str, message: str) -> None:
    model = models.nested(2)
    x = models.images(2)
    for run in (
        lambda: explain.activation_maps(model, x, layer),
        lambda: explain.grad_cam(model, x, layer, 0),
        lambda: explain.deconvnet(model, x, layer),
    ):
        with pytest.raises(explain.ExplainError, match=message):
            run()


@pytest.mark.parametrize(
    "shape", [(2, 8, 8, 8, 1), (2, 16, 16), (2, 16, 16, 3), (2, 12, 16, 1), (0, 16, 16, 1)]
)
def test_inputs_that_do_not_fit_the_model(models: Models, shape: tuple[int, ...]) -> None:
    model = models.classifier(2)
    with pytest.raises(explain.ExplainError, match=r"(expects \(N, 16, 16, 1\))|(empty batch)"):
        explain.activation_maps(model, np.zeros(shape, np.float32), "conv1")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (3, "target class 3 is out of range: the output has 3 classes"),
        (-1, "target class -1 is out of range"),
        ([0, 1, 2], "one index per sample"),
        (1.5, "one index per sample"),
    ],
)
def test_bad_targets(models: Models, target: object, message: str) -> None:
    model = models.classifier(2)
    with pytest.raises(explain.ExplainError, match=message):
        explain.grad_cam(model, models.images(2), "conv2", target)


def test_bad_outputs_and_masks(models: Models) -> None:
    x = models.images(2)
    two = models.two_outputs(2)
    with pytest.raises(explain.ExplainError, match=r"2 outputs.*choose one with output="):
        explain.grad_cam(two, x, "conv2", 0)
    with pytest.raises(explain.ExplainError, match=r"No output 'tumour'.*diagnosis, lesion"):
        explain.grad_cam(two, x, "conv2", 0, output="tumour")
    with pytest.raises(explain.ExplainError, match="Output index 2 is out of range"):
        explain.grad_cam(two, x, "conv2", 0, output=2)
    with pytest.raises(explain.ExplainError, match="mask only applies to segmentation"):
        explain.grad_cam(two, x, "conv2", 0, output="diagnosis", mask=np.ones((16, 16)))
    with pytest.raises(explain.ExplainError, match=r"spatial shape \(16, 16\)"):
        explain.grad_cam(two, x, "conv2", 0, output="lesion", mask=np.ones((8, 8)))
    with pytest.raises(explain.ExplainError, match="mask is empty"):
        explain.grad_cam(two, x, "conv2", 0, output="lesion", mask=np.zeros((16, 16)))
    with pytest.raises(explain.ExplainError, match="output 0 does not depend on layer 'lesion'"):
        explain.grad_cam(two, x, "lesion", 0, output="diagnosis")


def test_bad_deconvnet_arguments(models: Models) -> None:
    model = models.classifier(2)
    x = models.images(2)
    for bad in (5, -1, 1.5):
        with pytest.raises(explain.ExplainError, match=rf"Filter {bad} is not a filter index.*5 filters"):
            explain.deconvnet(model, x, "conv3", bad)
    with pytest.raises(explain.ExplainError, match='mode="max" needs a filter'):
        explain.deconvnet(model, x, "conv3", mode="max")
    with pytest.raises(explain.ExplainError, match="Unknown deconvnet mode 'strongest'"):
        explain.deconvnet(model, x, "conv3", 0, mode="strongest")


def test_models_that_cannot_be_explained(models: Models) -> None:
    unbuilt = keras.Sequential([keras.layers.Conv2D(2, 3, name="conv")])
    with pytest.raises(explain.ExplainError, match="not built"):
        explain.activation_maps(unbuilt, models.images(2), "conv")

    class Subclassed(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.conv = keras.layers.Conv2D(2, 3, name="conv")

        def call(self, x):
            return self.conv(x)

    subclassed = Subclassed()
    subclassed(models.images(2))
    with pytest.raises(explain.ExplainError, match="subclassed"):
        explain.activation_maps(subclassed, models.images(2), "conv")
    with pytest.raises(explain.ExplainError, match="Unknown method 'saliency'"):
        explain.target_layers(models.classifier(2), "saliency")


def tracing_counts(model: keras.Model) -> dict[tuple, int]:
    return {key: f.experimental_get_tracing_count() for key, f in graph._compiled[model].items()}


def test_repeated_calls_reuse_one_trace(models: Models) -> None:
    """Slice after slice, class after class, filter after filter: no retracing."""
    model = models.segmenter(2)
    for _ in range(3):
        x = models.images(2)
        mask = models.rng.random((16, 16)) > 0.5
        explain.activation_maps(model, x, "conv2")
        for target in range(3):
            explain.grad_cam(model, x, "conv2", target, mask=mask)
        for filter in range(4):
            explain.deconvnet(model, x, "conv2", filter)
            explain.deconvnet(model, x, "conv2", filter, mode="max")
    assert tracing_counts(model) == {
        ("activation_maps", "conv2"): 1,
        ("grad_cam", "conv2", 0): 1,
        ("deconvnet", "conv2", "feature_map"): 1,
        ("deconvnet", "conv2", "max"): 1,
    }


def test_cache_does_not_keep_models_alive(models: Models) -> None:
    model = models.classifier(2)
    x = models.images(2)
    explain.grad_cam(model, x, "conv2", 0)
    explain.deconvnet(model, x, "conv2")
    alive = weakref.ref(model)
    assert alive() in graph._compiled
    del model
    gc.collect()
    assert alive() is None
