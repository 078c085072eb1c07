"""Files that travel inside the package (the top-level resources/ folder, installed as
medvis_desktop.resources), found the same way in a checkout, a wheel and a frozen app."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def resource(*parts: str) -> Path:
    """A shipped file or folder as a path on disk (Keras and SimpleITK read paths, not streams)."""
    return Path(str(importlib.resources.files("medvis_desktop.resources").joinpath(*parts)))
