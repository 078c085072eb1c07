"""Exports other viewers open, each with its provenance record. No Qt."""

from medvis_desktop.export.atomic import ExportError, atomic_write
from medvis_desktop.export.images import OverlayStyle, activation_grid, overlay, save_png, triptych
from medvis_desktop.export.provenance import Provenance, sha256_of, write_provenance
from medvis_desktop.export.volumes import save_heatmap

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
