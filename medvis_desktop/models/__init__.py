"""The Keras side: load a model safely (Keras 3 and Keras 2 era files), inspect its layers.

The loading API is imported on first use, so that `models.card` (numpy only) stays light for
the GUI, which imports TensorFlow itself once the window shows.
"""

from typing import Any

__all__ = ["MissingCustomObjectError", "UnsafeModelError", "load_custom_objects", "load_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from medvis_desktop.models import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
