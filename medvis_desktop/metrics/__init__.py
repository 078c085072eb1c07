"""How good an explanation is: faithfulness, localisation and sanity, 2D and 3D; no Qt.

    deletion(model, inputs, maps, target, *, steps=10, baseline=0.0, sigma=5.0, score="output",
             batch_size=32, output=None, mask=None) -> Curve(curve (N, steps + 1), auc (N,))
    insertion(...) -> Curve, the same arguments
    mu_fidelity(model, inputs, maps, target, *, grid=9, subset=0.2, samples=128, baseline=0.0,
                sigma=5.0, seed=0, score="output", batch_size=32, output=None, mask=None) -> (N,)
    pointing_game(maps, reference, spacing, tolerance_mm=5.0) -> (N,) 1 / 0 / NaN
    energy_inside(maps, reference) -> (N,) share of the positive mass inside, or NaN
    randomisation_cascade(model, inputs, method, target=None, *, layer=None, params=None,
                          seed=0, progress=None, cancel=None) -> Cascade(rows, maps, cancelled)

inputs, target, output and mask as the methods take them; maps (N, *spatial) or shaped like
the inputs (channels averaged); score "output" (after the model's softmax/sigmoid) or "logit".
Every bad argument raises MetricError.
"""

from __future__ import annotations

from medvis_desktop.metrics.base import SCORES, MetricError
from medvis_desktop.metrics.faithfulness import Curve, deletion, gaussian_blur, insertion, mu_fidelity
from medvis_desktop.metrics.localisation import TOLERANCE_MM, energy_inside, pointing_game
from medvis_desktop.metrics.sanity import (
    INSENSITIVE_SPEARMAN,
    Cascade,
    CascadeStep,
    randomisation_cascade,
    ssim,
)

__all__ = [
    "INSENSITIVE_SPEARMAN",
    "SCORES",
    "TOLERANCE_MM",
    "Cascade",
    "CascadeStep",
    "Curve",
    "MetricError",
    "deletion",
    "energy_inside",
    "gaussian_blur",
    "insertion",
    "mu_fidelity",
    "pointing_game",
    "randomisation_cascade",
    "ssim",
]
