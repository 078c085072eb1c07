"""Apply a method to a whole Volume: slice by slice for 2D models, whole or in patches for 3D.

The model card turns voxels into model input and maps back onto the volume's own grid, so
an Explanation lines up with the study voxel for voxel (slices not computed are NaN).
Work goes in batches; between batches `progress` is told and `cancel` is asked.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from medvis_desktop.explain import METHODS
from medvis_desktop.explain.base import ExplainError, Method, check_inputs
from medvis_desktop.explain.graph import compiled
from medvis_desktop.imaging.volume import Volume
from medvis_desktop.models.card import ModelCard, default_card_for, read_card
from medvis_desktop.models.layers import default_gradcam_layer
from medvis_desktop.models.runtime import device

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]
DEFAULT_BATCH = 8
# Seg-Grad-CAM with region="predicted" explains where the model's output for the target
# exceeds this (a probability for sigmoid/softmax heads).
PREDICTED = 0.5
REGIONS = ("all", "predicted")
# 3D patches overlap by half a patch, so every voxel is seen away from a patch border.
PATCH_OVERLAP = 0.5


@dataclass
class Explanation:
    """A method's result on a volume, in the volume's (z, y, x) grid."""

    method: str
    layer: str
    target: int | None
    filter: int | None
    maps: np.ndarray  # float32 (z, y, x); NaN where not computed
    # 2D models: (z, classes), a row per slice (NaN where not computed); 3D: (patches, classes).
    # Segmentation outputs are reduced to each class's strongest voxel.
    scores: np.ndarray
    computed: np.ndarray  # bool (z,)
    card: ModelCard
    patches: list[tuple[int, ...]] = field(default_factory=list)  # read in patches: each score row's corner
    patch_extent: tuple[int, ...] | None = None  # the study voxels (z, y, x) one patch covers
    assumptions: list[str] = field(default_factory=list)
    parameters: dict[str, object] = field(default_factory=dict)
    cancelled: bool = False
    signed: bool = False  # negative values mean something (attributions): a diverging display
    label: str = ""  # the method in words: "Grad-CAM"
    description: str = ""  # what the maps are, in words: "Grad-CAM · layer conv2 · class lesion"

    @property
    def scores_per_slice(self) -> bool:
        """Whether score row z is slice z's (a 2D model reading whole slices)."""
        return self.card.input_mode != "3d" and not self.patches

    @property
    def class_name(self) -> str | None:
        return None if self.target is None else self.card.class_name(self.target)

    def slice_scores(self, target: int | None = None) -> np.ndarray:
        """(z,) the model's score for `target` (default: the explained class) along the study,
        NaN where not computed: for a study read in patches, the highest score of the patches
        covering the slice; a 2D model's score of each slice; a 3D model given the whole
        volume, its one score on every slice."""
        target = self.target if target is None else target
        depth = self.maps.shape[0]
        track = np.full(depth, np.nan, dtype=np.float32)
        if target is None or self.scores.size == 0:
            return track
        if self.patches:
            for corner, score in zip(self.patches, self.scores[:, target], strict=True):
                covered = slice(corner[0], min(corner[0] + self.patch_extent[0], depth))
                track[covered] = np.fmax(track[covered], score)
            track[~self.computed] = np.nan
            return track
        if self.scores_per_slice:
            return self.scores[:, target].astype(np.float32)
        track[self.computed] = self.scores[0, target]  # the whole volume, resized to the model's input
        return track


def explain_volume(
    volume: Volume,
    model: keras.Model | Path | str,
    method: str,
    *,
    card: ModelCard | None = None,
    layer: str | None = None,
    target: int | None = None,
    filter: int | None = None,
    slices: Sequence[int] | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    batch_size: int = DEFAULT_BATCH,
    region: str = "all",
    params: Mapping[str, object] | None = None,
    maps: np.ndarray | None = None,
) -> Explanation:
    """Run `method` (a name in explain.METHODS) over `volume`, with its declared `params`.

    `slices` are computed in the order given, so a viewer can ask for the slice on screen
    first; a study read in patches (ModelCard.patch_extent) computes the patches that cover
    them, and its progress counts patches.
    Without a card, one is derived from the model and what was assumed is in
    `Explanation.assumptions`. Without a target, a method explains the positive class of a
    two-class model, else the class the model scores highest on the first batch. For
    segmentation models the score is the sum of the target's logits over the whole image
    (region="all") or where the model predicts the target (region="predicted").
    Pixel attributions (N, *spatial, C) become one value per voxel: the sum over channels,
    or for a 2.5D card the channel that is the slice itself.
    `maps`: a float32 array of the volume's shape to write the maps into, so that a viewer
    asking for a study chunk by chunk fills one array (the slices computed are written, the
    others left as they are); by default a new one, NaN where not computed.
    """
    if maps is not None and (maps.shape != volume.shape or maps.dtype != np.float32):
        raise ExplainError(
            f"maps must be float32 of the volume's shape {volume.shape}, not {maps.dtype} {maps.shape}"
        )
    if region not in REGIONS:
        raise ExplainError(f"Unknown region '{region}'; use one of {', '.join(REGIONS)}")
    if method not in METHODS:
        raise ExplainError(f"Unknown method '{method}'; available: {', '.join(METHODS)}")
    chosen = METHODS[method].parameters(params)
    if isinstance(model, (str, Path)):
        from medvis_desktop.models import load_model

        card = card or read_card(model)
        model = load_model(model)
    assumptions: list[str] = []
    if card is None:
        card, assumptions = default_card_for(model)
    problems = card.problems(tuple(model.inputs[0].shape), int(model.outputs[card.output].shape[-1]))
    if problems:
        raise ExplainError("The model card does not fit the model: " + "; ".join(problems))
    if METHODS[method].uses_layer:
        layer = layer or default_gradcam_layer(model)
        if layer is None:
            raise ExplainError("The model has no layer with spatial feature maps to explain")
    else:
        layer = ""
    if METHODS[method].cost is not None:
        # Many passes per image (the method's own batch_size bounds each): one image per batch,
        # so that progress and cancel come after every image, not after minutes.
        batch_size = 1
    run = _Run(
        volume, model, card, METHODS[method], layer, target, filter, chosen, region, progress, cancel, maps
    )
    extent = card.patch_extent(volume.spacing)
    order = range(volume.shape[0]) if slices is None else slices
    if extent is not None:
        run.in_patches(extent, order, batch_size)
    elif card.input_mode == "3d":
        run.whole_volume()
    else:
        run.slices_2d(order, batch_size)
    return Explanation(
        method=method,
        layer=layer,
        target=run.target,
        filter=filter,
        maps=run.maps,
        scores=run.scores,
        computed=run.computed,
        card=card,
        patches=run.patches,
        patch_extent=extent,
        assumptions=assumptions,
        parameters={**chosen, "region": region, "images_per_batch": batch_size, "device": str(device())},
        cancelled=run.cancelled,
        signed=METHODS[method].signed,
        label=METHODS[method].label,
        description=_description(
            METHODS[method], layer, filter, card.class_name(run.target) if run.target is not None else None
        ),
    )


def _description(method: Method, layer: str, filter: int | None, class_name: str | None) -> str:
    parts = [method.label]
    if method.uses_layer:
        parts.append(f"layer {layer}")
    if method.uses_target and class_name is not None:
        parts.append(f"class {class_name}")
    if method.uses_filter and filter is not None:
        parts.append(f"filter {filter}")
    return " · ".join(parts)


def predicted_region(outputs: np.ndarray, target: int) -> np.ndarray:
    """Where a segmentation output (N, *spatial, classes) predicts `target` (above PREDICTED),
    per sample; the whole image for a sample where it nowhere does (Grad-CAM then explains
    the whole output)."""
    region = outputs[..., target] > PREDICTED
    region[~region.reshape(len(region), -1).any(axis=1)] = True
    return region


def per_voxel(attribution: np.ndarray, card: ModelCard) -> np.ndarray:
    """(N, *spatial, C) -> (N, *spatial): a 2.5D input's own slice is its middle channel; the
    channels of any other input (colour, stacked windows) are summed, as completeness adds
    them."""
    if card.input_mode == "2.5d":
        return attribution[..., attribution.shape[-1] // 2]
    return attribution.sum(axis=-1)


class _Run:
    """The state of one explain_volume call."""

    def __init__(
        self,
        volume: Volume,
        model: keras.Model,
        card: ModelCard,
        method: Method,
        layer: str,
        target: int | None,
        filter: int | None,
        params: dict[str, object],
        region: str,
        progress: Progress | None,
        cancel: Cancel | None,
        maps: np.ndarray | None,
    ) -> None:
        self.volume, self.model, self.card = volume, model, card
        self.study_card = card.for_study(volume.voxels)  # the study's statistics, once per run
        self.method, self.layer, self.target, self.filter, self.params = method, layer, target, filter, params
        self.region, self.progress, self.cancel = region, progress, cancel
        self.outputs = np.empty((0,), dtype=np.float32)  # the model's outputs for the batch in hand
        self.maps = np.full(volume.shape, np.nan, dtype=np.float32) if maps is None else maps
        self.computed = np.zeros(volume.shape[0], dtype=bool)
        self.scores = np.empty((0, 0), dtype=np.float32)
        self.patches: list[tuple[int, ...]] = []
        self.cancelled = False
        self._segmentation = len(model.outputs[card.output].shape) > 2
        self._forward = compiled(model, ("runner_forward", card.output), _forward_output(card.output))

    def _explain(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The method's maps for a batch and the model's scores, with one pass of the model
        where the method gives its outputs and they are not needed beforehand: to choose the
        target, or for the region a segmentation model predicts."""
        needed_first = self.target is None or (self.region == "predicted" and self._segmentation)
        first = self._outputs_first(batch) if needed_first else None
        maps, outputs = self._method_maps(batch)
        if outputs is None:
            outputs = first if first is not None else self._forward_pass(batch)
        return maps, _class_scores(outputs)

    def _method_maps(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The method's map per sample over the model input's grid, with the model's outputs
        when the method computed them on the way (else None)."""
        method = self.method
        args: list[object] = [self.model, batch]
        keywords: dict[str, object] = dict(self.params)
        if method.uses_layer:
            args.append(self.layer)
        if method.uses_filter:
            args.append(self.filter)
        if method.uses_target:
            args.append(self.target)
            keywords["output"] = self.card.output
            if self.region == "predicted" and self._segmentation:
                keywords["mask"] = predicted_region(self.outputs, self.target)
        outputs = None
        if method.run_with_outputs is not None:
            maps, outputs = method.run_with_outputs(*args, **keywords)
        else:
            maps = method.run(*args, **keywords)
        if method.kind == "attribution":
            maps = per_voxel(maps, self.card)
        return maps, outputs

    def _outputs_first(self, batch: np.ndarray) -> np.ndarray:
        """The model's outputs before the method runs (kept for the predicted region); the
        target, if not chosen yet, from the batch's scores."""
        self.outputs = self._forward_pass(batch)
        if self.target is None:
            scores = _class_scores(self.outputs)
            self.target = 1 if scores.shape[-1] == 2 else int(np.argmax(scores.mean(axis=0)))
        return self.outputs

    def _forward_pass(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._forward(tf.constant(check_inputs(self.model, batch))))

    def _stop(self, done: int, total: int) -> bool:
        if self.progress is not None:
            self.progress(done, total)
        if self.cancel is not None and self.cancel():
            self.cancelled = True
        return self.cancelled

    def _checked(self, slices: Sequence[int]) -> list[int]:
        order = [int(z) for z in slices]
        if any(not 0 <= z < self.volume.shape[0] for z in order):
            raise ExplainError(f"Slices must lie in 0…{self.volume.shape[0] - 1}")
        return order

    def slices_2d(self, slices: Sequence[int], batch_size: int) -> None:
        order = self._checked(slices)
        grid = self.volume.shape[1:]
        done = 0
        for chunk in _batches(order, batch_size):
            batch = self.study_card.slice_input(self.volume.voxels, chunk)
            maps, scores = self._explain(batch)
            if self.scores.size == 0:
                self.scores = np.full((self.volume.shape[0], scores.shape[-1]), np.nan, dtype=np.float32)
            self.scores[list(chunk)] = scores
            self.maps[list(chunk)] = self.card.to_grid(maps, grid)
            self.computed[list(chunk)] = True
            done += len(chunk)
            if self._stop(done, len(order)):
                return

    def whole_volume(self) -> None:
        voxels = self.volume.voxels
        maps, self.scores = self._explain(self.study_card.volume_input(voxels))
        self.maps[...] = self.card.to_grid(maps, voxels.shape)[0]
        self.computed[:] = True
        self._stop(1, 1)

    def in_patches(self, extent: tuple[int, ...], slices: Sequence[int], batch_size: int) -> None:
        """The patches covering `slices`, those of earlier slices in the order first; overlaps
        averaged. A slice counts as computed once every patch covering it is in, so a cancelled
        run keeps only whole slices."""
        shape = self.volume.shape
        never = np.iinfo(np.int64).max
        rank = np.full(shape[0], never, dtype=np.int64)  # each slice's place in `slices`
        for position, z in reversed(list(enumerate(self._checked(slices)))):
            rank[z] = position

        def first_asked(corner: tuple[int, ...]) -> int:
            return int(rank[corner[0] : corner[0] + extent[0]].min())

        corners = sorted((c for c in patch_corners(shape, extent) if first_asked(c) < never), key=first_asked)
        wanted = rank < never
        needed = np.zeros(shape[0], dtype=np.int64)  # patches covering each slice
        for corner in corners:
            needed[corner[0] : corner[0] + extent[0]] += 1
        # The sums and counts of the overlapping maps, over the slices the patches span only:
        # a 2D card's run over a few slices of a large study needs no study-sized arrays.
        low = min((c[0] for c in corners), default=0)
        high = min(max((c[0] + extent[0] for c in corners), default=0), shape[0])
        total = np.zeros((high - low, *shape[1:]), dtype=np.float32)
        weight = np.zeros_like(total)
        arrived = np.zeros(shape[0], dtype=np.int64)
        scores = []
        for chunk in _batches(corners, batch_size):
            batch = np.concatenate(
                [self.study_card.patch_input(self.volume.voxels, c, extent) for c in chunk]
            )
            maps, batch_scores = self._explain(batch)
            scores.append(batch_scores)
            self.patches.extend(chunk)
            for corner, patch_map in zip(chunk, self.card.patch_to_grid(maps, extent), strict=True):
                region = tuple(slice(c, min(c + s, n)) for c, s, n in zip(corner, extent, shape, strict=True))
                spanned = (slice(region[0].start - low, region[0].stop - low), *region[1:])
                total[spanned] += patch_map[tuple(slice(0, r.stop - r.start) for r in region)]
                weight[spanned] += 1
                arrived[region[0]] += 1
            if self._stop(len(self.patches), len(corners)):
                break
        self.scores = np.concatenate(scores) if scores else np.empty((0, 0), dtype=np.float32)
        complete = wanted & (arrived == needed)
        seen = (weight > 0) & complete[low:high, None, None]
        self.maps[low:high][seen] = total[seen] / weight[seen]
        self.computed[:] = complete


def _class_scores(outputs: np.ndarray) -> np.ndarray:
    """(N, classes): the outputs as they are, or for segmentation each class's strongest voxel."""
    return outputs.reshape(len(outputs), -1, outputs.shape[-1]).max(axis=1)


def _forward_output(index: int) -> Callable:
    def make(model_ref: Callable[[], keras.Model]) -> Callable:
        def forward(x: tf.Tensor) -> tf.Tensor:
            outputs = model_ref()(x, training=False)
            return outputs[index] if isinstance(outputs, (list, tuple)) else outputs

        return forward

    return make


def _batches(items: Sequence, size: int) -> list[Sequence]:
    """`items` in consecutive runs of `size` (itertools.batched needs Python 3.12)."""
    return [items[k : k + size] for k in range(0, len(items), size)]


def patch_corners(shape: Sequence[int], patch: Sequence[int]) -> list[tuple[int, ...]]:
    """Patch origins covering `shape`, overlapping by PATCH_OVERLAP (one patch if it fits)."""
    starts = []
    for size, length in zip(shape, patch, strict=True):
        if size <= length:
            starts.append([0])
            continue
        step = max(1, int(length * (1 - PATCH_OVERLAP)))
        count = -(-(size - length) // step) + 1
        starts.append(sorted({round(k * (size - length) / (count - 1)) for k in range(count)}))
    return list(itertools.product(*starts))
