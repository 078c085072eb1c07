"""Sections handed to pyqtgraph one at a time (gui.section_pixels): every voxel type keeps its
distance from the window's ends, and opening a study copies nothing of its volume (#14)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from medvis_desktop.gui.section_pixels import SectionPixels
from medvis_desktop.gui.slice_viewer import THREE, SliceViewer
from medvis_desktop.imaging import Volume, Window
from tests.gui.test_slice_viewer import assert_shows

WINDOW = Window("test", 40.0, 80.0)


@pytest.mark.parametrize(
    ("values", "drawn"),
    [
        (np.array([[-32768, 0, 32767]], np.int16), np.uint16),  # the whole int16 range fits
        (np.array([[0, 1000, 65535]], np.uint16), np.uint16),
        (np.array([[-128, 0, 127]], np.int8), np.uint16),
        (np.array([[0, 7, 255]], np.uint8), np.uint16),
        (np.array([[-70000, -10000, -4465]], np.int32), np.uint16),  # a range under 2**16
        (np.array([[-70000, 0, 70000]], np.int32), np.float32),  # wider: as float
        (np.array([[-1.5, 0.25, 3e4]], np.float64), np.float32),
        (np.array([[False, True, True]]), np.float32),
    ],
)
def test_each_type_is_drawn_at_its_distance_from_the_window(values, drawn):
    form = SectionPixels.of(values[np.newaxis])
    shown = form.convert(values)
    low, _ = form.levels(WINDOW)
    assert shown.dtype == drawn
    np.testing.assert_allclose(shown.astype(np.float64) - low, values.astype(np.float64) - WINDOW.low)


def test_uint16_sections_are_drawn_without_a_copy():
    voxels = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    assert np.shares_memory(SectionPixels.of(voxels).convert(voxels[1]), voxels)


def test_opening_a_volume_copies_nothing_of_it(qtbot):
    voxels = np.random.default_rng(0).integers(-1024, 3000, (60, 512, 512), dtype=np.int16)
    viewer = SliceViewer()
    qtbot.addWidget(viewer)
    viewer.resize(800, 600)
    viewer.show()
    tracemalloc.start()
    viewer.set_volume(Volume(voxels=voxels, spacing=(1.0, 0.5, 0.5), modality="CT"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 0.1 * voxels.nbytes  # a few sections, not a display copy of the volume
    assert_shows(viewer.views[0].image, voxels[30], viewer.window)


def test_slices_decoded_after_the_volume_is_shown_are_drawn_on_refresh(qtbot, ct_volume):
    voxels = np.full(ct_volume.shape, -1024, np.int16)  # as a series starts loading: all air
    volume = Volume(voxels=voxels, spacing=ct_volume.spacing, modality="CT")
    viewer = SliceViewer()
    qtbot.addWidget(viewer)
    viewer.resize(800, 600)
    viewer.show()
    viewer.set_volume(volume)
    z, y, x = viewer.cursor
    voxels[z - 2 : z + 3] = ct_volume.voxels[z - 2 : z + 3]  # decoded in the background
    viewer.refresh_slices(list(range(z - 2, z + 3)))
    assert_shows(viewer.views[0].image, ct_volume.voxels[z], viewer.window)
    viewer.set_layout_mode(THREE)
    voxels[:4] = ct_volume.voxels[:4]  # slices away from the axial one: the others cut them
    viewer.refresh_slices(np.arange(4))
    assert_shows(viewer.views[1].image, voxels[:, y], viewer.window)
    assert_shows(viewer.views[2].image, voxels[:, :, x], viewer.window)
