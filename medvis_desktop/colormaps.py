"""Colour maps for heat maps, as 256×3 uint8 lookup tables shared by the GUI and the exports.

turbo (Google, Apache-2.0) and inferno (matplotlib authors, CC0) are read from the tables in
`data/`, with their licence headers; jet is the classic piecewise-linear MATLAB map.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
NAMES = ("turbo", "jet", "inferno")
SIZE = 256


@cache
def lookup_table(name: str) -> np.ndarray:
    """(256, 3) uint8 RGB for values 0…1 mapped to 0…255."""
    if name == "jet":
        return _jet()
    if name not in NAMES:
        raise ValueError(f"Unknown colour map '{name}'; available: {', '.join(NAMES)}")
    rows = [
        [float(v) for v in line.split(",")]
        for line in (DATA / f"{name}.csv").read_text().splitlines()
        if line.strip() and not line.startswith(";")
    ]
    table = np.asarray(rows, dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(table))
    wanted = np.linspace(0.0, 1.0, SIZE)
    resampled = np.stack([np.interp(wanted, positions, table[:, c]) for c in range(3)], axis=1)
    return np.round(resampled * 255).astype(np.uint8)


def _jet() -> np.ndarray:
    t = np.linspace(0.0, 1.0, SIZE)
    channels = [np.clip(1.5 - np.abs(4 * t - shift), 0, 1) for shift in (3, 2, 1)]
    return np.round(np.stack(channels, axis=1) * 255).astype(np.uint8)


def apply(values: np.ndarray, name: str) -> np.ndarray:
    """RGB (…, 3) uint8 of `values` in 0…1 (clipped; NaN maps to the lowest colour)."""
    index = np.nan_to_num(np.clip(values, 0.0, 1.0), nan=0.0) * (SIZE - 1)
    return lookup_table(name)[np.round(index).astype(np.intp)]
