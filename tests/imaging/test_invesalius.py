"""The real head CT as Debian ships it (InVesalius project)."""

from __future__ import annotations

import numpy as np

from medvis_desktop import imaging


def test_head_ct_hu_and_geometry(head_ct_path, head_ct_raw):
    matrix, project = head_ct_raw
    volume = imaging.load(head_ct_path)
    assert volume.modality == "CT"
    assert volume.shape == tuple(project["matrix"]["shape"])
    # Rows are stored bottom-up: the loader turns them front to back.
    np.testing.assert_array_equal(volume.voxels, matrix[:, ::-1, :])
    spacing_x, spacing_y, spacing_z = project["spacing"]
    np.testing.assert_allclose(volume.spacing, (spacing_z, spacing_y, spacing_x))
    assert volume.value_range() == (-1024.0, 2986.0)
    assert volume.windows[0].center == project["window_level"]
