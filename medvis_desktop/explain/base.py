"""What every explanation method shares: its error type, its registry entry, input checks."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import keras
import numpy as np

from medvis_desktop.errors import MedvisError
from medvis_desktop.models.layers import LayerPredicate


class ExplainError(MedvisError):
    """A method cannot run as asked (unknown layer, wrong input shape, bad target...)."""


ParamValue = int | float | str | bool


@dataclass(frozen=True)
class Param:
    """A method's parameter, declared by its module: the window builds a control from it, the
    CLI reads it from --param name=value, and both check it here, so neither knows methods."""

    name: str  # the keyword of the method's function
    label: str
    default: ParamValue  # its type is the parameter's type
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""
    unit: str = ""  # "voxels" for sizes the window may ask for in mm

    def parse(self, text: str) -> ParamValue:
        """The value of `text` (from a command line), checked."""
        kind = type(self.default)
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                value: ParamValue = text.lower() in ("true", "1", "yes")
            else:
                value = kind(text)
        except ValueError:
            raise ExplainError(
                f"Parameter '{self.name}' takes {kind.__name__} values, not '{text}'."
            ) from None
        return self.check(value)

    def check(self, value: ParamValue) -> ParamValue:
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not kind:
            raise ExplainError(f"Parameter '{self.name}' takes {kind.__name__} values, not {value!r}.")
        if self.choices and value not in self.choices:
            raise ExplainError(
                f"Parameter '{self.name}' must be one of {', '.join(self.choices)}, not {value!r}."
            )
        if isinstance(value, int | float) and not isinstance(value, bool):
            low, high = self.minimum, self.maximum
            if value != value or (low is not None and value < low) or (high is not None and value > high):
                if high is None:
                    span = f"be at least {low:g}"
                elif low is None:
                    span = f"be at most {high:g}"
                else:
                    span = f"lie in {low:g} to {high:g}"
                raise ExplainError(f"Parameter '{self.name}' must {span}, not {value!r}.")
        return value


# The batch_size of a method that makes many inputs per image (masked, occluded, interpolated,
# noisy copies): how many go through the model at once. It bounds memory, not the result.
BATCH_PARAM = Param(
    "batch_size",
    "Inputs per pass",
    32,
    minimum=1,
    help="inputs the method makes that go through the model at once: larger is faster and needs "
    "more memory; the result is the same",
)


# How many forward passes per image a method costs: (parameters, input spatial shape, channels
# of the chosen layer) -> passes. Methods that cost about one pass and its gradient have none.
Cost = Callable[[Mapping[str, ParamValue], tuple[int, ...], int], int]


@dataclass(frozen=True)
class Method:
    """One explanation method as the GUI and the CLI see it: adding one is a module + this.

    run(model, inputs, [layer,] [target,] *, [output=, mask=,] **params): `layer` when
    uses_layer, `target`, `output` and `mask` when uses_target.
    """

    name: str  # registry key and the public function's name, e.g. "grad_cam"
    label: str  # human name, e.g. "Grad-CAM"
    run: Callable[..., np.ndarray]
    can_target: LayerPredicate
    # "cam": (N, *spatial), >= 0, sequential colours; "attribution": shaped like the inputs
    # (N, *spatial, C) and signed; "features": a layer's own maps on the input's grid.
    kind: str = "cam"
    uses_layer: bool = True
    uses_target: bool = True
    uses_filter: bool = False  # run takes a filter index (None: all filters) after the layer
    params: tuple[Param, ...] = ()
    cost: Cost | None = None
    # run, also giving the model's outputs from the same pass (a viewer needs the scores)
    run_with_outputs: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def signed(self) -> bool:
        """Maps with negative values that mean something: shown on a diverging scale."""
        return self.kind == "attribution"

    def parameters(self, given: Mapping[str, object] | None = None) -> dict[str, ParamValue]:
        """Every declared parameter: the defaults, with `given` checked over them."""
        declared = {param.name: param for param in self.params}
        unknown = sorted(set(given or {}) - set(declared))
        if unknown:
            offered = ", ".join(declared) or "none"
            raise ExplainError(
                f"{self.label} has no parameter {', '.join(unknown)}; its parameters: {offered}."
            )
        values = {name: param.default for name, param in declared.items()}
        for name, value in (given or {}).items():
            values[name] = declared[name].check(value)
        return values


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


def maps_only(with_outputs: Callable[..., tuple[np.ndarray, np.ndarray]], name: str, doc: str) -> Callable:
    """The public function of a method whose run also gives the model's outputs from the same
    pass (what a viewer needs): the same arguments, the maps alone."""

    @functools.wraps(with_outputs)
    def run(*args: object, **kwargs: object) -> np.ndarray:
        return with_outputs(*args, **kwargs)[0]

    run.__name__ = run.__qualname__ = name
    run.__doc__ = doc
    run.__signature__ = inspect.signature(with_outputs).replace(return_annotation="np.ndarray")
    return run


def check_batch_size(batch_size: object) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ExplainError(
            f"batch_size must be a whole number of at least 1 (inputs per forward pass), not {batch_size!r}."
        )
