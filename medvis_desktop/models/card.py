"""The model card: how a medical volume becomes this model's input, and its maps come back.

It lives beside the model as `<model>.medvis.json`. Without one, `default_card` derives what
it can from the model's input shape and says what it assumed, so the user can check it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medvis_desktop.arrays import resize_linear
from medvis_desktop.errors import MedvisError
from medvis_desktop.models.messages import printable

CARD_SUFFIX = ".medvis.json"
CARD_VERSION = 1

InputMode = Literal["2d", "2.5d", "3d"]
IntensityKind = Literal["window", "minmax", "zscore", "scale"]
ResizePolicy = Literal["resize", "crop_or_pad"]
Task = Literal["classification", "segmentation"]
Activation = Literal["softmax", "sigmoid", "linear"]

INPUT_MODES = ("2d", "2.5d", "3d")
INTENSITY_KINDS = ("window", "minmax", "zscore", "scale")
RESIZE_POLICIES = ("resize", "crop_or_pad")
TASKS = ("classification", "segmentation")
ACTIVATIONS = ("softmax", "sigmoid", "linear")
# The entries a card may choose from a list, by their name in the file.
CHOICES = {
    "input_mode": INPUT_MODES,
    "intensity.kind": INTENSITY_KINDS,
    "resize": RESIZE_POLICIES,
    "task": TASKS,
    "output_activation": ACTIVATIONS,
}
# Limits on a card file: what no real model needs, so that a damaged or hostile card cannot
# make medvis allocate or compute without bound.
MAX_CARD_BYTES = 2**20  # a card takes about 1 KB, its description included
MAX_INPUT_SIDE = 8192  # any one size in input_shape; a full-field mammogram is about 4.5k × 2.6k
MAX_INPUT_VALUES = 2**28  # one sample of input_shape: 1 GB as float32
MAX_PATCH_MM = 1000  # any one size in patch_mm: larger than any patient


class CardError(MedvisError):
    """A model card that cannot be read, or does not fit its model."""


@dataclass
class Intensity:
    """Voxel values (HU for CT) → the numbers the network was trained on.

    window: clip to [center ± width/2] and map to [0, 1]; minmax: the volume's own range to
    [0, 1]; zscore: the volume's mean and standard deviation; scale: value * scale + offset.
    """

    kind: IntensityKind = "minmax"
    center: float = 40.0
    width: float = 80.0
    scale: float = 1.0
    offset: float = 0.0
    # A study's (min, max) or (mean, std), computed once by for_study; never part of the card file.
    statistics: tuple[float, float] | None = field(default=None, repr=False)

    def apply(self, values: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """Transform `values`; volume-wide statistics are this study's (for_study), or come from
        `reference` (default: values)."""
        values = np.asarray(values, dtype=np.float32)
        if self.kind == "window":
            low = self.center - self.width / 2
            return np.clip((values - low) / self.width, 0.0, 1.0)
        if self.kind == "minmax":
            low, high = self.statistics or self._statistics(values if reference is None else reference)
            return (values - low) / max(high - low, 1e-6)
        if self.kind == "zscore":
            mean, std = self.statistics or self._statistics(values if reference is None else reference)
            return (values - mean) / max(std, 1e-6)
        return values * np.float32(self.scale) + np.float32(self.offset)

    def for_study(self, voxels: np.ndarray) -> Intensity:
        """This transform with the study's statistics taken once, for a run that reads the study
        batch by batch: a pass over a 300 × 512 × 512 CT costs about as much as a batch of the
        model."""
        if self.kind not in ("minmax", "zscore"):
            return self
        return replace(self, statistics=self._statistics(voxels))

    def _statistics(self, reference: np.ndarray) -> tuple[float, float]:
        if self.kind == "minmax":
            return float(np.min(reference)), float(np.max(reference))
        return float(np.mean(reference)), float(np.std(reference))


@dataclass
class ModelCard:
    """What the network expects. `input_shape` excludes the batch: (H, W, C) or (D, H, W, C)."""

    input_mode: InputMode
    input_shape: tuple[int, ...]
    intensity: Intensity = field(default_factory=Intensity)
    resize: ResizePolicy = "resize"
    task: Task = "classification"
    class_names: list[str] = field(default_factory=list)
    output: int = 0
    output_activation: Activation = "softmax"
    description: str = ""
    # What one input shows, in mm: (height, width) for 2D, (depth, height, width) for 3D. A
    # larger study is read in overlapping patches of that size, each resized to the input (a
    # patch classifier over a whole mammogram). None: slices (2D) or the volume (3D) whole.
    patch_mm: tuple[float, ...] | None = None

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.input_shape[:-1])

    @property
    def channels(self) -> int:
        return int(self.input_shape[-1])

    def class_name(self, index: int) -> str:
        return self.class_names[index] if index < len(self.class_names) else f"class {index}"

    # --- volume → model input -------------------------------------------------------------

    def slice_input(
        self, voxels: np.ndarray, slices: Sequence[int], reference: np.ndarray | None = None
    ) -> np.ndarray:
        """A batch (N, H, W, C) for the 2D/2.5D modes: one sample per slice index, with the
        intensity statistics of `reference` (default: voxels) unless the card has the study's."""
        if self.input_mode == "3d":
            raise CardError("This model takes whole volumes, not slices")
        depth = voxels.shape[0]
        half = self.channels // 2 if self.input_mode == "2.5d" else 0
        samples = []
        for index in slices:
            neighbours = np.clip(np.arange(index - half, index + half + 1), 0, depth - 1)
            stack = np.moveaxis(voxels[neighbours], 0, -1)  # (y, x, 1 or C)
            samples.append(self._fit(stack, spatial_axes=(0, 1)))
        batch = self.intensity.apply(np.stack(samples), reference=voxels if reference is None else reference)
        if self.input_mode == "2d" and self.channels > 1:
            batch = np.repeat(batch, self.channels, axis=-1)  # grey shown to an RGB network
        return batch.astype(np.float32)

    def volume_input(self, voxels: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """A batch (1, D, H, W, C) for the 3D mode: the whole volume fitted to the input, with
        the intensity statistics of `reference` (default: voxels) unless the card has the study's."""
        if self.input_mode != "3d":
            raise CardError("This model takes slices, not whole volumes")
        fitted = self._fit(voxels[..., np.newaxis], spatial_axes=(0, 1, 2))
        batch = self.intensity.apply(fitted[np.newaxis], reference=voxels if reference is None else reference)
        return np.repeat(batch, self.channels, axis=-1).astype(np.float32)

    def patch_extent(self, spacing: Sequence[float]) -> tuple[int, int, int] | None:
        """The study voxels (z, y, x) one patch covers, for a card that reads the study in
        patches: its patch_mm at the study's `spacing`, or for a 3D card that crops or pads, the
        input's own size at native resolution. None when slices or the volume are read whole."""
        if self.patch_mm is not None:
            mm = self.patch_mm if self.input_mode == "3d" else (spacing[0], *self.patch_mm)
            return tuple(max(1, round(size / step)) for size, step in zip(mm, spacing, strict=True))
        if self.input_mode == "3d" and self.resize == "crop_or_pad":
            return tuple(self.spatial_shape)
        return None

    def patch_input(
        self, voxels: np.ndarray, corner: Sequence[int], extent: Sequence[int] | None = None
    ) -> np.ndarray:
        """A batch of one model input: the `extent` (z, y, x; default the input's own size) of
        the study at `corner`, fitted to the input (a 2D card's extent is one slice deep).

        A patch past the study's far end is padded with the study's minimum, so patch voxel
        (0, 0, 0) stays at `corner`.
        """
        extent = tuple(self.spatial_shape if extent is None else extent)
        region = tuple(slice(c, c + s) for c, s in zip(corner, extent, strict=True))
        patch = voxels[region]
        padding = [(0, s - n) for s, n in zip(extent, patch.shape, strict=True)]
        if any(after for _, after in padding):  # the volume's minimum only when it is needed
            patch = np.pad(patch, padding, constant_values=np.min(voxels))
        if self.input_mode == "3d":
            return self.volume_input(patch, reference=voxels)
        return self.slice_input(patch, [0], reference=voxels)

    def patch_to_grid(self, maps: np.ndarray, extent: Sequence[int]) -> np.ndarray:
        """Maps over the model input (N, *spatial) → (N, *extent) over the study voxels the
        patches cover."""
        if self.input_mode == "3d":
            return self.to_grid(maps, extent)
        return self.to_grid(maps, extent[1:])[:, np.newaxis]

    def _fit(self, array: np.ndarray, spatial_axes: tuple[int, ...]) -> np.ndarray:
        target = self.spatial_shape[-len(spatial_axes) :]
        if self.resize == "resize":
            return resize_linear(array, target, axes=spatial_axes)
        return crop_or_pad(array, target, spatial_axes)

    # --- model maps → volume grid ----------------------------------------------------------

    def to_grid(self, maps: np.ndarray, grid_shape: Sequence[int]) -> np.ndarray:
        """Maps over the model input (N, *spatial) brought back onto the volume's own grid."""
        grid_shape = tuple(grid_shape)
        axes = tuple(range(1, maps.ndim))
        if self.resize == "resize":
            return resize_linear(maps, grid_shape, axes=axes)
        return crop_or_pad(np.asarray(maps, dtype=np.float32), grid_shape, axes, fill=np.nan)

    # --- checks and storage ----------------------------------------------------------------

    def problems(self, model_input_shape: Sequence[int | None], class_count: int | None) -> list[str]:
        """What does not fit the model (empty when the card is usable)."""
        issues = []
        rank = len(model_input_shape) - 1
        expected_rank = 4 if self.input_mode == "3d" else 3
        if len(self.input_shape) != expected_rank:
            issues.append(
                f"input mode '{self.input_mode}' needs an input shape of {expected_rank} sizes, "
                f"the card has {tuple(self.input_shape)}"
            )
        elif rank != expected_rank:
            issues.append(
                f"input mode '{self.input_mode}' needs a model input of rank {expected_rank + 1}, "
                f"the model's is {tuple(model_input_shape)}"
            )
        elif any(
            want is not None and want != got
            for want, got in zip(model_input_shape[1:], self.input_shape, strict=True)
        ):
            issues.append(f"input shape {self.input_shape} does not match the model's {model_input_shape}")
        if self.input_mode == "2.5d" and (self.channels < 3 or self.channels % 2 == 0):
            issues.append("a 2.5D stack needs an odd number (3 or more) of slices as channels")
        if class_count is not None and self.class_names and len(self.class_names) != class_count:
            issues.append(f"{len(self.class_names)} class names for {class_count} model outputs")
        for key in CHOICES:
            value = self.intensity.kind if key == "intensity.kind" else getattr(self, key)
            if value not in CHOICES[key]:
                issues.append(_choice_problem(key, value))
        if self.intensity.kind == "window" and self.intensity.width <= 0:
            issues.append("the intensity window needs a positive width")
        if self.patch_mm is not None:
            issues.extend(self._patch_problems())
        return issues

    def _patch_problems(self) -> list[str]:
        if self.input_mode == "2.5d":
            return ["patch_mm is for 2d and 3d models; a 2.5D model reads whole slices"]
        sizes = 3 if self.input_mode == "3d" else 2
        if len(self.patch_mm) != sizes:
            return [f"patch_mm needs {sizes} sizes for a {self.input_mode} model, not {len(self.patch_mm)}"]
        if not all(size > 0 for size in self.patch_mm):
            return ["patch_mm needs sizes above 0 mm"]
        return []

    def for_study(self, voxels: np.ndarray) -> ModelCard:
        """This card with the study's intensity statistics taken once (Intensity.for_study)."""
        return replace(self, intensity=self.intensity.for_study(voxels))

    def to_json(self) -> str:
        record = {"medvis_card": CARD_VERSION, **asdict(self)}
        del record["intensity"]["statistics"]  # the study's, not the model's
        record["input_shape"] = list(self.input_shape)
        return json.dumps(record, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        """The card written in `text`; a CardError naming the first entry that is wrong."""
        try:
            record = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise CardError(f"not a valid model card: not JSON ({error})") from error
        return cls(**_checked_entries(record))


# --- reading a card: every entry checked, each problem its own one-line message -------------


def _checked_entries(record: Any) -> dict[str, Any]:
    """ModelCard's arguments from a card's JSON, after checking each entry's type and range."""
    if not isinstance(record, dict):
        raise CardError(f"not a valid model card: a JSON object {{...}} was expected, not {_shown(record)}")
    record = dict(record)
    version = record.pop("medvis_card", CARD_VERSION)
    if not _is_whole(version) or version != CARD_VERSION:
        raise CardError(
            f"medvis_card is {_shown(version)}; this medvis reads cards of version {CARD_VERSION}"
        )
    unknown = sorted(set(record) - set(_ENTRY_CHECKS))
    if unknown:
        raise CardError(f"unknown entries {', '.join(printable(key) for key in unknown)}")
    missing = [key for key in ("input_mode", "input_shape") if key not in record]
    if missing:
        raise CardError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    return {key: _ENTRY_CHECKS[key](key, value) for key, value in record.items()}


def _choice(key: str, value: Any) -> str:
    if not isinstance(value, str) or value not in CHOICES[key]:
        raise CardError(_choice_problem(key, value))
    return value


def _choice_problem(key: str, value: Any) -> str:
    return f"{key} is {_shown(value)}; it must be one of {', '.join(CHOICES[key])}"


def _input_shape(key: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(_is_whole(n) for n in value):
        raise CardError(f"{key} is {_shown(value)}; it must be a list of whole numbers, e.g. [128, 128, 1]")
    if len(value) not in (3, 4):
        raise CardError(
            f"{key} has {len(value)} sizes; it must have 3 (height, width, channels) "
            "or 4 (depth, height, width, channels)"
        )
    if not all(1 <= n <= MAX_INPUT_SIDE for n in value):
        raise CardError(f"{key} {_shown(value)} has a size outside 1 to {MAX_INPUT_SIDE}")
    if math.prod(value) > MAX_INPUT_VALUES:
        raise CardError(
            f"{key} {_shown(value)} makes {math.prod(value):,} values per sample, over {MAX_INPUT_VALUES:,}"
        )
    return tuple(value)


def _intensity(key: str, value: Any) -> Intensity:
    if not isinstance(value, dict):
        raise CardError(f'{key} is {_shown(value)}; it must be an object such as {{"kind": "minmax"}}')
    unknown = sorted(set(value) - {"kind", "center", "width", "scale", "offset"})
    if unknown:
        raise CardError(f"{key}: unknown entries {', '.join(printable(name) for name in unknown)}")
    checked = {name: _number(f"{key}.{name}", number) for name, number in value.items() if name != "kind"}
    if "kind" in value:
        checked["kind"] = _choice(f"{key}.kind", value["kind"])
    return Intensity(**checked)


def _number(key: str, value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise CardError(f"{key} is {_shown(value)}; it must be a finite number")
    return float(value)


def _texts(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
        raise CardError(f"{key} is {_shown(value)}; it must be a list of texts")
    return value


def _patch_mm(key: str, value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise CardError(f"{key} is {_shown(value)}; it must be 2 or 3 sizes in mm, e.g. [51.2, 51.2]")
    sizes = tuple(_number(key, size) for size in value)
    if not all(0 < size <= MAX_PATCH_MM for size in sizes):
        raise CardError(f"{key} {_shown(value)} has a size outside 0 to {MAX_PATCH_MM} mm")
    return sizes


def _index(key: str, value: Any) -> int:
    if not _is_whole(value) or value < 0:
        raise CardError(f"{key} is {_shown(value)}; it must be a whole number, 0 or more")
    return value


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise CardError(f"{key} is {_shown(value)}; it must be a text")
    return value


_ENTRY_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "input_mode": _choice,
    "input_shape": _input_shape,
    "intensity": _intensity,
    "resize": _choice,
    "task": _choice,
    "class_names": _texts,
    "output": _index,
    "output_activation": _choice,
    "description": _text,
    "patch_mm": _patch_mm,
}


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A value from the card as it is written in JSON, fit for a one-line message."""
    return printable(json.dumps(value, ensure_ascii=False), limit=60)


def crop_or_pad(
    array: np.ndarray, shape: Sequence[int], axes: Sequence[int], fill: float = 0.0
) -> np.ndarray:
    """Centre-crop or centre-pad `array` along `axes` to `shape` (no interpolation)."""
    result = array
    for axis, size in zip(axes, shape, strict=True):
        old = result.shape[axis]
        if old > size:
            start = (old - size) // 2
            result = np.take(result, np.arange(start, start + size), axis=axis)
        elif old < size:
            before = (size - old) // 2
            pad = [(0, 0)] * result.ndim
            pad[axis] = (before, size - old - before)
            fill_value = fill if np.issubdtype(result.dtype, np.floating) else np.min(result)
            result = np.pad(result, pad, constant_values=fill_value)
    return result


def card_path(model_path: Path | str) -> Path:
    """`brain.keras` → `brain.medvis.json` beside it (a SavedModel folder: `folder.medvis.json`)."""
    path = Path(model_path)
    stem = path.name if path.is_dir() else path.name.split(".")[0]
    return path.with_name(stem + CARD_SUFFIX)


def read_card(model_path: Path | str) -> ModelCard | None:
    """The card beside the model, None when there is none."""
    path = card_path(model_path)
    if not path.exists():
        return None
    try:
        size = path.stat().st_size
        if size > MAX_CARD_BYTES:
            raise CardError(f"{size:,} bytes, more than the {MAX_CARD_BYTES:,} a model card may take")
        return ModelCard.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise CardError(f"{path.name}: cannot be read ({error})") from error
    except CardError as error:
        raise CardError(f"{path.name}: {error}") from error


def write_card(card: ModelCard, model_path: Path | str) -> Path:
    path = card_path(model_path)
    path.write_text(card.to_json() + "\n")
    return path


def default_card(
    input_shape: Sequence[int | None],
    output_shape: Sequence[int | None],
    output_activation: Activation,
) -> tuple[ModelCard, list[str]]:
    """A card from the model's shapes alone, with what had to be assumed, in words."""
    shape = tuple(input_shape[1:])
    assumptions = []
    if any(n is None for n in shape):
        raise CardError(
            f"the model's input {tuple(input_shape)} has free sizes; write a model card that fixes them"
        )
    mode: InputMode = "3d" if len(shape) == 4 else "2d"
    if mode == "2d" and shape[-1] > 1:
        assumptions.append(f"each slice is repeated over the model's {shape[-1]} channels")
    assumptions.append("intensities scaled from the volume's minimum and maximum to 0–1")
    assumptions.append("slices resized (linear) to the model's input size")
    spatial_output = len(output_shape) == len(input_shape)
    task: Task = "segmentation" if spatial_output else "classification"
    assumptions.append(f"{task} model with generic class names")
    card = ModelCard(
        input_mode=mode,
        input_shape=shape,
        task=task,
        class_names=[f"class {k}" for k in range(int(output_shape[-1] or 1))],
        output_activation=output_activation,
    )
    return card, assumptions


def default_card_for(model: object) -> tuple[ModelCard, list[str]]:
    """`default_card` from a Keras model's own input and output shapes."""
    from medvis_desktop.models.layers import output_activation  # Keras: loaded only when needed

    return default_card(tuple(model.inputs[0].shape), tuple(model.outputs[0].shape), output_activation(model))
