"""Where the patient is on screen: how a view lays a section out, the letters at its edges,
the plane and position of a slice, and the view of a planar image. No Qt.

Directions are patient LPS unit vectors (x towards the patient's left, y posterior, z superior),
as the columns of Volume.direction are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from medvis_desktop.imaging.volume import Volume

# The letter of each LPS axis, (negative, positive): x right/left, y anterior/posterior,
# z inferior/superior.
AXIS_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))
# A direction's secondary component is written when its cosine reaches this (the direction
# leans at least 14.5° towards that axis): a 30° oblique reads "LA", a gantry tilt of a few
# degrees stays "L". Cornerstone/OHIF write every component above 1e-4, largest first; the
# order rule is theirs, the threshold keeps tilts of a few degrees from becoming two letters.
OBLIQUE_LETTER = 0.25
# How a view turns each patient axis on screen, by the axis a screen direction lies mostly
# along: the sign of that axis the screen's right and the screen's down point to. Right is
# patient left (radiological convention) or posterior (a sagittal view, face to the left);
# down is posterior (anterior up, axial) or inferior (superior up).
SCREEN_RIGHT = (1, 1, 1)
SCREEN_DOWN = (1, 1, -1)
PLANE_NAMES = ("sagittal", "coronal", "axial")  # by the axis the slice normal lies mostly along
# One-image studies of these modalities are projections: named by their view, not as slices.
PLANAR = {
    "MG": "mammogram",
    "CR": "radiograph",
    "DX": "radiograph",
    "RG": "radiograph",
    "PX": "panoramic radiograph",
    "IO": "intra-oral radiograph",
    "OT": "image",  # a plain picture: no patient geometry at all
}
# Patient Orientation (0020,0020) letters, with head and foot for superior and inferior.
OPPOSITE = str.maketrans("LRAPHFSI", "RLPAFHIS")
# What the loaders write among a volume's warnings when a file gives no pixel spacing.
NO_SPACING = "distances are in pixels"


@dataclass(frozen=True)
class Edges:
    """The letters at the four edges of a view."""

    left: str
    right: str
    top: str
    bottom: str


def letters(vector: np.ndarray) -> str:
    """The letters for a direction: its dominant axis first, then each other component whose
    cosine reaches OBLIQUE_LETTER, largest first ("L", "LA", "PRS")."""
    vector = np.asarray(vector, dtype=np.float64)
    order = np.argsort(-np.abs(vector), kind="stable")
    return "".join(
        AXIS_LETTERS[axis][int(vector[axis] > 0)]
        for rank, axis in enumerate(order)
        if rank == 0 or abs(vector[axis]) >= OBLIQUE_LETTER
    )


def _turned(vector: np.ndarray, preferred: tuple[int, int, int]) -> bool:
    """Whether `vector` points against the preferred sign of the axis it lies mostly along."""
    axis = int(np.argmax(np.abs(vector)))
    return bool(vector[axis] * preferred[axis] < 0)


def flips(direction: np.ndarray, rows: int, columns: int) -> tuple[bool, bool]:
    """Whether a view showing array axis `rows` down and `columns` right mirrors its rows and
    its columns, so that the screen follows SCREEN_DOWN and SCREEN_RIGHT."""
    return _turned(direction[:, rows], SCREEN_DOWN), _turned(direction[:, columns], SCREEN_RIGHT)


def screen_axes(direction: np.ndarray, rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """The LPS directions of the screen's right and down in that view, flips applied."""
    flip_rows, flip_columns = flips(direction, rows, columns)
    right = direction[:, columns] * (-1 if flip_columns else 1)
    down = direction[:, rows] * (-1 if flip_rows else 1)
    return right, down


def edge_letters(direction: np.ndarray, rows: int, columns: int) -> Edges:
    """The letters at the edges of the view of array axes `rows` (down) and `columns` (right)."""
    right, down = screen_axes(direction, rows, columns)
    return Edges(letters(-right), letters(right), letters(-down), letters(down))


def plane_name(direction: np.ndarray, axis: int) -> str:
    """The plane of sections through array axis `axis`, after the axis its normal lies mostly along."""
    return PLANE_NAMES[int(np.argmax(np.abs(direction[:, axis])))]


def slice_position(volume: Volume, axis: int, index: int) -> tuple[str, float]:
    """The coordinate a slice is known by: ("z", mm) for an axial one, the LPS coordinate along
    the patient axis its normal lies mostly along, at the slice's centre."""
    centre = (np.asarray(volume.shape, dtype=np.float64) - 1) / 2
    centre[axis] = index
    dominant = int(np.argmax(np.abs(volume.direction[:, axis])))
    return "xyz"[dominant], float(volume.index_to_patient(centre)[dominant])


def planar_view(volume: Volume) -> str | None:
    """A one-image projection by its view: laterality and view position from DICOM ("L CC",
    "R MLO", "PA"), what it is where the view position is missing ("R mammogram"); None for a
    volume's slices."""
    if volume.shape[0] != 1 or volume.modality not in PLANAR:
        return None
    laterality = volume.meta.get("ImageLaterality") or volume.meta.get("Laterality", "")
    view = volume.meta.get("ViewPosition") or PLANAR[volume.modality]
    return f"{laterality} {view}".strip()


def view_edges(volume: Volume, rows: int, columns: int) -> Edges | None:
    """The letters at a view's edges. A projection has no section geometry: its letters come
    from its Patient Orientation (the row and column directions, "A\\R"), or there are none."""
    if planar_view(volume) is None:
        return edge_letters(volume.direction, rows, columns)
    found = re.findall(r"[LRAPHFSI]+", volume.meta.get("PatientOrientation", ""))
    if (rows, columns) != (1, 2) or len(found) != 2:
        return None
    right, down = found
    flip_rows, flip_columns = flips(volume.direction, rows, columns)
    if flip_columns:
        right = right.translate(OPPOSITE)
    if flip_rows:
        down = down.translate(OPPOSITE)
    return Edges(right.translate(OPPOSITE), right, down.translate(OPPOSITE), down)


def spacing_known(volume: Volume) -> bool:
    """Whether the volume's spacing is in mm (a plain picture's, or a file's without pixel
    spacing, is one per pixel)."""
    return not any(NO_SPACING in warning for warning in volume.warnings)


def length_unit(volume: Volume) -> str:
    """What the volume's spacing measures, as a scale bar says it: "mm", or "px" when unknown."""
    return "mm" if spacing_known(volume) else "px"
