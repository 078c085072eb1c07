"""The built-in demo cases as a newcomer meets them: the window opens on a lesion, explained."""

from __future__ import annotations

import numpy as np
import pytest

from medvis_desktop import cli
from medvis_desktop.demo.cases import CASES, load_case
from medvis_desktop.explain.runner import patch_corners
from tests.conftest import near
from tests.gui.conftest import make_window, painted_outline, screen_samples, xvfb_medvis


def test_the_command_line_knows_every_demo_case():
    assert tuple(CASES) == cli.DEMOS


@pytest.mark.parametrize("name", list(CASES))
def test_demo_opens_on_a_lesion_and_the_map_points_at_it(qtbot, settings, name):
    window = make_window(qtbot, settings)
    assert window.open_demo(name), window.last_error
    volume, mask, _, case = load_case(name)
    z = case.first_slice
    assert window.viewer.cursor[0] == z and mask[z].any()
    assert window.model is not None and window.card.class_names
    unit = "Patches" if window.card.patch_extent(volume.spacing) else "Slices"
    assert window.panel.batch_label.text() == f"{unit} per batch"  # what the progress counts
    assert (painted_outline(window.viewer.views[0])[..., 3] > 0)[mask[z]].any()  # the truth, outlined
    assert "magenta outline: the inserted lesions' true extent" in window.legend()
    job_id = window.run()
    with qtbot.waitSignal(
        window.relay.finished, timeout=120_000, check_params_cb=lambda done: done == job_id
    ):
        pass
    assert window.explanation.computed.all()  # the whole study, not only the slice on screen
    heat = window.explanation.maps[z]
    peak = np.unravel_index(np.nanargmax(heat), heat.shape)
    by_lesion = near(mask[z], volume.spacing[1:])
    assert by_lesion[peak], f"{name}: the map's maximum is not at the lesion"
    # The overlay is drawn on the lesion under the default colour scale once the whole study is
    # in, and mostly there: a few stray slices elsewhere (the MRI U-Net's near the vertex) must
    # not push this slice's map under the threshold.
    drawn = window.viewer.scale.rgba(heat)[..., 3] > 0  # what the overlay draws (its lookup table)
    assert window.viewer.views[0].overlay.isVisible() and window.viewer.style.scale == "robust"
    assert drawn[mask[z]].any(), f"{name}: no overlay on the lesion after the whole study"
    assert by_lesion[drawn].mean() > 0.5, f"{name}: the overlay is mostly away from the lesion"
    window.close()


def test_demo_ct_screenshot_colours_the_true_lesion(tmp_path):
    out = tmp_path / "demo.png"
    done = xvfb_medvis(tmp_path, "--demo", "ct", "--screenshot", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    volume, mask, _, case = load_case("ct")
    rows, columns, pixels = screen_samples(out, volume)
    colourful = np.abs(np.diff(pixels, axis=1)).sum(axis=1) > 20
    lesion = mask[case.first_slice][rows, columns]
    by_lesion = near(mask[case.first_slice], volume.spacing[1:])[rows, columns]
    assert colourful.sum() > 10
    assert by_lesion[colourful].mean() > 0.8  # the colour (heat and outline) is on or next to the lesion
    assert colourful[lesion].mean() > 0.5  # and the lesion itself is coloured
    magenta = (pixels[:, 0] > 200) & (pixels[:, 1] < 60) & (pixels[:, 2] > 200)
    assert magenta.any() and by_lesion[magenta].all()  # the outline of the true lesion


def test_the_mammography_demo_explains_the_whole_view_patch_by_patch(qtbot, settings):
    window = make_window(qtbot, settings)
    assert window.open_demo("mammo"), window.last_error
    volume = window.volume
    extent = window.card.patch_extent(volume.spacing)
    patches = len(patch_corners(volume.shape, extent))
    steps = []
    window.relay.view_progress.connect(lambda view, done, total: steps.append((done, total)))
    job_id = window.run()
    with qtbot.waitSignal(
        window.relay.finished, timeout=120_000, check_params_cb=lambda done: done == job_id
    ):
        pass
    assert steps[-1] == (patches, patches) and len(steps) > 2  # progress patch by patch
    assert window.panel.progress.text().endswith("patches, done")
    maps = window.explanation.maps[0]
    assert np.isfinite(maps).all() and maps.shape == volume.shape[1:]  # assembled over the whole view
    assert "mammogram.nii.gz, L CC, window" in "\n".join(window.legend())  # the view, not "slice 1/1"

    # Its feature maps are those of the patch behind the score: the highest-scoring one.
    explanation = window.explanation
    best = explanation.patches[int(np.argmax(explanation.scores[:, explanation.target]))]
    assert window.run_mosaic() is not None
    qtbot.waitUntil(lambda: window.activations.mosaic is not None, timeout=60_000)
    mosaic = window.activations.mosaic
    assert mosaic.shown == f"patch at {' '.join(map(str, best))}"
    assert f"({mosaic.shown})" in window.activations.caption.text()
    window.close()
