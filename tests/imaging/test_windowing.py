"""Window/level presets and the display mapping."""

from __future__ import annotations

import numpy as np

from medvis_desktop import imaging
from medvis_desktop.imaging.volume import Volume, Window


def test_ct_presets_follow_the_files_own_window(head_ct_path):
    volume = imaging.load(head_ct_path)
    names = [w.name for w in imaging.presets(volume)]
    assert names[0] == "Study"
    for expected in ("Brain", "Subdural", "Stroke", "Lung", "Mediastinum", "Abdomen", "Liver", "Bone"):
        assert expected in names
    assert imaging.default_window(volume).name == "Study"


def test_brain_window_maps_its_ends_to_black_and_white():
    brain = next(w for w in imaging.CT_PRESETS if w.name == "Brain")
    grey = imaging.to_display(np.array([-1000, 0, 40, 80, 1000]), brain)
    np.testing.assert_array_equal(grey, [0, 0, 128, 255, 255])


def test_mr_without_window_gets_one_from_its_percentiles(colin27_path):
    volume = imaging.load(colin27_path)
    window = imaging.default_window(volume)
    head = volume.voxels[volume.voxels > 0]
    low, high = np.percentile(head, [0.5, 99.5])
    assert abs(window.low - low) <= 1 and abs(window.high - high) <= 1


def test_window_edges():
    window = Window("w", center=100, width=50)
    assert (window.low, window.high) == (75, 125)
    assert Volume(np.zeros((1, 2, 2))).plane == "axial"
