"""What a reader needs on every view: orientation letters from the study's geometry at the
right edges, a scale bar in mm that follows the zoom, the slice's position in mm and the window
in the caption; a planar image named by its view instead of as an axial slice."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)
from PySide6.QtCore import QPointF, Qt

from medvis_desktop import imaging
from medvis_desktop.gui.slice_viewer import THREE
from medvis_desktop.imaging import Volume, Window
from tests.gui.conftest import shown_viewer

ORIGIN = (-120.0, -130.0, -80.0)
EDGES = ("left", "right", "top", "bottom")


@pytest.fixture
def viewer(qtbot):
    return shown_viewer(qtbot, 900, 700)


def study(ct_volume: Volume, direction: np.ndarray | None = None) -> Volume:
    """The test CT with an origin, and a direction of the test's own (default: axial, LPS)."""
    geometry = {} if direction is None else {"direction": direction}
    return Volume(ct_volume.voxels, spacing=ct_volume.spacing, origin=ORIGIN, modality="CT", **geometry)


def shown_letters(view) -> dict[str, str]:
    """Each letter's text by the edge of the view box it is nearest to on screen."""
    box = view.box.sceneBoundingRect()
    midpoints = {
        "left": QPointF(box.left(), box.center().y()),
        "right": QPointF(box.right(), box.center().y()),
        "top": QPointF(box.center().x(), box.top()),
        "bottom": QPointF(box.center().x(), box.bottom()),
    }
    found = {}
    for item in view.annotations.letters.values():
        centre = item.sceneBoundingRect().center()
        edge = min(EDGES, key=lambda e: math.dist(centre.toTuple(), midpoints[e].toTuple()))
        assert math.dist(centre.toTuple(), midpoints[edge].toTuple()) < 40  # at the edge's middle
        found[edge] = item.text()
    return found


def test_a_standard_study_is_lettered_on_all_three_views(viewer, ct_volume):
    viewer.set_volume(study(ct_volume))
    viewer.set_layout_mode(THREE)
    axial, coronal, sagittal = (shown_letters(view) for view in viewer.views)
    assert axial == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert coronal == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert sagittal == {"left": "A", "right": "P", "top": "S", "bottom": "I"}


def test_the_letters_stay_at_the_edges_when_zooming_and_panning(qtbot, viewer, ct_volume):
    viewer.set_volume(study(ct_volume))
    box = viewer.views[0].box
    box.scaleBy((0.4, 0.4))
    box.translateBy(x=30.0, y=-20.0)
    qtbot.wait(10)
    assert shown_letters(viewer.views[0]) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}


def test_a_flipped_study_is_shown_the_right_way_round_and_lettered(viewer, ct_volume):
    # Stored RAS (columns run to the patient's right, rows anterior), as many NIfTI files are.
    ras = np.array([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    viewer.set_volume(study(ct_volume, ras))
    view = viewer.views[0]
    assert shown_letters(view) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    # The array's first column (the patient's left-most) is drawn at the screen's right.
    first, last = (view.image.mapToScene(QPointF(column + 0.5, 100.5)).x() for column in (0, 255))
    assert first > last


def test_an_oblique_study_has_two_letters_per_edge(viewer, ct_volume):
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))  # turned 30° about z
    oblique = np.array([[0.0, -s, c], [0.0, c, s], [1.0, 0.0, 0.0]])
    viewer.set_volume(study(ct_volume, oblique))
    assert shown_letters(viewer.views[0]) == {"left": "RA", "right": "LP", "top": "AL", "bottom": "PR"}


def test_the_scale_bar_is_a_round_length_in_mm_at_every_zoom(qtbot, viewer, ct_volume):
    volume = study(ct_volume)
    viewer.set_volume(volume)
    view = viewer.views[0]
    lengths = []
    for zoom in (1.0, 0.3):
        view.box.scaleBy((zoom, zoom))
        qtbot.wait(10)
        annotations = view.annotations
        line = annotations.bar.line()
        # The bar's ends as image pixels (columns), then mm by the column spacing.
        ends = [view.image.mapFromItem(view.box, point).x() for point in (line.p1(), line.p2())]
        measured = abs(ends[1] - ends[0]) * volume.spacing[2]
        assert measured == pytest.approx(annotations.bar_length, rel=1e-6)
        assert annotations.bar_label.text() == f"{annotations.bar_length:g} mm"
        mantissa = annotations.bar_length / 10 ** math.floor(math.log10(annotations.bar_length))
        assert round(mantissa, 6) in (1, 2, 5)
        assert 0.09 < line.length() / view.box.width() <= 0.25  # about a fifth of the view
        lengths.append(annotations.bar_length)
    assert lengths[1] < lengths[0]  # zoomed in: a shorter bar


def caption(view) -> str:
    return view.annotations.caption.text()


def test_the_caption_gives_the_slice_its_position_in_mm_and_the_window(viewer, ct_volume):
    volume = study(ct_volume)
    viewer.set_volume(volume)
    viewer.set_slice(12)
    text = caption(viewer.views[0])
    assert text.startswith("axial 13/40 · z = ") and text.endswith(" · W 80 / C 40")
    position = float(re.search(r"z = (-?[\d.]+) mm", text).group(1))
    ny, nx = volume.shape[1:]
    assert position == pytest.approx(volume.index_to_patient(np.array([12, ny / 2, nx / 2]))[2], abs=0.05)
    assert position == pytest.approx(ORIGIN[2] + 12 * volume.spacing[0], abs=0.05)
    viewer.set_window(Window("Bone", 400, 1800))
    assert caption(viewer.views[0]).endswith(" · W 1800 / C 400")
    viewer.set_layout_mode(THREE)
    coronal = caption(viewer.views[1])
    row = viewer.cursor[1]
    assert coronal.startswith(f"coronal {row + 1}/{ny} · y = {ORIGIN[1] + row * volume.spacing[1]:.1f} mm")


def write_mammogram(path, *, laterality: str, view: str) -> None:
    """A tiny digital mammogram as a modality writes one: no patient geometry, no pixel spacing."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "MG"
    ds.ImageLaterality = laterality
    ds.ViewPosition = view
    ds.PatientName = "Test^Mammo"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = 48, 32
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.random.default_rng(3).integers(0, 4096, (48, 32), dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_a_mammogram_is_labelled_by_its_view_not_as_an_axial_slice(viewer, tmp_path):
    path = tmp_path / "mammo.dcm"
    write_mammogram(path, laterality="L", view="CC")
    volume = imaging.load(path)
    viewer.set_volume(volume)
    text = caption(viewer.views[0])
    assert text.startswith("L CC · W ") and "axial" not in text and "1/1" not in text
    # No patient geometry in the file: no letters rather than made-up ones, and a bar in pixels.
    assert set(shown_letters(viewer.views[0]).values()) == {""}
    assert viewer.views[0].annotations.bar_label.text().endswith(" px")


def type_into(qtbot, box, text: str) -> None:
    box.lineEdit().clear()
    qtbot.keyClicks(box.lineEdit(), text)
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)


def test_an_empty_or_inverted_fixed_range_is_refused_in_the_panel(qtbot):
    from medvis_desktop.gui.method_panel import MethodPanel

    panel = MethodPanel()
    qtbot.addWidget(panel)
    panel.show()
    emitted = []
    panel.style_changed.connect(emitted.append)
    panel.colour_scale.setCurrentIndex(panel.colour_scale.findData("fixed"))
    type_into(qtbot, panel.fixed_high, "2")
    assert (emitted[-1].fixed_low, emitted[-1].fixed_high) == (0.0, 2.0)
    assert not panel.range_problem.isVisible()
    for box in (panel.fixed_low, panel.fixed_high):  # 3 to 2 (inverted), then 3 to 3 (empty)
        type_into(qtbot, box, "3")
        # Nothing reaches the view: it keeps the last good range, and the panel says why.
        assert (emitted[-1].fixed_low, emitted[-1].fixed_high) == (0.0, 2.0)
        assert panel.range_problem.isVisible() and "must be below its high end" in panel.range_problem.text()
    type_into(qtbot, panel.fixed_high, "8")
    assert (emitted[-1].fixed_low, emitted[-1].fixed_high) == (3.0, 8.0)
    assert not panel.range_problem.isVisible()
    assert (panel.threshold.minimum(), panel.threshold.maximum()) == (0, 100)  # [0, 1] in percent
