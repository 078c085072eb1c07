"""The Keras side: load a model safely (Keras 3 and Keras 2 era files), inspect its layers.

The loading API is imported on first use, so that `models.card` (numpy only) stays light for
the GUI, which imports TensorFlow itself once the window shows.
"""

import os
from typing import Any

# A GradientTape through a Keras 2 mini-Xception crashed (double free) with oneDNN on: see DESIGN.md.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__all__ = ["MissingCustomObjectError", "UnsafeModelError", "load_custom_objects", "load_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from medvis_desktop.models import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
