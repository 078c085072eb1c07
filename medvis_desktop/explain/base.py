"""What every explanation method shares: its error type, its registry entry, input checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from medvis_desktop.errors import MedvisError
from medvis_desktop.models.layers import LayerPredicate


class ExplainError(MedvisError):
    """A method cannot run as asked (unknown layer, wrong input shape, bad target...)."""


@dataclass(frozen=True)
class Method:
    """One explanation method as the GUI and the CLI see it: adding one is a module + this."""

    name: str  # registry key and the public function's name, e.g. "grad_cam"
    label: str  # human name, e.g. "Grad-CAM"
    run: Callable[..., np.ndarray]  # run(model, inputs, layer, ...) -> ndarray
    can_target: LayerPredicate


def model_input_shape(model: keras.Model) -> tuple[int | None, ...]:
    """The single input's shape, batch axis included; the methods take one image batch."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs and isinstance(model, keras.Sequential):
        raise ExplainError(
            f"Model '{model.name}' is not built, so it has no known input shape: "
            "build it on a keras.Input (or call it once) before explaining it."
        )
    if not inputs:
        raise ExplainError(
            f"Model '{model.name}' has no graph of layers from an input (a subclassed "
            "keras.Model?): rebuild it as a functional or Sequential model to explain it."
        )
    if len(inputs) != 1:
        raise ExplainError(
            f"Model '{model.name}' takes {len(inputs)} inputs; only single-input models can be explained."
        )
    return tuple(inputs[0].shape)


def check_inputs(model: keras.Model, inputs: object) -> np.ndarray:
    """The batch as float32, after checking it fits the model: (N, H, W, C) or (N, D, H, W, C)."""
    expected = model_input_shape(model)
    try:
        batch = np.asarray(inputs, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ExplainError(f"Inputs must be a numeric array: {error}") from error
    fits = batch.ndim == len(expected) and all(
        want is None or want == got for want, got in zip(expected[1:], batch.shape[1:], strict=True)
    )
    if not fits:
        raise ExplainError(
            f"Inputs have shape {batch.shape}; model '{model.name}' expects "
            f"{_pretty(expected)} (batch first, channels last)."
        )
    if batch.shape[0] == 0:
        raise ExplainError("Inputs are an empty batch: give at least one image.")
    return batch


def _pretty(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if i == 0 else str(d) for i, d in enumerate(shape)) + ")"
