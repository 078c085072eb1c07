"""What the user chooses for a heat map's overlay and figures: names and values only.

Kept apart from export.images (numpy, PIL) so that the window's method panel and menus,
built before the first paint, load neither (issue #14: the window paints first).
"""

from __future__ import annotations

from dataclasses import dataclass

# Sequential colour maps, the user's choice for maps of one sign (see colormaps.py), and the
# diverging map of signed maps.
COLORMAPS = ("turbo", "jet", "inferno")
DIVERGING = "coolwarm"
# A figure's images side by side reach this many pixels on their long side by default: enough
# for a report or a slide (a 256² CT is 245 mm, 256 pixels at its own resolution).
LONG_SIDE = 1500
SIGNS = ("signed", "positive", "absolute")
# What spans the colour scale (scale_range), and how the colour bar names it.
SCALES = {
    "robust": "study, 99.5th pct",
    "max": "study, maximum",
    "slice": "this slice",
    "fixed": "fixed range",
}


@dataclass(frozen=True)
class OverlayStyle:
    """How a heat map is laid over the image: the GUI's overlay settings, for exports."""

    colormap: str = "turbo"
    opacity: float = 0.5
    # Weaker values than this fraction of the scale are not drawn: of the range for maps of one
    # sign, of the largest |value| for signed maps shown signed.
    threshold: float = 0.2
    # Signed maps (pixel attributions, deconvnet): "signed" on the diverging map centred on zero,
    # "positive" (negative values not drawn) or "absolute" (|value|) on the sequential map.
    sign: str = "signed"
    # Which values the colour scale spans: a key of SCALES (see scale_range); "fixed" spans
    # fixed_low to fixed_high, in the map's units.
    scale: str = "robust"
    fixed_low: float = 0.0
    fixed_high: float = 1.0

    def __post_init__(self) -> None:
        if self.sign not in SIGNS:
            raise ValueError(f"Unknown sign mode '{self.sign}'; use one of {', '.join(SIGNS)}")
        if self.scale not in SCALES:
            raise ValueError(f"Unknown colour scale '{self.scale}'; use one of {', '.join(SCALES)}")
