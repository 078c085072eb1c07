"""Exports other viewers open, each with its provenance record. No Qt.

The public names load their submodule on first use (PEP 562 `__getattr__`): the volume writer
imports SimpleITK, which the viewer's window must not wait for.
"""

from __future__ import annotations

from medvis_desktop.lazy import lazy_names

__all__ = [
    "ExportError",
    "OverlayStyle",
    "Provenance",
    "activation_grid",
    "atomic_write",
    "overlay",
    "save_heatmap",
    "save_png",
    "sha256_of",
    "triptych",
    "write_provenance",
]

# Each public name imported on first use, by the submodule that defines it.
_SOURCES = {
    "ExportError": "atomic",
    "atomic_write": "atomic",
    "OverlayStyle": "style",
    "activation_grid": "images",
    "overlay": "images",
    "save_png": "images",
    "triptych": "images",
    "Provenance": "provenance",
    "sha256_of": "provenance",
    "write_provenance": "provenance",
    "save_heatmap": "volumes",
}
# Its submodules, which were its attributes when it imported them all at once.
_SUBMODULES = ("atomic", "images", "provenance", "style", "volumes")

__getattr__, __dir__ = lazy_names(__name__, _SOURCES, _SUBMODULES)
