"""How good an explanation is: faithfulness metrics, 2D and 3D; no Qt.

    deletion(model, inputs, maps, target, *, steps=10, baseline=0.0, sigma=5.0, score="output",
             batch_size=32, output=None, mask=None) -> Curve(curve (N, steps + 1), auc (N,))
    insertion(...) -> Curve, the same arguments
    mu_fidelity(model, inputs, maps, target, *, grid=9, subset=0.2, samples=128, baseline=0.0,
                sigma=5.0, seed=0, score="output", batch_size=32, output=None, mask=None) -> (N,)

inputs, target, output and mask as the methods take them; maps (N, *spatial) or shaped like
the inputs (channels averaged); score "output" (after the model's softmax/sigmoid) or "logit".
Every bad argument raises MetricError.
"""

from __future__ import annotations

from medvis_desktop.metrics.base import SCORES, MetricError
from medvis_desktop.metrics.faithfulness import Curve, deletion, gaussian_blur, insertion, mu_fidelity

__all__ = ["SCORES", "Curve", "MetricError", "deletion", "gaussian_blur", "insertion", "mu_fidelity"]
