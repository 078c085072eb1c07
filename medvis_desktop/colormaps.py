"""Colour maps for heat maps, as 256×3 uint8 lookup tables shared by the GUI and the exports.

turbo (Google, Apache-2.0) and inferno (matplotlib authors, CC0) are read from the tables in
`data/`, with their licence headers; jet is the classic piecewise-linear MATLAB map. They are
sequential (NAMES): the user's choice for maps of one sign. Signed maps use DIVERGING, Moreland's
cool-warm map, computed here from his paper (K. Moreland, "Diverging Color Maps for Scientific
Visualization", ISVC 2009): blue (59, 76, 192) to red (180, 4, 38) through a neutral grey of
L* = 88, interpolated in his Msh space (polar CIELAB, D65 white). The tests hold it against his
published table (CoolWarmFloat33).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from medvis_desktop.export.style import COLORMAPS as NAMES
from medvis_desktop.export.style import DIVERGING

DATA = Path(__file__).parent / "data"
SIZE = 256

COOL, WARM = (59, 76, 192), (180, 4, 38)
# Moreland's middle: the lightness (M = L* once unsaturated) of the white-ish centre.
NEUTRAL_M = 88.0
D65_WHITE = np.array([0.95047, 1.0, 1.08883])
SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
LAB_EDGE = 6 / 29


@cache
def lookup_table(name: str) -> np.ndarray:
    """(256, 3) uint8 RGB for values 0…1 mapped to 0…255."""
    if name == "jet":
        return _jet()
    if name == DIVERGING:
        return np.round(cool_warm(np.linspace(0.0, 1.0, SIZE)) * 255).astype(np.uint8)
    if name not in NAMES:
        raise ValueError(f"Unknown colour map '{name}'; available: {', '.join((*NAMES, DIVERGING))}")
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


def cool_warm(positions: np.ndarray) -> np.ndarray:
    """Moreland's cool-warm map at `positions` (0…1): RGB (n, 3) floats in 0…1.

    Cool and warm are saturated and far apart in hue, so each half runs from its end to the
    unsaturated neutral (s = 0), whose hue is spun as Moreland's AdjustHue does so that the hue
    changes evenly as saturation goes.
    """
    positions = np.asarray(positions, dtype=np.float64)
    cool, warm = _msh(np.array(COOL) / 255), _msh(np.array(WARM) / 255)
    middle = max(cool[0], warm[0], NEUTRAL_M)
    rgb = np.empty((positions.size, 3))
    low = positions < 0.5
    halves = (
        (low, cool, np.array([middle, 0.0, _spun_hue(cool, middle)]), 2 * positions[low]),
        (~low, np.array([middle, 0.0, _spun_hue(warm, middle)]), warm, 2 * positions[~low] - 1),
    )
    for chosen, start, end, fraction in halves:
        rgb[chosen] = _srgb(start[:, np.newaxis] * (1 - fraction) + end[:, np.newaxis] * fraction)
    return rgb


def _msh(rgb: np.ndarray) -> np.ndarray:
    """sRGB (0…1) → Moreland's (M, s, h): CIELAB's length, angle from the L* axis, and hue."""
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = SRGB_TO_XYZ @ linear / D65_WHITE
    f = np.where(xyz > LAB_EDGE**3, np.cbrt(xyz), xyz / (3 * LAB_EDGE**2) + 4 / 29)
    lab = np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])
    m = float(np.linalg.norm(lab))
    return np.array([m, np.arccos(lab[0] / m), np.arctan2(lab[2], lab[1])])


def _srgb(msh: np.ndarray) -> np.ndarray:
    """(M, s, h) rows of shape (3, n) → sRGB (n, 3) in 0…1 (clipped to the gamut)."""
    m, s, h = msh
    lightness, a, b = m * np.cos(s), m * np.sin(s) * np.cos(h), m * np.sin(s) * np.sin(h)
    fy = (lightness + 16) / 116
    f = np.stack([fy + a / 500, fy, fy - b / 200])
    xyz = np.where(f > LAB_EDGE, f**3, 3 * LAB_EDGE**2 * (f - 4 / 29)) * D65_WHITE[:, np.newaxis]
    linear = np.linalg.solve(SRGB_TO_XYZ, xyz)
    rgb = np.where(linear > 0.0031308, 1.055 * np.abs(linear) ** (1 / 2.4) - 0.055, 12.92 * linear)
    return np.clip(rgb, 0.0, 1.0).T


def _spun_hue(saturated: np.ndarray, m_unsaturated: float) -> float:
    """The hue to give an unsaturated colour of `m_unsaturated` next to `saturated` (AdjustHue)."""
    m, s, h = saturated
    if m >= m_unsaturated:
        return float(h)
    spin = s * np.sqrt(m_unsaturated**2 - m**2) / (m * np.sin(s))
    return float(h + spin if h > -np.pi / 3 else h - spin)
