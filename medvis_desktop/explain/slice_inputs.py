"""Which model input shows a slice of a study: its own slice for a 2D model, the whole volume or
the patch behind the slice's score on the track for a 3D model or one that reads in patches.
The per-slice metrics measure a slice on that input, and the feature-map mosaic shows it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import keras
import numpy as np

from medvis_desktop.explain.activations import FiringRecord, activation_maps
from medvis_desktop.explain.runner import Explanation, patch_corners
from medvis_desktop.models.card import ModelCard

Corner = tuple[int, ...]


def scored_patches(explanation: Explanation) -> tuple[tuple[Corner, float], ...]:
    """A run's patch corners with their scores for its class (empty for other runs)."""
    if not explanation.patches or explanation.target is None:
        return ()
    scores = explanation.scores[:, explanation.target]
    return tuple((tuple(c), float(s)) for c, s in zip(explanation.patches, scores, strict=True))


@dataclass(frozen=True)
class SliceInputs:
    """A card's model input for each slice of a study."""

    card: ModelCard
    extent: Corner | None = None  # the study voxels (z, y, x) a patch covers (ModelCard.patch_extent)
    patches: tuple[tuple[Corner, float], ...] = ()  # a run in patches: their corners and target scores

    @classmethod
    def of(cls, card: ModelCard, spacing: Sequence[float], explanation: Explanation | None) -> SliceInputs:
        """`card`'s inputs on a study of `spacing` (z, y, x mm), choosing among patches by the
        scores of `explanation` when it is this card's run."""
        if explanation is not None and explanation.card is card:
            return cls(card, explanation.patch_extent, scored_patches(explanation))
        return cls(card, card.patch_extent(spacing))

    def input_key(self, z: int, shape: Sequence[int]) -> Corner:
        """Which model input shows slice z of a study of `shape`: for a card that reads in patches,
        the corner of the patch behind the slice's score on the track: the highest-scoring patch
        covering it; with no scores, the covering patch that holds z nearest its middle, then
        nearest the study's centre. Otherwise (z,), its own slice, for a 2D model, and () for a
        3D model given the whole volume."""
        if self.extent is None:
            return (z,) if self.card.input_mode != "3d" else ()
        depth = self.extent[0]
        scored = [(score, corner) for corner, score in self.patches if corner[0] <= z < corner[0] + depth]
        if scored:
            return max(scored, key=lambda pair: (np.nan_to_num(pair[0], nan=-np.inf), pair[1]))[1]
        middle = (np.asarray(shape[1:]) - np.asarray(self.extent[1:])) / 2

        def nearness(corner: Corner) -> tuple[float, float]:
            return abs(corner[0] + (depth - 1) / 2 - z), float(np.abs(np.subtract(corner[1:], middle)).sum())

        covering = [c for c in patch_corners(shape, self.extent) if c[0] <= z < c[0] + depth]
        return min(covering, key=nearness)

    def describe_input(self, key: Corner) -> str:
        """input_key's answer in words, as the CSV and the Quality panel give it."""
        if self.extent is not None:
            return f"patch at {' '.join(map(str, key))}"
        return "slice" if self.card.input_mode != "3d" else "whole volume"

    def model_input(self, voxels: np.ndarray, z: int) -> np.ndarray:
        """The batch of one (1, *spatial, C) that input_key names."""
        key = self.input_key(z, voxels.shape)
        if self.extent is not None:
            return self.card.patch_input(voxels, key, self.extent)
        if self.card.input_mode != "3d":
            return self.card.slice_input(voxels, [z])
        return self.card.volume_input(voxels)

    def plane(self, maps: np.ndarray, z: int, shape: Sequence[int]) -> np.ndarray:
        """Slice z's plane (..., h, w) of maps (..., *spatial) on this run's model input for z: the
        maps as they are in 2D, the plane through z of a 3D input."""
        if self.card.input_mode != "3d":
            return maps
        start, length = (self.input_key(z, shape)[0], self.extent[0]) if self.extent else (0, shape[0])
        depth = maps.shape[-3]  # the input's depth, or a layer's
        return maps[..., min(depth - 1, int((z - start + 0.5) * depth / length)), :, :]

    def on_study_slice(self, maps: np.ndarray, z: int, shape: Sequence[int]) -> np.ndarray:
        """A map (1, *spatial) of this run's model input for z on the study's slice z (y, x), NaN
        where the input does not reach."""
        if self.extent is None:
            if self.card.input_mode != "3d":
                return self.card.to_grid(maps, shape[1:])[0]
            return self.card.to_grid(maps, shape)[0, z]
        key = self.input_key(z, shape)
        plane = self.card.patch_to_grid(maps, self.extent)[0, z - key[0]]
        study = np.full(tuple(shape[1:]), np.nan, dtype=np.float32)
        region = tuple(
            slice(c, min(c + s, n)) for c, s, n in zip(key[1:], plane.shape, shape[1:], strict=True)
        )
        study[region] = plane[tuple(slice(0, r.stop - r.start) for r in region)]
        return study


@dataclass(frozen=True)
class Mosaic:
    """Every feature map of a layer on the model input that shows one slice, and the layer's
    dead filters (Zeiler & Fergus read many as the sign of a too-large learning rate)."""

    layer: str
    slice: int
    maps: np.ndarray  # (y, x, C) at the layer's resolution: for a 3D input its plane through the slice
    dead: np.ndarray  # (C,) bool: never > 0 on any sampled input
    shown: str  # the model input the maps are of: "slice", "whole volume", "patch at z y x"
    sampled: int  # how many model inputs through the study the dead filters were found on


def feature_mosaic(
    model: keras.Model,
    voxels: np.ndarray,
    inputs: SliceInputs,
    layer: str,
    z: int,
    samples: Sequence[int],
    record: FiringRecord | None = None,
) -> Mosaic:
    """The mosaic of slice z, with dead filters found on the inputs that show the `samples`
    slices (each input once; with a `record`, once across calls)."""
    record = FiringRecord() if record is None else record
    inputs = replace(inputs, card=inputs.card.for_study(voxels))  # the statistics once
    shown_input = inputs.model_input(voxels, z)
    maps = activation_maps(model, shown_input, layer)
    record.note(model, layer, shown_input, maps)
    plane = inputs.plane(np.moveaxis(maps, -1, 0), z, voxels.shape)  # (C, 1, y, x)
    sampled = {inputs.input_key(int(s), voxels.shape): int(s) for s in samples}
    dead = record.dead(model, layer, [inputs.model_input(voxels, s) for s in sampled.values()])
    shown = inputs.describe_input(inputs.input_key(z, voxels.shape))
    return Mosaic(layer, z, np.moveaxis(plane[:, 0], 0, -1), dead, shown, len(sampled))
