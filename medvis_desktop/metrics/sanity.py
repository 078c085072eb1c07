"""The randomisation cascade of Adebayo et al. 2018: does an explanation depend on the weights?

A copy of the model has its layers re-initialised one after another, cumulatively, from the
head down to the input; after each step the method's maps are compared with the original
maps by Spearman's rank correlation and by the structural similarity (SSIM) of the maps
normalised to [0, 1]. Maps that stay alike while the model is destroyed show the image, not
what the model learnt. The user's model is never touched.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np

from medvis_desktop.explain import METHODS, Method
from medvis_desktop.metrics.base import MetricError, metric_errors
from medvis_desktop.metrics.faithfulness import gaussian_blur, spearman
from medvis_desktop.models.layers import iter_layers

# insensitive(): a method whose maps keep a mean rank correlation of at least this with the
# original maps at every step has not decorrelated anywhere in the cascade. 0.5 is the bar the
# project's sanity test (tests/explain/test_sanity.py) sets for a decorrelated Grad-CAM.
INSENSITIVE_SPEARMAN = 0.5
_copies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (clone, lock)
_copies_lock = threading.Lock()

# SSIM as Wang et al. 2004 define it: Gaussian weights of sigma 1.5 samples, K1, K2, on maps
# of data range 1.
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# Keras weights whose initializer attribute is not "<weight name>_initializer".
_INITIALIZER_ATTRIBUTE = {
    "depthwise_kernel": "depthwise_initializer",
    "pointwise_kernel": "pointwise_initializer",
    "recurrent_kernel": "recurrent_initializer",
}


@dataclass(frozen=True)
class CascadeStep:
    """The comparison after re-initialising `layer` (and every layer above it)."""

    layer: str  # its path, "outer/inner" inside nested models
    spearman: np.ndarray  # float64 (N,); NaN where a map is constant and has no ranking
    ssim: np.ndarray  # float64 (N,)

    @property
    def spearman_mean(self) -> float:
        """The mean over the samples whose correlation is defined; NaN when none is."""
        defined = self.spearman[np.isfinite(self.spearman)]
        return float(defined.mean()) if defined.size else float("nan")


@dataclass(frozen=True)
class Cascade:
    """The per-layer table, and the maps for the picture: maps[0] is the original model's,
    maps[k] the one after rows[k - 1], each (N, *spatial) as compared (see randomisation_cascade)."""

    rows: tuple[CascadeStep, ...]
    maps: np.ndarray  # float32 (len(rows) + 1, N, *spatial)
    cancelled: bool = False  # stopped early: rows holds the steps done

    def insensitive(self, threshold: float = INSENSITIVE_SPEARMAN) -> bool:
        """True when the maps barely changed: the mean rank correlation with the original stays
        at or above `threshold` at every step done. A step whose maps all became constant
        (no correlation defined) counts as a change."""
        return bool(self.rows) and all(row.spearman_mean >= threshold for row in self.rows)


def randomisation_cascade(
    model: keras.Model,
    inputs: object,
    method: str,
    target: int | Sequence[int] | None = None,
    *,
    layer: str | None = None,
    params: Mapping[str, object] | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Cascade:
    """Re-initialise a copy of `model` layer by layer from the head down and compare each
    step's maps of `method` (an explain.METHODS name) with the original ones.

    The method runs as run(copy, inputs, [layer=layer,] [target=target,] **params): `layer`
    when it uses one, `target` when it explains a class (ignored otherwise), params its other
    keywords (its declared parameters, output=, mask=, filter=...). Activation maps are refused:
    they show a layer's features, not evidence for a decision.

    Every layer with weights is a step, nested models' layers included, in reverse model
    order; each weight gets a fresh draw of the layer's own initializer, seeded from `seed`
    (batch norm goes back to identity). Weights without an initializer (a Normalization
    layer's adapted statistics) stay, and a layer with only those is no step.

    Maps are compared per sample: CAMs as they are, signed attributions by their magnitude
    with the channels averaged. Spearman's correlation ranks the voxels (ties share their
    mean rank); SSIM compares the maps min-max normalised to [0, 1] (a constant map becomes
    0). progress(done, total) follows every map computed, the original's included;
    cancel() is asked before each step, and a cancelled cascade returns the rows done.
    """
    entry = _method(method)
    arguments = dict(params or {})
    if entry.uses_layer:
        if layer is None:
            raise MetricError(f"{entry.label} explains a layer: give layer= (a path such as 'conv3').")
        arguments["layer"] = layer
    if entry.uses_target:
        if target is None:
            raise MetricError(f"{entry.label} explains a class: give the target class.")
        arguments["target"] = target
    try:
        inspect.signature(entry.run).bind(model, inputs, **arguments)
    except TypeError as error:
        raise MetricError(f"{entry.label} cannot take these parameters: {error}.") from None

    copy, in_use = _working_copy(model)
    with in_use:
        copy.set_weights(model.get_weights())  # the trained weights again, whatever a cascade left
        return _cascade(copy, inputs, entry, arguments, seed, progress, cancel)


def _cascade(
    copy: keras.Model,
    inputs: np.ndarray,
    entry: Method,
    arguments: dict[str, object],
    seed: int,
    progress: Callable[[int, int], None] | None,
    cancel: Callable[[], bool] | None,
) -> Cascade:
    steps = _reinitialisable(copy)[::-1]
    rng = np.random.default_rng(seed)

    def explain() -> np.ndarray:
        with metric_errors():
            return _comparable(entry.run(copy, inputs, **arguments), entry.kind)

    maps = [explain()]
    if progress is not None:
        progress(1, len(steps) + 1)
    original, original_unit = maps[0].reshape(len(maps[0]), -1), _unit(maps[0])
    rows: list[CascadeStep] = []
    for path, weights in steps:
        if cancel is not None and cancel():
            break
        for weight, initializer in weights:
            fresh = _seeded(initializer, int(rng.integers(2**31)))
            weight.assign(fresh(tuple(weight.shape), dtype=weight.dtype))
        maps.append(explain())
        rho = spearman(original, maps[-1].reshape(len(maps[-1]), -1))
        rows.append(CascadeStep(path, rho, ssim(original_unit, _unit(maps[-1]))))
        if progress is not None:
            progress(len(maps), len(steps) + 1)
    return Cascade(tuple(rows), np.stack(maps), cancelled=len(rows) < len(steps))


def _working_copy(model: keras.Model) -> tuple[keras.Model, threading.Lock]:
    """The clone of `model` its cascades re-initialise, made once per model with a lock for its
    use: the methods' compiled functions are cached per model object (explain.graph.compiled), so
    a fresh clone per cascade traced them all again (about a second per call on the demo CNNs).
    The clone lives as long as the model does."""
    with _copies_lock:
        if model not in _copies:
            _copies[model] = (keras.models.clone_model(model), threading.Lock())
        return _copies[model]


def ssim(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Mean structural similarity per sample of two batches (N, *spatial) of maps in [0, 1].

    Wang et al. 2004 with data range 1: local means, variances and covariance under a Gaussian
    window (sigma 1.5 voxels along each axis, 2D or 3D), combined voxel by voxel and averaged
    over the whole map. The window is faithfulness.gaussian_blur's: truncated at 4 sigma (13
    taps, scipy's default) rather than Wang's 11 (weights below 2e-4 of the total), borders
    mirrored (d c b a | a b c d). Wang crops the borders instead; explanation maps are often
    smaller than a window (layer-resolution CAMs, 8³ volumes), so every voxel counts here.
    """
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)

    def local_mean(values: np.ndarray) -> np.ndarray:
        return gaussian_blur(values[..., None], SSIM_SIGMA)[..., 0].astype(np.float64)

    c1, c2 = SSIM_K1**2, SSIM_K2**2
    mean_a, mean_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mean_a**2
    var_b = local_mean(b * b) - mean_b**2
    covariance = local_mean(a * b) - mean_a * mean_b
    similarity = ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / (
        (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)
    )
    return similarity.reshape(len(similarity), -1).mean(axis=1)


def _method(name: str) -> Method:
    if name not in METHODS:
        raise MetricError(f"Unknown method '{name}'; available: {', '.join(METHODS)}.")
    entry = METHODS[name]
    if entry.kind == "features":
        raise MetricError(
            f"{entry.label} show what a layer computes, not evidence for a decision, and depend "
            "only on the layers below it: the randomisation cascade tests explanation methods."
        )
    return entry


def _comparable(maps: np.ndarray, kind: str) -> np.ndarray:
    """(N, *spatial) float32: signed attributions (N, *spatial, C) by their magnitude, channels
    averaged; CAMs as they are."""
    values = np.asarray(maps, dtype=np.float32)
    return np.abs(values).mean(axis=-1) if kind == "attribution" else values


def _unit(maps: np.ndarray) -> np.ndarray:
    """Each map min-max normalised to [0, 1] in float64; a constant map becomes 0."""
    maps = maps.astype(np.float64)
    axes = tuple(range(1, maps.ndim))
    low, high = maps.min(axis=axes, keepdims=True), maps.max(axis=axes, keepdims=True)
    span = high - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1.0), 0.0)


def _reinitialisable(
    model: keras.Model,
) -> list[tuple[str, list[tuple[keras.Variable, keras.initializers.Initializer]]]]:
    """The layers in model order, nested models walked, that have weights with an initializer,
    each with those weights."""
    found = []
    for path, layer in iter_layers(model):
        if isinstance(layer, keras.Model):
            continue
        weights = [(w, init) for w in layer.weights if (init := _initializer(layer, w.name)) is not None]
        if weights:
            found.append((path, weights))
    return found


def _initializer(layer: keras.layers.Layer, weight: str) -> keras.initializers.Initializer | None:
    attribute = _INITIALIZER_ATTRIBUTE.get(weight, f"{weight}_initializer")
    found = getattr(layer, attribute, None)
    if found is None and weight == "kernel":  # DepthwiseConv's kernel
        found = getattr(layer, "depthwise_initializer", None)
    return found if isinstance(found, keras.initializers.Initializer) else None


def _seeded(initializer: keras.initializers.Initializer, seed: int) -> keras.initializers.Initializer:
    """The same initializer with a fixed seed: a random one draws the same values every time
    (Keras initializers with an integer seed are stateless), never from the global state."""
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    return type(initializer).from_config({**config, "seed": seed})
