"""Orientation letters, slice positions and planar views, against geometry written out by hand.

Volume.direction's columns are the LPS directions of array axes (z, y, x): +x is the patient's
left, +y posterior, +z superior. A view shows array axis `rows` down the screen and `columns`
across it; the expected letters below are read off those directions, not computed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from medvis_desktop.imaging import Volume
from medvis_desktop.imaging.orientation import (
    Edges,
    edge_letters,
    flips,
    letters,
    planar_view,
    slice_position,
    spacing_known,
    view_edges,
)

# Axial slices, rows running posterior, columns running to the patient's left (DICOM's usual).
AXIAL = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # columns: z, y, x axes
SECTIONS = {"axial": (1, 2), "coronal": (0, 2), "sagittal": (0, 1)}  # (rows, columns) per view


def test_letters_name_the_patient_directions():
    assert [letters(v) for v in np.eye(3)] == ["L", "P", "S"]
    assert [letters(-v) for v in np.eye(3)] == ["R", "A", "I"]


def test_a_standard_study_reads_radiologically_in_all_three_views():
    expected = {
        "axial": Edges(left="R", right="L", top="A", bottom="P"),
        "coronal": Edges(left="R", right="L", top="S", bottom="I"),
        "sagittal": Edges(left="A", right="P", top="S", bottom="I"),
    }
    for view, (rows, columns) in SECTIONS.items():
        assert edge_letters(AXIAL, rows, columns) == expected[view], view


def test_a_flipped_study_is_turned_back_and_says_so():
    # Columns run to the patient's right and rows anterior (a NIfTI stored RAS): the view
    # mirrors both, so the patient's left is still on the right and anterior still up.
    ras = AXIAL * np.array([1.0, -1.0, -1.0])
    assert flips(ras, 1, 2) == (True, True)
    assert edge_letters(ras, 1, 2) == Edges(left="R", right="L", top="A", bottom="P")
    # The coronal view mirrors slices stacked upwards (the usual) so that superior is up, and
    # leaves slices stacked downwards as they are.
    downwards = AXIAL * np.array([-1.0, 1.0, 1.0])
    assert flips(AXIAL, 0, 2) == (True, False) and flips(downwards, 0, 2) == (False, False)
    assert edge_letters(downwards, 0, 2) == Edges(left="R", right="L", top="S", bottom="I")


def test_an_oblique_study_gets_two_letters_per_edge():
    # Axial slices turned 30° about the patient's z axis: the columns run 30° from the
    # patient's left towards posterior, the rows 30° from posterior towards the right.
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    turned = np.array([[0.0, -s, c], [0.0, c, s], [1.0, 0.0, 0.0]])  # columns: z, y, x axes
    assert edge_letters(turned, 1, 2) == Edges(left="RA", right="LP", top="AL", bottom="PR")
    # A tilt of 10° (cosine 0.17) stays one letter; a direction leaning on all three axes has three.
    tilt = math.sin(math.radians(10))
    assert letters((math.cos(math.radians(10)), 0.0, tilt)) == "L"
    assert letters((0.3, -0.5, 0.81)) == "SAL"


def test_the_slice_position_is_the_slice_centre_in_patient_mm():
    volume = Volume(np.zeros((40, 8, 6), np.int16), spacing=(2.5, 0.8, 0.8), origin=(-10.0, 20.0, -35.0))
    # Axial slice k lies at z = -35 + 2.5 k; coronal row j at y = 20 + 0.8 j; sagittal column i
    # at x = -10 + 0.8 i.
    assert slice_position(volume, 0, 12) == ("z", pytest.approx(-35.0 + 2.5 * 12))
    assert slice_position(volume, 1, 5) == ("y", pytest.approx(20.0 + 0.8 * 5))
    assert slice_position(volume, 2, 3) == ("x", pytest.approx(-10.0 + 0.8 * 3))
    centre = volume.index_to_patient(np.array([12, 3.5, 2.5]))
    assert slice_position(volume, 0, 12)[1] == pytest.approx(centre[2])


def mammogram(**meta: str) -> Volume:
    return Volume(np.zeros((1, 4, 3), np.uint16), modality="MG", meta=meta)


def test_planar_images_are_named_by_their_view():
    assert planar_view(mammogram(ImageLaterality="L", ViewPosition="CC")) == "L CC"
    assert planar_view(mammogram(Laterality="R", ViewPosition="MLO")) == "R MLO"
    assert planar_view(mammogram(Laterality="R")) == "R mammogram"  # CBIS-DDSM: no view position
    assert planar_view(mammogram()) == "mammogram"
    chest = Volume(np.zeros((1, 4, 3), np.int16), modality="DX", meta={"ViewPosition": "PA"})
    assert planar_view(chest) == "PA"
    assert planar_view(Volume(np.zeros((1, 4, 3), np.int16), modality="CT")) is None  # a CT slice
    assert planar_view(Volume(np.zeros((3, 4, 3), np.uint16), modality="MG")) is None  # tomosynthesis


def test_a_projection_is_lettered_by_its_patient_orientation_or_not_at_all():
    # Patient Orientation: rows run towards the first value, columns towards the second.
    assert view_edges(mammogram(PatientOrientation="['A', 'R']"), 1, 2) == Edges("P", "A", "L", "R")
    assert view_edges(mammogram(PatientOrientation="P\\FL"), 1, 2) == Edges("A", "P", "HR", "FL")
    assert view_edges(mammogram(PatientOrientation="CC"), 1, 2) is None  # CBIS-DDSM writes the view
    assert view_edges(mammogram(), 1, 2) is None  # the default geometry is made up, not known
    assert view_edges(Volume(np.zeros((5, 4, 3))), 1, 2) == Edges("R", "L", "A", "P")


def test_spacing_is_known_unless_the_loader_said_pixels():
    assert spacing_known(Volume(np.zeros((1, 2, 2))))
    plain = Volume(np.zeros((1, 2, 2)), warnings=["Plain image: no pixel spacing, distances are in pixels"])
    assert not spacing_known(plain)
