"""How faithful, how well placed and how sane each method's maps are on a study: the engine of
`medvis evaluate`. No Qt.

For each method, explain_volume runs over the slices (the maps on the study's grid, the model's
scores, the target and layer it chose). Then, slice by slice, the method runs once more on that
slice's model input (SliceRun.model_input, a batch of one, timed: `seconds`), so that the maps the
metrics rank are on the grid the metrics perturb, with no resampling in between; deletion and
insertion AUCs and MuFidelity are computed on that batch. With a reference mask, the pointing
game and the energy inside use the study-grid maps and the mask, with the study's spacing in
mm. Last, the randomisation cascade runs on the key slice (the highest score for the target).
The window measures the slice on screen with the same per-slice functions: SliceRun (how a
method makes one slice's map), measure_slice, reference_scores and slice_cascade.

A 3D model has no input of its own per slice: a slice is measured on the model input behind
its score on the track (SliceRun.input_key): the highest-scoring patch covering it, or the whole
volume for a card that resizes it. Slices that share that input share its measures, computed
once; the CSV's model_input column names it. A reference is a NIfTI, NRRD or MetaImage mask
(nonzero inside) on the study's grid, or on a grid that only reorders or flips its axes
(resampled exactly), or a DICOM SEG whose frames lie on the study's slices (one segment or all).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import keras
import numpy as np

from medvis_desktop import imaging
from medvis_desktop.arrays import resize_linear
from medvis_desktop.errors import MedvisError
from medvis_desktop.explain import METHODS
from medvis_desktop.explain.graph import resolve
from medvis_desktop.explain.runner import REGIONS, Explanation, explain_volume, per_voxel, predicted_region
from medvis_desktop.explain.slice_inputs import Corner, SliceInputs, scored_patches
from medvis_desktop.imaging import dicom_seg
from medvis_desktop.imaging.volume import Volume
from medvis_desktop.metrics import (
    INSENSITIVE_SPEARMAN,
    TOLERANCE_MM,
    Cascade,
    Curve,
    deletion,
    energy_inside,
    insertion,
    mu_fidelity,
    pointing_game,
    randomisation_cascade,
)
from medvis_desktop.metrics.base import check_count
from medvis_desktop.models.card import ModelCard, crop_or_pad, default_card_for
from medvis_desktop.models.layers import default_gradcam_layer, iter_layers, output_shape

Progress = Callable[[int, int], None]
# Two grids are the same when no voxel centre of one lies farther than this from the other's.
GRID_TOLERANCE_MM = 0.05
DIRECTION_TOLERANCE = 1e-4  # |cos| of matching axes must reach 1 - this to be taken as parallel


class EvaluateError(MedvisError):
    """An evaluation that cannot run as asked (a method without a class map, a mask off the grid)."""


@dataclass(frozen=True)
class Row:
    """One slice and method: the CSV's row. NaN where a value is not defined (no reference)."""

    slice: int
    method: str
    score: float  # the model's output for the target
    deletion_auc: float
    insertion_auc: float
    mu_fidelity: float
    pointing_game: float
    energy_inside: float
    seconds: float  # the method on this slice's model input alone (a batch of one)
    model_input: str  # what was perturbed: "slice", "patch at z y x" or "whole volume" (3D)


@dataclass
class MethodResult:
    """A method's curves and cascade; rows are in Evaluation.rows."""

    method: str
    label: str
    layer: str
    signed: bool
    parameters: dict[str, object]
    deletion: np.ndarray  # float64 (slices, steps + 1)
    insertion: np.ndarray
    cascade: Cascade


@dataclass
class Evaluation:
    slices: list[int]
    target: int
    class_name: str
    key_slice: int
    rows: list[Row]
    methods: list[MethodResult]
    card: ModelCard
    settings: dict[str, object]  # the metrics' parameters, as recorded
    assumptions: list[str] = field(default_factory=list)


def parse_methods(text: str) -> list[str]:
    """'grad_cam,layer_cam' -> the names, checked: known, each once, each giving a class map."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise EvaluateError("--methods takes a comma-separated list of methods, e.g. grad_cam,layer_cam")
    for name in names:
        try:
            check_evidence(name)
        except EvaluateError as error:
            raise EvaluateError(f"{error}; leave it out of --methods") from None
    if len(set(names)) < len(names):
        raise EvaluateError(f"--methods names a method twice: {text}")
    return names


def check_evidence(name: str) -> None:
    """Refuse a method the metrics cannot score: unknown, or giving feature maps, not evidence."""
    if name not in METHODS:
        raise EvaluateError(f"Unknown method '{name}'; available: {', '.join(METHODS)}")
    if METHODS[name].kind == "features":
        raise EvaluateError(
            f"{name} gives a layer's feature maps, not a map of evidence for a class: the metrics need one"
        )


def load_reference(
    path: Path | str,
    volume: Volume,
    *,
    segment: int | None = None,
    read: Callable[[Path], Volume] = imaging.load,
) -> np.ndarray:
    """The mask at `path` as bool (z, y, x) on the study's grid. A DICOM SEG is placed frame by
    frame on the study's slices (imaging.dicom_seg), `segment` choosing one of its segments (None:
    all of them); any other file is a mask volume (reference_on_grid). `read`: how to open a mask
    volume (the window reads native formats in a child process)."""
    path = Path(path)
    if dicom_seg.is_seg(path):
        return dicom_seg.seg_mask(path, volume, segment)
    if segment is not None:
        raise EvaluateError(f"{path.name} is not a DICOM SEG: only a SEG has segments to choose from")
    return reference_on_grid(read(path), volume, name=path.name)


def reference_on_grid(mask: Volume, volume: Volume, *, name: str = "The reference mask") -> np.ndarray:
    """The mask's voxels (nonzero: inside) on the study's grid; an exact resample when the mask's
    grid is the study's with its axes reordered or flipped; else one line saying what differs."""
    candidate = _reordered(mask, volume)
    problems = _grid_differences(mask if candidate is None else candidate, volume)
    if problems or candidate is None:
        problems = problems or ["axes not parallel to the study's (a rotated grid)"]
        raise EvaluateError(
            f"{name} does not lie on the study's grid: {'; '.join(problems)}. It cannot be resampled "
            "exactly (only reordered or flipped axes can): give a mask made on this study"
        )
    return np.asarray(candidate.voxels) != 0


def _reordered(mask: Volume, volume: Volume) -> Volume | None:
    """The mask with its axes permuted and flipped to run along the study's; None when its axes
    are not parallel to the study's."""
    order, signs = [], []
    for k in range(3):
        cosines = mask.direction.T @ volume.direction[:, k]
        j = int(np.argmax(np.abs(cosines)))
        if abs(cosines[j]) < 1 - DIRECTION_TOLERANCE or j in order:
            return None
        order.append(j)
        signs.append(1.0 if cosines[j] > 0 else -1.0)
    voxels = np.transpose(mask.voxels, order)
    corner = np.zeros(3)
    for k, sign in enumerate(signs):
        if sign < 0:
            voxels = np.flip(voxels, axis=k)
            corner[order[k]] = mask.shape[order[k]] - 1
    return Volume(
        voxels=voxels,
        spacing=tuple(mask.spacing[j] for j in order),
        origin=tuple(mask.index_to_patient(corner)),
        direction=mask.direction[:, order] * np.asarray(signs),
    )


def _grid_differences(mask: Volume, volume: Volume) -> list[str]:
    """What differs between two grids, in words (empty: the same within GRID_TOLERANCE_MM)."""
    found = []
    if mask.shape != volume.shape:
        found.append(f"size (z × y × x) {_joined(mask.shape)} vs the study's {_joined(volume.shape)}")
    reach = np.maximum(np.asarray(volume.shape) - 1, 1)
    if (np.abs(np.subtract(mask.spacing, volume.spacing)) * reach > GRID_TOLERANCE_MM).any():
        found.append(f"spacing {_joined(mask.spacing)} mm vs the study's {_joined(volume.spacing)} mm")
    if np.linalg.norm(np.subtract(mask.origin, volume.origin)) > GRID_TOLERANCE_MM:
        found.append(
            f"origin ({_joined(mask.origin, ', ')}) mm vs the study's ({_joined(volume.origin, ', ')}) mm"
        )
    extent = np.asarray(volume.spacing) * reach
    if (np.linalg.norm(mask.direction - volume.direction, axis=0) * extent > GRID_TOLERANCE_MM).any():
        found.append("axes not parallel to the study's (a rotated grid)")
    return found


def _joined(values: Sequence[float], separator: str = " × ") -> str:
    return separator.join(str(v) if isinstance(v, int | np.integer) else f"{v:.6g}" for v in values)


def model_grid_maps(
    maps: np.ndarray, card: ModelCard, batch_shape: Sequence[int], study_yx: Sequence[int]
) -> np.ndarray:
    """(N, *model spatial) maps for the metrics: one map per image on the model input's grid as
    they are, attributions shaped like the inputs reduced to one value per voxel (as the study's
    map is), maps on the study's slice grid brought to the model's as the card brings slices."""
    maps = np.asarray(maps, dtype=np.float32)
    count, *spatial, _ = batch_shape
    if maps.shape == tuple(batch_shape):
        return per_voxel(maps, card)
    if maps.shape == (count, *spatial):
        return maps
    if maps.shape == (count, *study_yx):
        if card.resize == "resize":
            return resize_linear(maps, spatial, axes=(1, 2))
        return crop_or_pad(maps, spatial, (1, 2))
    raise EvaluateError(
        f"A map of shape {maps.shape} matches neither the model's input grid {(count, *spatial)} "
        f"nor the study's slices {(count, *study_yx)}"
    )


def evaluate(
    volume: Volume,
    model: keras.Model,
    methods: Sequence[str],
    *,
    card: ModelCard | None = None,
    reference: np.ndarray | None = None,
    slices: Sequence[int] | None = None,
    layer: str | None = None,
    target: int | None = None,
    params: Mapping[str, Mapping[str, object]] | None = None,
    steps: int = 10,
    samples: int = 128,
    baseline: float | str = 0.0,
    region: str = "all",
    progress: Progress | None = None,
) -> Evaluation:
    """Every method of `methods` over `slices` (default: all) of `volume`: a Row per slice and
    method, the deletion/insertion curves, and the cascade of the key slice. `reference`:
    bool (z, y, x) on the study's grid (load_reference). `params`: per method, its declared
    parameters. `region`: a segmentation output's region explained and scored (explain_volume's).
    `progress(done, total)` counts estimated forward passes over all the work."""
    steps = check_count(steps, "steps", "points of the deletion and insertion curves after the first")
    samples = check_count(samples, "samples", "random subsets of cells for MuFidelity")
    names = parse_methods(",".join(methods))
    assumptions: list[str] = []
    if card is None:
        card, assumptions = default_card_for(model)
    order = list(range(volume.shape[0])) if slices is None else [int(z) for z in slices]
    if not order or min(order) < 0 or max(order) >= volume.shape[0]:
        raise EvaluateError(f"The slices to evaluate must lie in 0:{volume.shape[0]} and not be empty")
    if reference is not None and np.shape(reference) != volume.shape:
        raise EvaluateError(f"The reference has shape {np.shape(reference)}, the study {volume.shape}")
    params = {name: dict((params or {}).get(name, {})) for name in names}
    settings = dict(
        steps=steps, samples=samples, baseline=baseline, score="output", mu_fidelity_grid=9,
        mu_fidelity_subset=0.2, pointing_tolerance_mm=TOLERANCE_MM, reference=reference is not None,
        insensitive_spearman=INSENSITIVE_SPEARMAN,
    )  # fmt: skip
    weights = {name: _passes(model, card, name, layer, params[name]) for name in names}
    tally = _Tally(progress, _maps_in_cascade(model), 2 * (steps + 1) + samples + 1)
    tally.total = sum(
        (len(order) * (2 * w + tally.metric) + tally.cascade_maps * w) for w in weights.values()
    )
    rows: list[Row] = []
    results: list[MethodResult] = []
    key = -1
    for name in names:
        explanation = explain_volume(
            volume, model, name, card=card, layer=layer, target=target, slices=order,
            progress=tally.reporter(weights[name]), batch_size=1, params=params[name], region=region,
        )  # fmt: skip
        target = explanation.target
        if key < 0:
            scores = explanation.slice_scores()[order]
            key = order[int(np.nanargmax(scores))] if np.isfinite(scores).any() else order[0]
        method_rows, result = _measure(volume, model, explanation, order, reference, key, settings, tally)
        rows += method_rows
        results.append(result)
    tally.finish()
    return Evaluation(
        slices=order, target=int(target), class_name=card.class_name(int(target)), key_slice=key,
        rows=sorted(rows, key=lambda row: (row.slice, names.index(row.method))), methods=results,
        card=card, settings=settings, assumptions=assumptions,
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class SliceRun(SliceInputs):
    """A method as it makes one slice's map on the model input's grid (SliceInputs: the input
    a slice is measured on): what the per-slice metrics run again, time and score."""

    method: str
    arguments: dict[str, object]  # method.run's keywords: layer, filter, target, output, parameters
    target: int  # the class whose score the metrics follow
    region: str = "all"  # a segmentation output's region explained and scored (explain_volume's)

    @classmethod
    def of(cls, explanation: Explanation) -> SliceRun:
        """The run that gives explain_volume's map of a slice."""
        declared = {param.name for param in METHODS[explanation.method].params}
        return cls.make(
            explanation.card, explanation.method, layer=explanation.layer, target=explanation.target,
            filter=explanation.filter,
            params={k: v for k, v in explanation.parameters.items() if k in declared},
            patches=scored_patches(explanation), region=str(explanation.parameters.get("region", "all")),
            extent=explanation.patch_extent,
        )  # fmt: skip

    @classmethod
    def make(
        cls,
        card: ModelCard,
        method: str,
        *,
        layer: str | None,
        target: int,
        filter: int | None = None,
        params: Mapping[str, object] | None = None,
        patches: Sequence[tuple[Corner, float]] = (),
        region: str = "all",
        extent: Sequence[int] | None = None,
    ) -> SliceRun:
        """`method` with `params` (its declared parameters), on `layer` and `filter` when it uses
        them, explaining (or at least scored for) class `target`. `patches`: a 3D run's patch
        corners with their scores for `target`, which choose the patch a slice is measured on.
        `region`: for a segmentation output, "predicted" explains and scores where the model
        predicts `target` (Seg-Grad-CAM, as explain_volume does), "all" the whole output.
        `extent`: ModelCard.patch_extent at the study's spacing, needed for a card with patch_mm."""
        check_evidence(method)
        entry = METHODS[method]
        arguments: dict[str, object] = dict(params or {})
        if entry.uses_layer:
            arguments["layer"] = layer
        if entry.uses_filter and filter is not None:
            arguments["filter"] = filter
        if entry.uses_target:
            arguments.update(target=target, output=card.output)
        if region not in REGIONS:
            raise EvaluateError(f"Unknown region '{region}'; use one of {', '.join(REGIONS)}")
        if extent is None and card.patch_mm is not None:
            raise EvaluateError("A model card with patch_mm needs the patch extent at the study's spacing")
        extent = card.patch_extent((1.0, 1.0, 1.0)) if extent is None else tuple(extent)
        return cls(
            card,
            extent,
            tuple(patches),
            method=method,
            arguments=arguments,
            target=int(target),
            region=region,
        )

    def scored_region(self, model: keras.Model, batch: np.ndarray) -> np.ndarray | None:
        """The mask the method explains and the metrics score on `batch` (Seg-Grad-CAM's region,
        kept fixed while the metrics perturb the input): where a segmentation model predicts the
        target on the unperturbed input; None (the whole output) for region "all" or a classifier."""
        if self.region != "predicted" or len(model.outputs[self.card.output].shape) <= 2:
            return None
        outputs = model(batch, training=False)
        if isinstance(outputs, list | tuple):
            outputs = outputs[self.card.output]
        return predicted_region(keras.ops.convert_to_numpy(outputs), self.target)

    def method_arguments(self, mask: np.ndarray | None) -> dict[str, object]:
        """The method's keywords, with the scored region when there is one and the method explains
        a class (a deconvnet explains a layer's filters: the region only scores its maps)."""
        if mask is None or not METHODS[self.method].uses_target:
            return self.arguments
        return {**self.arguments, "mask": mask}


@dataclass(frozen=True)
class SliceMeasures:
    """A method's faithfulness on one slice's model input."""

    slice: int
    maps: np.ndarray  # float32 (1, *model spatial): the map the metrics ranked
    deletion: Curve
    insertion: Curve
    mu_fidelity: float
    seconds: float  # the method on this slice's model input alone (a batch of one)
    model_input: str  # SliceRun.describe_input: a slice, a 3D patch or the whole volume

    def values(self) -> tuple[float, float, float]:
        """Deletion AUC, insertion AUC, MuFidelity: the CSV's faithfulness columns."""
        return self.deletion_auc, self.insertion_auc, self.mu_fidelity

    @property
    def deletion_auc(self) -> float:
        return float(self.deletion.auc[0])

    @property
    def insertion_auc(self) -> float:
        return float(self.insertion.auc[0])


def measure_slice(
    volume: Volume,
    model: keras.Model,
    run: SliceRun,
    z: int,
    *,
    steps: int = 10,
    samples: int = 128,
    baseline: float | str = 0.0,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> SliceMeasures | None:
    """Deletion, insertion and MuFidelity of `run`'s map of slice `z` on the model input's grid:
    the method runs once more, on that slice's model input alone (a 3D model's patch or volume,
    SliceRun.input_key; timed), so that the map the metrics rank is on the grid they perturb.
    progress(done, total) counts forward passes (the method as one); cancel() is asked after
    the method and after each metric: a cancelled measure is None."""
    card = run.card
    batch = run.model_input(volume.voxels, z)
    mask = run.scored_region(model, batch)
    common = {"baseline": baseline, "output": card.output, "mask": mask}
    total = 2 * (steps + 1) + samples + 2

    def stopped(done: int) -> bool:
        if progress is not None:
            progress(done, total)
        return cancel is not None and cancel()

    started = time.perf_counter()
    raw = METHODS[run.method].run(model, batch, **run.method_arguments(mask))
    seconds = time.perf_counter() - started
    maps = model_grid_maps(raw, card, batch.shape, volume.shape[1:])
    if stopped(1):
        return None
    deleted = deletion(model, batch, maps, run.target, steps=steps, **common)
    if stopped(steps + 2):
        return None
    inserted = insertion(model, batch, maps, run.target, steps=steps, **common)
    if stopped(2 * steps + 3):
        return None
    fidelity = mu_fidelity(model, batch, maps, run.target, samples=samples, **common)
    stopped(total)
    described = run.describe_input(run.input_key(z, volume.shape))
    return SliceMeasures(z, maps, deleted, inserted, float(fidelity[0]), seconds, described)


def reference_scores(
    maps: np.ndarray, reference: np.ndarray, spacing_yx: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """The pointing game and the energy inside (N,) of maps on the study's grid (N, y, x)
    against the reference's slices (N, y, x). NaN (outside a cropped model input) is no
    evidence there: each map's lowest value, at most 0."""
    maps = np.asarray(maps, dtype=np.float32)
    floor = np.minimum(0.0, np.nanmin(maps, axis=(1, 2), keepdims=True))
    filled = np.where(np.isnan(maps), floor, maps)
    return pointing_game(filled, reference, spacing_yx), energy_inside(filled, reference)


def slice_cascade(
    volume: Volume,
    model: keras.Model,
    run: SliceRun,
    z: int,
    *,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Cascade:
    """The randomisation cascade of `run`'s method on slice z's model input (progress and
    cancel as randomisation_cascade takes them), its maps cut to slice z's plane for the picture."""
    batch = run.model_input(volume.voxels, z)
    arguments = run.method_arguments(run.scored_region(model, batch))
    cascade = randomisation_cascade(
        model,
        batch,
        run.method,
        run.target,
        layer=arguments.get("layer"),
        params={k: v for k, v in arguments.items() if k not in ("layer", "target")},
        progress=progress,
        cancel=cancel,
    )
    return replace(cascade, maps=run.plane(cascade.maps, z, volume.shape))


def _measure(
    volume: Volume,
    model: keras.Model,
    explanation: Explanation,
    order: list[int],
    reference: np.ndarray | None,
    key: int,
    settings: dict[str, object],
    tally: _Tally,
) -> tuple[list[Row], MethodResult]:
    """The metrics of one method, slice by slice, then its cascade on the key slice."""
    run = SliceRun.of(explanation)
    chosen = {name: settings[name] for name in ("steps", "samples", "baseline")}
    by_input: dict[Corner, SliceMeasures] = {}  # slices of a 3D model share their patch's measures
    measured = []
    for z in order:
        where = run.input_key(z, volume.shape)
        if where not in by_input:
            by_input[where] = measure_slice(volume, model, run, z, **chosen)
        measured.append(by_input[where])
        tally.add(tally.weight + tally.metric)
    pointing = energy = np.full(len(order), np.nan)
    if reference is not None:
        pointing, energy = reference_scores(explanation.maps[order], reference[order], volume.spacing[1:])
    name, scores = explanation.method, explanation.slice_scores()
    rows = [
        Row(z, name, float(scores[z]), *m.values(), p, e, m.seconds, m.model_input)
        for z, m, p, e in zip(order, measured, pointing.tolist(), energy.tolist(), strict=True)
    ]
    cascade = slice_cascade(volume, model, run, key, progress=tally.reporter(tally.weight, cascade=True))
    return rows, MethodResult(
        method=explanation.method, label=explanation.label, layer=explanation.layer,
        signed=explanation.signed, parameters=dict(explanation.parameters),
        deletion=np.stack([m.deletion.curve[0] for m in measured]),
        insertion=np.stack([m.insertion.curve[0] for m in measured]), cascade=cascade,
    )  # fmt: skip


def _passes(model: keras.Model, card: ModelCard, name: str, layer: str | None, params: dict) -> int:
    """About how many forward passes the method costs per image (1 for one pass and a gradient)."""
    method = METHODS[name]
    if method.cost is None:
        return 1
    try:
        shape = output_shape(resolve(model, layer or default_gradcam_layer(model) or "").layer)
        channels = int(shape[-1]) if method.uses_layer and shape else 0
        return max(1, int(method.cost(method.parameters(params), card.spatial_shape, channels)))
    except (MedvisError, TypeError, ValueError):  # explain_volume reports a bad layer or parameter
        return 1


def _maps_in_cascade(model: keras.Model) -> int:
    """About how many maps the randomisation cascade computes: one per layer with weights, + 1."""
    return 1 + sum(1 for _, lay in iter_layers(model) if lay.weights and not isinstance(lay, keras.Model))


class _Tally:
    """Progress over the whole evaluation, in estimated forward passes: a method's image costs
    `weight` passes, the metrics of a slice `metric`."""

    def __init__(self, progress: Progress | None, cascade_maps: int, metric: int) -> None:
        self.progress, self.cascade_maps, self.metric = progress, cascade_maps, metric
        self.total = self.done = 0
        self.weight = 1

    def add(self, units: int) -> None:
        self.done += units
        if self.progress is not None:
            self.progress(min(self.done, self.total - 1), self.total)  # the end only once all is done

    def reporter(self, weight: int, *, cascade: bool = False) -> Progress:
        """A callback for work counted in images of `weight` passes each; a cascade's first
        report gives its true number of maps, which replaces the estimate."""
        self.weight = weight
        seen = [0]

        def report(done: int, total: int) -> None:
            if cascade and not seen[0]:
                self.total = max(self.total + (total - self.cascade_maps) * weight, self.done + 1)
            self.add((done - seen[0]) * weight)
            seen[0] = done

        return report

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.total, self.total)
